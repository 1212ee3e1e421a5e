//! The idempotency store, promotion usage, carts and the saga journal on PostgreSQL: each
//! port's conformance suite exactly as its in-memory implementation runs it, then races at
//! the database and hostile input.

use std::sync::Arc;

use chrono::TimeDelta;
use commerce_core::testkit::{events_with_id, t0};
use commerce_core::{
    Begin, CartId, CasOutcome, Currency, DomainEvent, ErrorKind, EventEnvelope, EventId,
    IdempotencyKey, IdempotencyStore, Money, UserId,
};

use cart_engine::{
    Cart, CartCommand, CartStore, ClaimOutcome, ClaimRequest, LimitReached, LineItem, Mutation,
    PromotionId, PromotionUsageStore, UsageLimits,
};
use saga::{SagaJournal, SagaRecord, SagaStatus, StepEntry, StepState};

use crate::harness::{fresh, fresh_shards};

mod idempotency_store {
    use super::*;
    commerce_core::idempotency_store_conformance!({
        let Some(pg) = fresh().await else { return };
        pg.idempotency()
    });
}

mod usage_store {
    use super::*;
    cart_engine::usage_store_conformance!({
        let Some(pg) = fresh().await else { return };
        pg.promotion_usage()
    });
}

mod cart_store {
    use super::*;
    cart_engine::cart_store_conformance!({
        let Some(pg) = fresh().await else { return };
        (pg.carts(), Arc::new(pg.event_log()))
    });
}

mod cart_store_sharded {
    use super::*;
    cart_engine::cart_store_conformance!({
        let Some(pg) = fresh_shards().await else {
            return;
        };
        (pg.carts(), Arc::new(pg.event_log()))
    });
}

mod saga_journal {
    use super::*;
    saga::saga_journal_conformance!({
        let Some(pg) = fresh().await else { return };
        pg.saga_journal()
    });
}

fn claim(id: &str, promo: &str, customer: Option<&str>, limits: &UsageLimits) -> ClaimRequest {
    ClaimRequest {
        claim_id: IdempotencyKey::new(id).unwrap(),
        promotion_id: PromotionId::new(promo).unwrap(),
        customer: customer.map(|c| UserId::new(c).unwrap()),
        discount: Money::from_minor(500, Currency::EUR),
        limits: limits.clone(),
    }
}

/// A limit of 10 with 9 used, and 20 reservations at once from 20 tasks on 4 threads (real
/// concurrent transactions): exactly one gets the last use, every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_last_use_goes_to_exactly_one_of_twenty() {
    let Some(pg) = fresh().await else { return };
    let store = pg.promotion_usage();
    let limits = UsageLimits {
        total: Some(10),
        per_customer: Some(1),
        budget: Some(Money::from_minor(100_000, Currency::EUR)),
    };
    for round in 0..5 {
        let promo = format!("last-use-{round}");
        for i in 0..9 {
            let c = claim(
                &format!("r{round}-early-{i}"),
                &promo,
                Some(&format!("early-{i}")),
                &limits,
            );
            assert_eq!(store.reserve(&c).await.unwrap(), ClaimOutcome::Reserved);
        }
        let racers: Vec<_> = (0..20)
            .map(|i| {
                let store = store.clone();
                let c = claim(
                    &format!("r{round}-race-{i}"),
                    &promo,
                    Some(&format!("racer-{i}")),
                    &limits,
                );
                tokio::spawn(async move { store.reserve(&c).await })
            })
            .collect();
        let mut outcomes = Vec::new();
        for r in racers {
            outcomes.push(r.await.unwrap().unwrap());
        }
        let won = outcomes
            .iter()
            .filter(|o| **o == ClaimOutcome::Reserved)
            .count();
        assert_eq!(won, 1, "round {round}: {outcomes:?}");
        assert!(
            outcomes.iter().all(|o| matches!(
                o,
                ClaimOutcome::Reserved | ClaimOutcome::LimitReached(LimitReached::Total)
            )),
            "{outcomes:?}"
        );
        let usage = store
            .usage(&PromotionId::new(&promo).unwrap())
            .await
            .unwrap();
        assert_eq!(usage.uses, 10);
        assert_eq!(usage.spent, Some(Money::from_minor(5_000, Currency::EUR)));
    }
}

/// Concurrent reservations of one customer against a per-customer limit of 2, and repeats of
/// one claim id at once: the customer gets two uses, the repeated claim counts once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn per_customer_limits_and_repeated_claims_hold_under_races() {
    let Some(pg) = fresh().await else { return };
    let store = pg.promotion_usage();
    let limits = UsageLimits {
        per_customer: Some(2),
        ..UsageLimits::default()
    };
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let store = store.clone();
            let c = claim(&format!("pc-{i}"), "per-cust", Some("ann"), &limits);
            tokio::spawn(async move { store.reserve(&c).await })
        })
        .collect();
    let mut reserved = 0;
    for t in tasks {
        if t.await.unwrap().unwrap() == ClaimOutcome::Reserved {
            reserved += 1;
        }
    }
    assert_eq!(reserved, 2);
    let same = claim(
        "one-claim",
        "repeated",
        Some("ben"),
        &UsageLimits::default(),
    );
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (store, c) = (store.clone(), same.clone());
            tokio::spawn(async move { store.reserve(&c).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), ClaimOutcome::Reserved);
    }
    let usage = store
        .usage(&PromotionId::new("repeated").unwrap())
        .await
        .unwrap();
    assert_eq!(usage.uses, 1);
}

/// Many callers take over one expired lease at once: exactly one starts, and only its token
/// completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_takeovers_of_an_expired_lease_have_one_winner() {
    let Some(pg) = fresh().await else { return };
    let store = pg.idempotency();
    let key = IdempotencyKey::new("takeover").unwrap();
    let lease = TimeDelta::seconds(30);
    let Begin::Started { token: first } = store.begin(&key, "fp", t0(), lease).await.unwrap()
    else {
        panic!("first begin starts");
    };
    let later = t0() + TimeDelta::minutes(1);
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (store, key) = (store.clone(), key.clone());
            tokio::spawn(async move { store.begin(&key, "fp", later, lease).await })
        })
        .collect();
    let mut winners = Vec::new();
    for t in tasks {
        match t.await.unwrap().unwrap() {
            Begin::Started { token } => winners.push(token),
            Begin::InProgress => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let err = store
        .complete(&key, first, b"late".to_vec(), later)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Conflict);
    store
        .complete(&key, winners[0], b"winner".to_vec(), later)
        .await
        .unwrap();
    assert_eq!(
        store.begin(&key, "fp", later, lease).await.unwrap(),
        Begin::Completed(b"winner".to_vec())
    );
}

/// The purge job forgets what is past the store's retention, keeps the rest, and a retention
/// under a day is refused at configuration.
#[tokio::test]
async fn the_purge_job_forgets_what_is_past_the_retention() {
    let Some(pg) = fresh().await else { return };
    assert_eq!(
        pg.idempotency()
            .with_retention(TimeDelta::hours(23))
            .unwrap_err()
            .kind,
        ErrorKind::Invalid
    );
    let store = pg.idempotency().with_retention(TimeDelta::days(2)).unwrap();
    let lease = TimeDelta::seconds(30);
    for i in 0..25 {
        let key = IdempotencyKey::new(format!("purge-{i}")).unwrap();
        let Begin::Started { token } = store.begin(&key, "fp", t0(), lease).await.unwrap() else {
            panic!("starts");
        };
        // Ten completed on day 0, ten on day 2, five never.
        let at = if i < 10 {
            t0()
        } else {
            t0() + TimeDelta::days(2)
        };
        if i < 20 {
            store
                .complete(&key, token, vec![1, 2, 3], at)
                .await
                .unwrap();
        }
    }
    let now = t0() + TimeDelta::days(2) + TimeDelta::hours(1);
    assert_eq!(store.purge_all(now).await.unwrap(), 15);
    assert_eq!(store.purge_all(now).await.unwrap(), 0);
    let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM idempotency")
        .fetch_one(pg.primary())
        .await
        .unwrap();
    assert_eq!(kept, 10);
}

fn cart(id: &str, owner: Option<&str>) -> Cart {
    Cart::new(
        CartId::new(id).unwrap(),
        owner.map(|o| UserId::new(o).unwrap()),
        Currency::EUR,
        None,
        t0(),
    )
}

/// Across four shards, concurrent inserts of active carts for one owner (carts whose ids
/// route to different shards) leave exactly one; the owner's cart is found from any shard.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_active_cart_per_owner_across_shards() {
    let Some(pg) = fresh_shards().await else {
        return;
    };
    let store = pg.carts();
    let ids: Vec<String> = (0..12).map(|i| format!("race-cart-{i}")).collect();
    let shards: std::collections::BTreeSet<usize> = ids.iter().map(|id| pg.shard_of(id)).collect();
    assert!(shards.len() > 1, "the carts spread over shards: {shards:?}");
    for round in 0..3 {
        let owner = format!("racer-{round}@example.com");
        let tasks: Vec<_> = ids
            .iter()
            .map(|id| {
                let store = store.clone();
                let c = cart(&format!("{id}-{round}"), Some(&owner));
                tokio::spawn(async move { store.insert(c, &[]).await })
            })
            .collect();
        let mut inserted = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(()) => inserted += 1,
                Err(e) => assert_eq!(e.kind, ErrorKind::Conflict, "{e}"),
            }
        }
        assert_eq!(inserted, 1, "round {round}");
        let user = UserId::new(&owner).unwrap();
        let active = store.get_active_for_user(&user).await.unwrap().unwrap();
        assert_eq!(active.owner(), Some(&user));
    }
}

/// Many workers acquire one saga's lease at once: exactly one holds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_acquires_have_one_holder() {
    let Some(pg) = fresh().await else { return };
    let journal = pg.saga_journal();
    let _ = journal.create(saga_record("race", b"{}")).await.unwrap();
    let until = t0() + TimeDelta::seconds(60);
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let journal = journal.clone();
            tokio::spawn(async move {
                journal
                    .acquire("race", &format!("worker-{i}"), t0(), until)
                    .await
            })
        })
        .collect();
    let mut holders = Vec::new();
    for t in tasks {
        if let Some(r) = t.await.unwrap().unwrap() {
            holders.push(r.lease.unwrap().0);
        }
    }
    assert_eq!(holders.len(), 1, "{holders:?}");
    let stored = journal.load("race").await.unwrap().unwrap();
    assert_eq!(stored.lease.map(|l| l.0).as_ref(), holders.first());
    assert_eq!(stored.version, 1, "one acquire took effect");
}

fn saga_record(id: &str, input: &[u8]) -> SagaRecord {
    SagaRecord {
        id: id.to_owned(),
        kind: "ports-test".into(),
        input: input.to_vec(),
        status: SagaStatus::Running,
        steps: Vec::new(),
        failure: None,
        version: 0,
        lease: None,
        created_at: t0(),
        deadline: t0() + TimeDelta::minutes(15),
    }
}

/// Hostile text in every free-text field, ids and keys at their longest, every byte value, and
/// 10 KB bodies: stored and read back intact, or refused as `Invalid` with nothing written.
#[tokio::test]
async fn hostile_input_round_trips_or_is_refused() {
    let Some(pg) = fresh().await else { return };
    let hostile = "Robert'); DROP TABLE sagas;-- \"quoted\" \\ back\\slash $1 ünïcødé 中文 🛒";
    let bytes: Vec<u8> = (0..10 * 1024_u32)
        .map(|i| u8::try_from(i % 256).unwrap())
        .collect();

    // Idempotency: the longest key, a hostile fingerprint, a 10 KB binary response.
    let store = pg.idempotency();
    let key_text = format!(
        "{}@+:._-",
        "k".repeat(commerce_core::limits::KEY_LEN_MAX - 7)
    );
    let key = IdempotencyKey::new(&key_text).unwrap();
    let lease = TimeDelta::seconds(30);
    let Begin::Started { token } = store.begin(&key, hostile, t0(), lease).await.unwrap() else {
        panic!("starts");
    };
    store
        .complete(&key, token, bytes.clone(), t0())
        .await
        .unwrap();
    assert_eq!(
        store.begin(&key, hostile, t0(), lease).await.unwrap(),
        Begin::Completed(bytes.clone())
    );
    assert_eq!(
        store.begin(&key, "Robert", t0(), lease).await.unwrap(),
        Begin::Mismatch
    );
    let nul = store
        .begin(&IdempotencyKey::new("nul").unwrap(), "a\0b", t0(), lease)
        .await
        .unwrap_err();
    assert_eq!(nul.kind, ErrorKind::Invalid, "{nul}");

    // Usage: the longest claim id, promotion id and customer.
    let usage = pg.promotion_usage();
    let c = ClaimRequest {
        claim_id: IdempotencyKey::new("c".repeat(commerce_core::limits::KEY_LEN_MAX)).unwrap(),
        promotion_id: PromotionId::new("p".repeat(64)).unwrap(),
        customer: Some(
            UserId::new(format!(
                "{}+tag@example.com",
                "u".repeat(commerce_core::limits::ID_LEN_MAX - 16)
            ))
            .unwrap(),
        ),
        discount: Money::from_minor(123, Currency::JPY),
        limits: UsageLimits {
            per_customer: Some(1),
            budget: Some(Money::from_minor(1_000, Currency::JPY)),
            ..UsageLimits::default()
        },
    };
    assert_eq!(usage.reserve(&c).await.unwrap(), ClaimOutcome::Reserved);
    assert_eq!(usage.reserve(&c).await.unwrap(), ClaimOutcome::Reserved);
    usage.commit(&c.claim_id).await.unwrap();
    let u = usage.usage(&c.promotion_id).await.unwrap();
    assert_eq!(
        (u.uses, u.spent),
        (1, Some(Money::from_minor(123, Currency::JPY)))
    );

    // Carts: the longest id and owner, over 10 KB of lines with hostile titles.
    let carts = pg.carts();
    let owner = format!(
        "{}+o'k@example.com",
        "o".repeat(commerce_core::limits::ID_LEN_MAX - 17)
    );
    assert!(UserId::new(&owner).is_err(), "quotes are not id characters");
    let owner = format!(
        "{}+ok@example.com",
        "o".repeat(commerce_core::limits::ID_LEN_MAX - 16)
    );
    let mut big = cart(&"c".repeat(commerce_core::limits::ID_LEN_MAX), Some(&owner));
    for i in 0..20 {
        let item = LineItem::new(&format!("SKU-{i}"), Money::from_minor(999, Currency::EUR))
            .unwrap()
            .title(format!("{hostile} {}", "é".repeat(300)));
        let _ = big
            .execute(
                CartCommand::AddItem {
                    item,
                    quantity: 1,
                    gift_wrap: false,
                },
                &Mutation::at(t0()),
            )
            .unwrap();
    }
    let size = serde_json::to_vec(&big).unwrap().len();
    assert!(size > 10 * 1024, "{size} bytes");
    let event = EventEnvelope::new(
        EventId::new("hostile-cart:created").unwrap(),
        t0(),
        DomainEvent::CartAbandoned {
            cart_id: big.id().clone(),
            user_id: big.owner().cloned(),
            last_activity_at: t0(),
        },
    );
    carts.insert(big.clone(), &[event]).await.unwrap();
    assert_eq!(carts.get(big.id()).await.unwrap(), Some(big.clone()));
    assert_eq!(
        carts
            .get_active_for_user(&UserId::new(&owner).unwrap())
            .await
            .unwrap(),
        Some(big.clone())
    );
    assert_eq!(
        events_with_id(&pg.event_log(), "hostile-cart:created").await,
        1
    );

    // Sagas: hostile ids, kinds and owners (free text), a 10 KB input of every byte value.
    let journal = pg.saga_journal();
    let id = format!("saga/{hostile}");
    let mut record = saga_record(&id, &bytes);
    record.kind = hostile.to_owned();
    let created = journal.create(record.clone()).await.unwrap();
    assert_eq!(created, record);
    assert_eq!(journal.load(&id).await.unwrap(), Some(record.clone()));
    let leased = journal
        .acquire(&id, hostile, t0(), t0() + TimeDelta::nanoseconds(1_500))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        leased.lease,
        Some((hostile.to_owned(), t0() + TimeDelta::nanoseconds(1_500))),
        "the lease reads back to the nanosecond"
    );
    let mut next = leased.clone();
    next.steps.push(StepEntry {
        name: hostile.to_owned(),
        state: StepState::Done {
            output: bytes.clone(),
        },
    });
    assert_eq!(journal.update(&next).await.unwrap(), CasOutcome::Committed);
    let stored = journal.load(&id).await.unwrap().unwrap();
    assert_eq!(stored.steps, next.steps);
    assert_eq!(stored.version, next.version + 1);
    assert_eq!(journal.unfinished(hostile, 10).await.unwrap(), vec![stored]);
    let nul = journal
        .create(saga_record("bad\0id", b"x"))
        .await
        .unwrap_err();
    assert_eq!(nul.kind, ErrorKind::Invalid, "{nul}");
    assert_eq!(journal.load("bad").await.unwrap(), None);
}
