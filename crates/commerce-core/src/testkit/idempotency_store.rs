//! Conformance cases for [`IdempotencyStore`].

use chrono::TimeDelta;
use futures::future::join_all;

use super::t0;
use crate::{Begin, ErrorKind, IdempotencyKey, IdempotencyStore};

fn key(s: &str) -> IdempotencyKey {
    IdempotencyKey::new(s).unwrap()
}

fn lease() -> TimeDelta {
    TimeDelta::seconds(30)
}

/// The first `begin` starts; a second one during the lease is "in progress".
pub async fn first_begin_starts<S: IdempotencyStore + ?Sized>(store: &S) {
    let k = key("idem-a");
    assert_eq!(
        store.begin(&k, "fp", t0(), lease()).await.unwrap(),
        Begin::Started
    );
    let during = t0() + TimeDelta::seconds(29);
    assert_eq!(
        store.begin(&k, "fp", during, lease()).await.unwrap(),
        Begin::InProgress
    );
}

/// After the lease expires (the owner crashed) the next caller takes the key over.
pub async fn expired_lease_is_taken_over<S: IdempotencyStore + ?Sized>(store: &S) {
    let k = key("idem-b");
    assert_eq!(
        store.begin(&k, "fp", t0(), lease()).await.unwrap(),
        Begin::Started
    );
    let later = t0() + TimeDelta::seconds(31);
    assert_eq!(
        store.begin(&k, "fp", later, lease()).await.unwrap(),
        Begin::Started
    );
    assert_eq!(
        store.begin(&k, "fp", later, lease()).await.unwrap(),
        Begin::InProgress
    );
}

/// A completed key replays its response forever, even long after any lease.
pub async fn completed_replays_response<S: IdempotencyStore + ?Sized>(store: &S) {
    let k = key("idem-c");
    assert_eq!(
        store.begin(&k, "fp", t0(), lease()).await.unwrap(),
        Begin::Started
    );
    store.complete(&k, b"order-1".to_vec()).await.unwrap();
    let much_later = t0() + TimeDelta::days(30);
    assert_eq!(
        store.begin(&k, "fp", much_later, lease()).await.unwrap(),
        Begin::Completed(b"order-1".to_vec())
    );
    assert_eq!(
        store
            .complete(&k, b"again".to_vec())
            .await
            .unwrap_err()
            .kind,
        ErrorKind::Conflict
    );
    assert_eq!(
        store.abandon(&k).await.unwrap_err().kind,
        ErrorKind::Conflict
    );
}

/// The same key with another fingerprint is a mismatch, in progress or completed.
pub async fn fingerprint_mismatch<S: IdempotencyStore + ?Sized>(store: &S) {
    let k = key("idem-d");
    assert_eq!(
        store.begin(&k, "fp-1", t0(), lease()).await.unwrap(),
        Begin::Started
    );
    assert_eq!(
        store.begin(&k, "fp-2", t0(), lease()).await.unwrap(),
        Begin::Mismatch
    );
    store.complete(&k, vec![]).await.unwrap();
    assert_eq!(
        store.begin(&k, "fp-2", t0(), lease()).await.unwrap(),
        Begin::Mismatch
    );
}

/// An abandoned key can start again at once.
pub async fn abandon_allows_retry<S: IdempotencyStore + ?Sized>(store: &S) {
    let k = key("idem-e");
    assert_eq!(
        store.begin(&k, "fp", t0(), lease()).await.unwrap(),
        Begin::Started
    );
    store.abandon(&k).await.unwrap();
    assert_eq!(
        store.begin(&k, "fp", t0(), lease()).await.unwrap(),
        Begin::Started
    );
}

/// Completing or abandoning a key never begun is `NotFound`; a non-positive lease is `Invalid`.
pub async fn unknown_keys_and_bad_leases<S: IdempotencyStore + ?Sized>(store: &S) {
    let k = key("idem-f");
    assert_eq!(
        store.complete(&k, vec![]).await.unwrap_err().kind,
        ErrorKind::NotFound
    );
    assert_eq!(
        store.abandon(&k).await.unwrap_err().kind,
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
        .filter(|r| matches!(r, Ok(Begin::Started)))
        .count();
    assert_eq!(started, 1, "{results:?}");
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Ok(Begin::Started | Begin::InProgress)))
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
        );
    };
}
