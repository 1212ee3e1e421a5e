//! Conformance cases for [`IdempotencyStore`].

use chrono::TimeDelta;
use futures::future::join_all;

use super::t0;
use crate::limits::IDEMPOTENCY_RETENTION_HOURS_MIN;
use crate::{Begin, ErrorKind, IdempotencyKey, IdempotencyStore, LeaseToken};

fn key(s: &str) -> IdempotencyKey {
    IdempotencyKey::new(s).unwrap()
}

fn lease() -> TimeDelta {
    TimeDelta::seconds(30)
}

fn retention() -> TimeDelta {
    TimeDelta::hours(IDEMPOTENCY_RETENTION_HOURS_MIN)
}

/// The token of a `Started`, or a panic naming what `begin` said instead.
async fn started<S: IdempotencyStore + ?Sized>(
    store: &S,
    k: &IdempotencyKey,
    fingerprint: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> LeaseToken {
    match store.begin(k, fingerprint, now, lease()).await.unwrap() {
        Begin::Started { token } => token,
        other => panic!("begin of {k} at {now}: expected Started, got {other:?}"),
    }
}

/// The first `begin` starts; a second one during the lease is "in progress".
pub async fn first_begin_starts<S: IdempotencyStore + ?Sized>(store: &S) {
    let k = key("idem-a");
    let _ = started(store, &k, "fp", t0()).await;
    let during = t0() + TimeDelta::seconds(29);
    assert_eq!(
        store.begin(&k, "fp", during, lease()).await.unwrap(),
        Begin::InProgress
    );
}

/// After the lease expires (the owner crashed) the next caller takes the key over, with a
/// new token.
pub async fn expired_lease_is_taken_over<S: IdempotencyStore + ?Sized>(store: &S) {
    let k = key("idem-b");
    let first = started(store, &k, "fp", t0()).await;
    let later = t0() + TimeDelta::seconds(31);
    let second = started(store, &k, "fp", later).await;
    assert_ne!(first, second, "a takeover gets a token of its own");
    assert_eq!(
        store.begin(&k, "fp", later, lease()).await.unwrap(),
        Begin::InProgress
    );
}

/// A completed key replays its response forever, even long after any lease.
pub async fn completed_replays_response<S: IdempotencyStore + ?Sized>(store: &S) {
    let k = key("idem-c");
    let token = started(store, &k, "fp", t0()).await;
    store
        .complete(&k, token, b"order-1".to_vec(), t0())
        .await
        .unwrap();
    let much_later = t0() + TimeDelta::days(30);
    assert_eq!(
        store.begin(&k, "fp", much_later, lease()).await.unwrap(),
        Begin::Completed(b"order-1".to_vec())
    );
    assert_eq!(
        store
            .complete(&k, token, b"again".to_vec(), t0())
            .await
            .unwrap_err()
            .kind,
        ErrorKind::Conflict
    );
    assert_eq!(
        store.abandon(&k, token).await.unwrap_err().kind,
        ErrorKind::Conflict
    );
    assert_eq!(
        store.begin(&k, "fp", much_later, lease()).await.unwrap(),
        Begin::Completed(b"order-1".to_vec()),
        "a refused second completion changes nothing"
    );
}

/// The same key with another fingerprint is a mismatch, in progress or completed.
pub async fn fingerprint_mismatch<S: IdempotencyStore + ?Sized>(store: &S) {
    let k = key("idem-d");
    let token = started(store, &k, "fp-1", t0()).await;
    assert_eq!(
        store.begin(&k, "fp-2", t0(), lease()).await.unwrap(),
        Begin::Mismatch
    );
    let later = t0() + TimeDelta::seconds(31);
    assert_eq!(
        store.begin(&k, "fp-2", later, lease()).await.unwrap(),
        Begin::Mismatch,
        "an expired lease is not taken over by another request"
    );
    store.complete(&k, token, vec![], t0()).await.unwrap();
    assert_eq!(
        store.begin(&k, "fp-2", t0(), lease()).await.unwrap(),
        Begin::Mismatch
    );
}

/// An abandoned key can start again at once.
pub async fn abandon_allows_retry<S: IdempotencyStore + ?Sized>(store: &S) {
    let k = key("idem-e");
    let token = started(store, &k, "fp", t0()).await;
    store.abandon(&k, token).await.unwrap();
    let again = started(store, &k, "fp", t0()).await;
    assert_ne!(token, again, "a new claim gets a new token");
}

/// Completing or abandoning a key never begun is `NotFound`; a non-positive lease is `Invalid`.
pub async fn unknown_keys_and_bad_leases<S: IdempotencyStore + ?Sized>(store: &S) {
    let k = key("idem-f");
    let token = LeaseToken::new(1).unwrap();
    assert_eq!(
        store
            .complete(&k, token, vec![], t0())
            .await
            .unwrap_err()
            .kind,
        ErrorKind::NotFound
    );
    assert_eq!(
        store.abandon(&k, token).await.unwrap_err().kind,
        ErrorKind::NotFound
    );
    let err = store
        .begin(&k, "fp", t0(), TimeDelta::zero())
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Invalid);
}

/// Of many concurrent `begin`s of one key, exactly one starts.
pub async fn concurrent_begins_have_one_owner<S: IdempotencyStore + ?Sized>(store: &S) {
    let k = key("idem-g");
    let results = join_all((0..16).map(|_| store.begin(&k, "fp", t0(), lease()))).await;
    let started = results
        .iter()
        .filter(|r| matches!(r, Ok(Begin::Started { .. })))
        .count();
    assert_eq!(started, 1, "{results:?}");
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Ok(Begin::Started { .. } | Begin::InProgress)))
    );
}

/// A caller whose lease expired and was taken over can neither complete nor abandon the
/// successor's claim; the successor completes, and its response is the one replayed.
pub async fn stale_token_cannot_complete_or_abandon<S: IdempotencyStore + ?Sized>(store: &S) {
    let k = key("idem-h");
    let a = started(store, &k, "fp", t0()).await;
    let late = t0() + TimeDelta::seconds(31);
    let b = started(store, &k, "fp", late).await;
    assert_ne!(a, b);
    let refused = store
        .complete(&k, a, b"from-a".to_vec(), late)
        .await
        .unwrap_err();
    assert_eq!(refused.kind, ErrorKind::Conflict, "{refused}");
    let refused = store.abandon(&k, a).await.unwrap_err();
    assert_eq!(refused.kind, ErrorKind::Conflict, "{refused}");
    assert_eq!(
        store.begin(&k, "fp", late, lease()).await.unwrap(),
        Begin::InProgress,
        "the refused calls left B's claim alone"
    );
    store
        .complete(&k, b, b"from-b".to_vec(), late)
        .await
        .unwrap();
    assert_eq!(
        store.begin(&k, "fp", late, lease()).await.unwrap(),
        Begin::Completed(b"from-b".to_vec())
    );
    assert_eq!(
        store
            .complete(&k, a, b"from-a".to_vec(), late)
            .await
            .unwrap_err()
            .kind,
        ErrorKind::Conflict
    );

    // Abandoned and begun again: the first claims' tokens match nothing.
    let k = key("idem-h-2");
    let a = started(store, &k, "fp", t0()).await;
    let b = started(store, &k, "fp", late).await;
    store.abandon(&k, b).await.unwrap();
    let c = started(store, &k, "fp", late).await;
    assert!(a != c && b != c, "tokens are never reused: {a} {b} {c}");
    for stale in [a, b] {
        assert_eq!(
            store.abandon(&k, stale).await.unwrap_err().kind,
            ErrorKind::Conflict
        );
    }
    // A token whose lease ended still completes while nobody has taken the key over.
    let after_c = late + TimeDelta::minutes(5);
    store
        .complete(&k, c, b"from-c".to_vec(), after_c)
        .await
        .unwrap();
    assert_eq!(
        store.begin(&k, "fp", after_c, lease()).await.unwrap(),
        Begin::Completed(b"from-c".to_vec())
    );
}

/// `purge` keeps every record for the retention after it finished, forgets what is older (a
/// purged key begins afresh), works in bounded batches, and refuses a retention under the
/// minimum.
pub async fn purge_keeps_records_for_the_retention<S: IdempotencyStore + ?Sized>(store: &S) {
    let old = key("idem-i-old");
    let recent = key("idem-i-recent");
    let crashed = key("idem-i-crashed");
    let running = key("idem-i-running");
    let t = started(store, &old, "fp", t0()).await;
    store
        .complete(&old, t, b"old".to_vec(), t0())
        .await
        .unwrap();
    let t = started(store, &recent, "fp", t0()).await;
    let recently = t0() + TimeDelta::hours(2);
    store
        .complete(&recent, t, b"recent".to_vec(), recently)
        .await
        .unwrap();
    let _ = started(store, &crashed, "fp", t0()).await;
    // The purge runs a day and an hour after t0.
    let now = t0() + retention() + TimeDelta::hours(1);
    let _ = started(store, &running, "fp", now).await;

    let err = store
        .purge(now, retention() - TimeDelta::seconds(1), 100)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Invalid, "{err}");

    // In bounded batches: one, then the rest.
    let first = store.purge(now, retention(), 1).await.unwrap();
    assert_eq!(first, 1);
    let mut purged = first;
    loop {
        let n = store.purge(now, retention(), 1).await.unwrap();
        if n == 0 {
            break;
        }
        purged += n;
        assert!(purged <= 1_000_000, "purge never ends");
    }
    // Other cases may share the store: at least the two due records went.
    assert!(purged >= 2, "{purged}");
    assert!(
        matches!(
            store.begin(&old, "fp", now, lease()).await.unwrap(),
            Begin::Started { .. }
        ),
        "a record completed over a day ago is forgotten"
    );
    assert!(
        matches!(
            store
                .begin(&crashed, "fp-other", now, lease())
                .await
                .unwrap(),
            Begin::Started { .. }
        ),
        "an unfinished record whose lease ended over a day ago is forgotten"
    );
    assert_eq!(
        store.begin(&recent, "fp", now, lease()).await.unwrap(),
        Begin::Completed(b"recent".to_vec()),
        "a record completed within the retention replays"
    );
    assert_eq!(
        store.begin(&running, "fp", now, lease()).await.unwrap(),
        Begin::InProgress,
        "a running claim is kept"
    );
}

/// Runs the [`IdempotencyStore`] conformance suite against `$make`.
#[macro_export]
macro_rules! idempotency_store_conformance {
    ($make:expr) => {
        $crate::__conformance_cases!($make;
            first_begin_starts => $crate::testkit::idempotency_store::first_begin_starts,
            expired_lease_is_taken_over => $crate::testkit::idempotency_store::expired_lease_is_taken_over,
            completed_replays_response => $crate::testkit::idempotency_store::completed_replays_response,
            fingerprint_mismatch => $crate::testkit::idempotency_store::fingerprint_mismatch,
            abandon_allows_retry => $crate::testkit::idempotency_store::abandon_allows_retry,
            unknown_keys_and_bad_leases => $crate::testkit::idempotency_store::unknown_keys_and_bad_leases,
            concurrent_begins_have_one_owner => $crate::testkit::idempotency_store::concurrent_begins_have_one_owner,
            stale_token_cannot_complete_or_abandon => $crate::testkit::idempotency_store::stale_token_cannot_complete_or_abandon,
            purge_keeps_records_for_the_retention => $crate::testkit::idempotency_store::purge_keeps_records_for_the_retention,
        );
    };
}
