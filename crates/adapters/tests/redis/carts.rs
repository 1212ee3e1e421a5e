//! Carts on a single node and on the cluster: the conformance suite, one active cart per owner
//! under a crowd, the abandoned-cart sweep exactly once with two sweepers, the outbox relay
//! through a log outage, hostile content, and a server killed and restarted.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use adapters::redis::Redis;
use async_trait::async_trait;
use cart_engine::{Cart, CartCommand, CartStatus, CartStore, Mutation, sweep_abandoned};
use chrono::TimeDelta;
use commerce_core::memory::InMemoryEventLog;
use commerce_core::testkit::{sample_product, t0};
use commerce_core::{
    CartId, CasOutcome, Currency, DomainEvent, ErrorKind, EventEnvelope, EventLog, EventPublisher,
    PortError, PortResult, UserId,
};

use crate::harness::{cluster, raw_single, server, single, until_up};

mod single_node {
    use super::*;
    cart_engine::cart_store_conformance!({
        let Some(r) = single().await else { return };
        let log = Arc::new(InMemoryEventLog::new());
        (r.cart_store(log.clone()), log)
    });
}

mod on_cluster {
    use super::*;
    cart_engine::cart_store_conformance!({
        let Some(r) = cluster().await else { return };
        let log = Arc::new(InMemoryEventLog::new());
        (r.cart_store(log.clone()), log)
    });
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

fn add(c: &mut Cart, sku: &str, title: &str) {
    let mut p = sample_product(&format!("p-{sku}"), sku);
    p.title = title.into();
    let _ = c
        .execute(
            CartCommand::AddLine {
                product: &p,
                quantity: 1,
                gift_wrap: false,
            },
            &Mutation::at(t0()),
        )
        .unwrap();
}

/// Sixteen devices of one shopper create a cart at once: exactly one becomes their active
/// cart; after it is checked out the next one may; a claim left by a crash (naming a cart
/// that was never written) does not block them.
async fn one_active_cart_per_owner(redis: Redis) {
    let log = Arc::new(InMemoryEventLog::new());
    let store = redis.cart_store(log);
    let inserts = (0..16).map(|i| {
        let store = store.clone();
        async move {
            store
                .insert(cart(&format!("crowd-{i}"), Some("crowd-user")), &[])
                .await
        }
    });
    let results = futures::future::join_all(inserts).await;
    let won: Vec<usize> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| r.is_ok())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(won.len(), 1, "{results:?}");
    for r in results.iter().filter(|r| r.is_err()) {
        assert_eq!(r.as_ref().unwrap_err().kind, ErrorKind::Conflict);
    }
    let user = UserId::new("crowd-user").unwrap();
    let mut active = store.get_active_for_user(&user).await.unwrap().unwrap();
    assert_eq!(active.id().as_str(), format!("crowd-{}", won[0]));
    let version = active.version();
    active.mark_checked_out().unwrap();
    assert_eq!(
        store.update(active, version, &[]).await.unwrap(),
        CasOutcome::Committed
    );
    assert_eq!(store.get_active_for_user(&user).await.unwrap(), None);
    store
        .insert(cart("crowd-next", Some("crowd-user")), &[])
        .await
        .unwrap();
}

#[tokio::test]
async fn one_active_cart_per_owner_on_a_single_node() {
    let Some(r) = single().await else { return };
    one_active_cart_per_owner(r).await;
}

#[tokio::test]
async fn one_active_cart_per_owner_on_the_cluster() {
    let Some(r) = cluster().await else { return };
    one_active_cart_per_owner(r).await;
}

/// A crash between taking an owner's claim and writing the cart leaves a claim naming a cart
/// that does not exist: the owner has no active cart, and their next cart replaces the claim.
#[tokio::test]
async fn a_claim_left_by_a_crash_does_not_block_the_owner() {
    let Some(r) = single().await else { return };
    let mut raw = raw_single().await;
    let () = redis::cmd("SET")
        .arg(format!("{}:cart:owner:ghost-user", r.namespace()))
        .arg("ghost-never-written")
        .query_async(&mut raw)
        .await
        .unwrap();
    let store = r.cart_store(Arc::new(InMemoryEventLog::new()));
    let ghost = UserId::new("ghost-user").unwrap();
    assert_eq!(store.get_active_for_user(&ghost).await.unwrap(), None);
    store
        .insert(cart("ghost-after", Some("ghost-user")), &[])
        .await
        .unwrap();
    assert_eq!(
        store
            .get_active_for_user(&ghost)
            .await
            .unwrap()
            .unwrap()
            .id()
            .as_str(),
        "ghost-after"
    );
    assert_eq!(
        store
            .insert(cart("ghost-second", Some("ghost-user")), &[])
            .await
            .unwrap_err()
            .kind,
        ErrorKind::Conflict,
        "and it holds for the new cart"
    );
}

/// Two sweepers at once over 200 expired carts spread over every bucket: each cart is
/// abandoned once and announced once, and fresh carts are left alone.
async fn two_sweepers_abandon_each_cart_once(redis: Redis) {
    let log = Arc::new(InMemoryEventLog::new());
    let store = redis.cart_store(log.clone());
    for i in 0..200 {
        let owner = format!("sweep-user-{i}");
        let mut c = cart(&format!("sweep-{i}"), Some(&owner));
        add(&mut c, "SWEEP-SKU", "Sweep tee");
        store.insert(c, &[]).await.unwrap();
    }
    let fresh = Cart::new(
        CartId::new("sweep-fresh").unwrap(),
        None,
        Currency::EUR,
        None,
        t0() + TimeDelta::days(40),
    );
    store.insert(fresh, &[]).await.unwrap();
    let now = t0() + TimeDelta::days(31);
    let (a, b) = (store.clone(), store.clone());
    let sweeper = |s: adapters::redis::RedisCartStore| async move {
        let mut marked = Vec::new();
        loop {
            let batch = sweep_abandoned(&s, now, 37).await.unwrap();
            if batch.is_empty() {
                return marked;
            }
            marked.extend(batch);
        }
    };
    let (ma, mb) = tokio::join!(sweeper(a), sweeper(b));
    let mut all: Vec<CartId> = ma.into_iter().chain(mb).collect();
    all.sort();
    let before = all.len();
    all.dedup();
    assert_eq!(before, all.len(), "a cart marked twice");
    assert_eq!(all.len(), 200);
    store.relay().await.unwrap();
    let abandoned = log
        .read(0, 10_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| matches!(e.envelope.event, DomainEvent::CartAbandoned { .. }))
        .count();
    assert_eq!(abandoned, 200, "one CartAbandoned per cart");
    assert_eq!(store.pending().await.unwrap(), 0);
    assert_eq!(
        *store
            .get(&CartId::new("sweep-fresh").unwrap())
            .await
            .unwrap()
            .unwrap()
            .status(),
        CartStatus::Active
    );
    for i in [0, 99, 199] {
        let user = UserId::new(format!("sweep-user-{i}")).unwrap();
        assert_eq!(store.get_active_for_user(&user).await.unwrap(), None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sweepers_abandon_each_cart_once_on_a_single_node() {
    let Some(r) = single().await else { return };
    two_sweepers_abandon_each_cart_once(r).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sweepers_abandon_each_cart_once_on_the_cluster() {
    let Some(r) = cluster().await else { return };
    two_sweepers_abandon_each_cart_once(r).await;
}

/// An event log that can be made to fail.
#[derive(Debug)]
struct Flaky {
    log: Arc<InMemoryEventLog>,
    down: AtomicBool,
}

#[async_trait]
impl EventPublisher for Flaky {
    async fn publish(&self, events: &[EventEnvelope]) -> PortResult<()> {
        if self.down.load(Ordering::SeqCst) {
            return Err(PortError::new(ErrorKind::Unavailable, "log down"));
        }
        self.log.publish(events).await
    }
}

fn abandoned(id: &str) -> EventEnvelope {
    EventEnvelope::new(
        commerce_core::EventId::new(format!("relay:{id}")).unwrap(),
        t0(),
        DomainEvent::CartAbandoned {
            cart_id: CartId::new(id).unwrap(),
            user_id: None,
            last_activity_at: t0(),
        },
    )
}

/// While the event log is down, writes still commit and their events wait in the outbox;
/// once it is back one relay delivers each exactly once, in each cart's order.
async fn the_outbox_keeps_events_through_a_log_outage(redis: Redis) {
    let log = Arc::new(InMemoryEventLog::new());
    let flaky = Arc::new(Flaky {
        log: log.clone(),
        down: AtomicBool::new(true),
    });
    let store = redis.cart_store(flaky.clone());
    for i in 0..50 {
        let id = format!("relay-{i}");
        store
            .insert(cart(&id, None), &[abandoned(&format!("{id}:a"))])
            .await
            .unwrap();
        let mut next = store
            .get(&CartId::new(&id).unwrap())
            .await
            .unwrap()
            .unwrap();
        add(&mut next, "RELAY-SKU", "Relay tee");
        assert_eq!(
            store
                .update(next, 0, &[abandoned(&format!("{id}:b"))])
                .await
                .unwrap(),
            CasOutcome::Committed
        );
    }
    assert_eq!(log.end_offset().await.unwrap(), 0);
    assert_eq!(store.pending().await.unwrap(), 100);
    assert!(store.relay().await.is_err(), "the log is still down");
    flaky.down.store(false, Ordering::SeqCst);
    assert_eq!(store.relay().await.unwrap(), 100);
    assert_eq!(store.relay().await.unwrap(), 0);
    let ids: Vec<String> = log
        .read(0, 1_000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.envelope.event_id.to_string())
        .collect();
    assert_eq!(ids.len(), 100);
    for i in 0..50 {
        let a = ids.iter().position(|x| *x == format!("relay:relay-{i}:a"));
        let b = ids.iter().position(|x| *x == format!("relay:relay-{i}:b"));
        assert!(a.unwrap() < b.unwrap(), "cart {i}'s events in order");
    }
}

#[tokio::test]
async fn the_outbox_keeps_events_through_a_log_outage_on_a_single_node() {
    let Some(r) = single().await else { return };
    the_outbox_keeps_events_through_a_log_outage(r).await;
}

#[tokio::test]
async fn the_outbox_keeps_events_through_a_log_outage_on_the_cluster() {
    let Some(r) = cluster().await else { return };
    the_outbox_keeps_events_through_a_log_outage(r).await;
}

/// Titles with quotes, newlines, unicode and 10 KB read back intact; ids with every allowed
/// punctuation land in their buckets.
async fn hostile_content_reads_back_intact(redis: Redis) {
    let store = redis.cart_store(Arc::new(InMemoryEventLog::new()));
    let mut c = cart("hostile:Cart_1.x-Z", Some("ada@example.com"));
    add(
        &mut c,
        "HOSTILE-1",
        "Tee \"quoted\"\nline two\t— ünïcødé 😀 {b07} 日本語",
    );
    add(&mut c, "HOSTILE-2", &"é".repeat(5_000));
    store.insert(c.clone(), &[]).await.unwrap();
    assert_eq!(store.get(c.id()).await.unwrap(), Some(c.clone()));
    assert_eq!(
        store
            .get_active_for_user(&UserId::new("ada@example.com").unwrap())
            .await
            .unwrap(),
        Some(c)
    );
}

#[tokio::test]
async fn hostile_content_reads_back_intact_on_a_single_node() {
    let Some(r) = single().await else { return };
    hostile_content_reads_back_intact(r).await;
}

#[tokio::test]
async fn hostile_content_reads_back_intact_on_the_cluster() {
    let Some(r) = cluster().await else { return };
    hostile_content_reads_back_intact(r).await;
}

/// The server dies (SIGKILL): reads fail as `Unavailable` and writes as `Unavailable` or
/// `Indeterminate` (never a success), quickly; the same store works again once it is back.
#[tokio::test]
async fn a_killed_server_fails_fast_then_serves_again() {
    let port = 7_013;
    let Some(mut first) = server(port) else {
        return;
    };
    let url = format!("redis://127.0.0.1:{port}");
    let redis = until_up(&url).await;
    let store = redis.cart_store(Arc::new(InMemoryEventLog::new()));
    let c = cart("killed-1", Some("killed-user"));
    store.insert(c.clone(), &[]).await.unwrap();
    first.kill().unwrap();
    let _ = first.wait();
    assert_eq!(
        store.get(c.id()).await.unwrap_err().kind,
        ErrorKind::Unavailable
    );
    let mut next = c.clone();
    add(&mut next, "KILLED-1", "Killed tee");
    let err = store.update(next.clone(), 0, &[]).await.unwrap_err();
    assert!(
        matches!(err.kind, ErrorKind::Unavailable | ErrorKind::Indeterminate),
        "{err}"
    );
    let mut second = server(port).unwrap();
    let _probe = until_up(&url).await;
    let mut back = false;
    for _ in 0..100 {
        match store.insert(cart("killed-2", None), &[]).await {
            Ok(()) => {
                back = true;
                break;
            }
            Err(e) => {
                assert!(
                    matches!(e.kind, ErrorKind::Unavailable | ErrorKind::Indeterminate),
                    "{e}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
    assert!(back, "the same store works again");
    second.kill().unwrap();
    let _ = second.wait();
}

/// Redis does not roll a failed script back. A write whose last command would fail (the
/// bucket's outbox is a string: `XADD` would refuse after the cart was written) is refused
/// before it writes anything: the cart, its expiry entry and the claim's cart stay as they
/// were.
#[tokio::test]
async fn a_script_that_would_fail_half_way_changes_nothing() {
    let Some(r) = single().await else { return };
    let mut raw = raw_single().await;
    let store = r.cart_store(Arc::new(InMemoryEventLog::new()));
    let c = cart("half-1", None);
    let ns = r.namespace();
    let b = adapters::redis::cart_bucket(c.id());
    let outbox = format!("{ns}:cart:{{{ns}.b{b:02}}}:out");
    let () = redis::cmd("SET")
        .arg(&outbox)
        .arg("not a stream")
        .query_async(&mut raw)
        .await
        .unwrap();
    let err = store
        .insert(c.clone(), &[abandoned("half-1:a")])
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Internal, "{err}");
    assert_eq!(store.get(c.id()).await.unwrap(), None, "no cart written");
    let expired = store
        .list_expired(t0() + TimeDelta::days(400), 1_000)
        .await
        .unwrap();
    assert!(expired.iter().all(|e| e.id() != c.id()), "no index entry");

    // The same for an update of a stored cart.
    let () = redis::cmd("DEL")
        .arg(&outbox)
        .query_async(&mut raw)
        .await
        .unwrap();
    store.insert(c.clone(), &[]).await.unwrap();
    let () = redis::cmd("SET")
        .arg(&outbox)
        .arg("not a stream")
        .query_async(&mut raw)
        .await
        .unwrap();
    let mut next = c.clone();
    add(&mut next, "HALF-1", "Half tee");
    let err = store
        .update(next, 0, &[abandoned("half-1:b")])
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Internal, "{err}");
    assert_eq!(
        store.get(c.id()).await.unwrap(),
        Some(c),
        "the cart as it was"
    );
}

/// The timer relay delivers what a write could not, once the log is back.
#[tokio::test]
async fn the_timer_relay_delivers_once_the_log_is_back() {
    let Some(r) = single().await else { return };
    let log = Arc::new(InMemoryEventLog::new());
    let flaky = Arc::new(Flaky {
        log: log.clone(),
        down: AtomicBool::new(true),
    });
    let store = r.cart_store(flaky.clone());
    store
        .insert(cart("timer-1", None), &[abandoned("timer-1:a")])
        .await
        .unwrap();
    let relay = tokio::spawn({
        let store = store.clone();
        async move {
            store
                .relay_every(std::time::Duration::from_millis(10))
                .await
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(log.end_offset().await.unwrap(), 0, "the log is down");
    flaky.down.store(false, Ordering::SeqCst);
    let mut delivered = false;
    for _ in 0..500 {
        if log.end_offset().await.unwrap() == 1 {
            delivered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    relay.abort();
    assert!(delivered);
    assert_eq!(store.pending().await.unwrap(), 0);
}

/// A claim naming a cart not written yet is another device's insert in flight: a second
/// cart is refused while it is fresh, and replaces it once it is older than the grace.
#[tokio::test]
async fn a_fresh_claim_is_an_insert_in_flight() {
    let Some(r) = single().await else { return };
    let mut raw = raw_single().await;
    let (secs, micros): (i64, i64) = redis::cmd("TIME").query_async(&mut raw).await.unwrap();
    let now_ms = secs * 1_000 + micros / 1_000;
    let key = format!("{}:cart:owner:inflight-user", r.namespace());
    let () = redis::cmd("SET")
        .arg(&key)
        .arg(format!("inflight-first|{now_ms}"))
        .query_async(&mut raw)
        .await
        .unwrap();
    let store = r.cart_store(Arc::new(InMemoryEventLog::new()));
    assert_eq!(
        store
            .insert(cart("inflight-second", Some("inflight-user")), &[])
            .await
            .unwrap_err()
            .kind,
        ErrorKind::Conflict
    );
    assert_eq!(
        store
            .get(&CartId::new("inflight-second").unwrap())
            .await
            .unwrap(),
        None
    );
    let () = redis::cmd("SET")
        .arg(&key)
        .arg(format!(
            "inflight-first|{}",
            now_ms - adapters::redis::CLAIM_GRACE_MS - 1_000
        ))
        .query_async(&mut raw)
        .await
        .unwrap();
    store
        .insert(cart("inflight-second", Some("inflight-user")), &[])
        .await
        .unwrap();
    let user = UserId::new("inflight-user").unwrap();
    assert_eq!(
        store
            .get_active_for_user(&user)
            .await
            .unwrap()
            .unwrap()
            .id()
            .as_str(),
        "inflight-second"
    );
}

/// Forty shoppers, each on eight devices with connections of their own, create their carts at
/// once (real interleavings across connections): each shopper ends with exactly one active
/// cart, the one insert that succeeded; the others were refused as `Conflict`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn devices_on_separate_connections_get_one_cart_per_shopper() {
    let Some(r) = single().await else { return };
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let mut stores = Vec::new();
    for _ in 0..8 {
        let conn = Redis::connect(&url)
            .await
            .unwrap()
            .with_namespace(r.namespace());
        stores.push(conn.cart_store(Arc::new(InMemoryEventLog::new())));
    }
    let mut tasks = Vec::new();
    for shopper in 0..40 {
        for (device, store) in stores.iter().enumerate() {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let id = format!("dev-{shopper}-{device}");
                let owner = format!("dev-user-{shopper}");
                let result = store.insert(cart(&id, Some(&owner)), &[]).await;
                (shopper, id, result)
            }));
        }
    }
    let mut winners: Vec<Vec<String>> = vec![Vec::new(); 40];
    for t in tasks {
        let (shopper, id, result) = t.await.unwrap();
        match result {
            Ok(()) => winners[shopper].push(id),
            Err(e) => assert_eq!(e.kind, ErrorKind::Conflict, "{e}"),
        }
    }
    for (shopper, won) in winners.iter().enumerate() {
        assert_eq!(won.len(), 1, "shopper {shopper}: {won:?}");
        let user = UserId::new(format!("dev-user-{shopper}")).unwrap();
        let active = stores[0].get_active_for_user(&user).await.unwrap().unwrap();
        assert_eq!(active.id().as_str(), won[0]);
    }
}

/// A cart Redis dropped after its grace (its key gone, its expiry entry left) is not listed,
/// and its entry is pruned by the sweep that finds it.
#[tokio::test]
async fn a_cart_dropped_by_redis_leaves_no_entry_behind() {
    let Some(r) = single().await else { return };
    let mut raw = raw_single().await;
    let store = r.cart_store(Arc::new(InMemoryEventLog::new()));
    let c = cart("dropped-1", None);
    store.insert(c.clone(), &[]).await.unwrap();
    let ns = r.namespace();
    let b = adapters::redis::cart_bucket(c.id());
    let () = redis::cmd("DEL")
        .arg(format!("{ns}:cart:{{{ns}.b{b:02}}}:c:dropped-1"))
        .query_async(&mut raw)
        .await
        .unwrap();
    let index = format!("{ns}:cart:{{{ns}.b{b:02}}}:exp");
    let before: i64 = redis::cmd("ZCARD")
        .arg(&index)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(before, 1);
    let now = t0() + TimeDelta::days(31);
    assert!(store.list_expired(now, 100).await.unwrap().is_empty());
    let after: i64 = redis::cmd("ZCARD")
        .arg(&index)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(after, 0, "the entry is pruned");
}
