//! Resharding under load: a sale's hash slot moves from one master to another (the steps of
//! `redis-cli --cluster reshard`: IMPORTING, MIGRATING, MIGRATE key by key, the new owner
//! announced) while shoppers join it; then it moves back. Every join lands (a client retries
//! what the cluster answered with a redirection it could not follow, as a real client does),
//! and the sale admits exactly the shoppers who joined, each once. The same for a bucket of
//! carts updated while its slot moves: every committed update is kept.

use std::time::Duration;

use adapters::redis::Redis;
use chrono::TimeDelta;
use commerce_core::UserId;
use commerce_core::testkit::t0;
use redis::aio::MultiplexedConnection;
use saga::{Admission, AdmissionQueue, SaleConfig};

use crate::harness::cluster;

use std::sync::Arc;

use adapters::redis::{RedisCartStore, cart_bucket};
use cart_engine::{Cart, CartCommand, CartStore, Mutation};
use commerce_core::memory::InMemoryEventLog;
use commerce_core::testkit::sample_product;
use commerce_core::{CartId, CasOutcome, Currency};

struct Node {
    id: String,
    host: String,
    port: u16,
    conn: MultiplexedConnection,
}

async fn nodes(urls: &[String]) -> Vec<Node> {
    let mut out = Vec::new();
    for url in urls {
        let client = redis::Client::open(url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let id: String = redis::cmd("CLUSTER")
            .arg("MYID")
            .query_async(&mut conn)
            .await
            .unwrap();
        let addr = url.trim_start_matches("redis://");
        let (host, port) = addr.rsplit_once(':').unwrap();
        out.push(Node {
            id,
            host: host.to_owned(),
            port: port.trim_end_matches('/').parse().unwrap(),
            conn,
        });
    }
    out
}

async fn owner(nodes: &mut [Node], slot: u16) -> usize {
    let ranges: Vec<redis::Value> = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(&mut nodes[0].conn)
        .await
        .unwrap();
    for r in ranges {
        let redis::Value::Array(parts) = r else {
            continue;
        };
        let (
            Some(redis::Value::Int(lo)),
            Some(redis::Value::Int(hi)),
            Some(redis::Value::Array(master)),
        ) = (parts.first(), parts.get(1), parts.get(2))
        else {
            continue;
        };
        if i64::from(slot) >= *lo && i64::from(slot) <= *hi {
            let Some(redis::Value::Int(port)) = master.get(1) else {
                continue;
            };
            return nodes
                .iter()
                .position(|n| i64::from(n.port) == *port)
                .unwrap();
        }
    }
    panic!("slot {slot} has no owner");
}

/// Moves `slot` from node `from` to node `to`, key by key.
async fn move_slot(nodes: &mut [Node], slot: u16, from: usize, to: usize) {
    let (from_id, to_id) = (nodes[from].id.clone(), nodes[to].id.clone());
    let (to_host, to_port) = (nodes[to].host.clone(), nodes[to].port);
    let _: () = redis::cmd("CLUSTER")
        .arg("SETSLOT")
        .arg(slot)
        .arg("IMPORTING")
        .arg(&from_id)
        .query_async(&mut nodes[to].conn)
        .await
        .unwrap();
    let _: () = redis::cmd("CLUSTER")
        .arg("SETSLOT")
        .arg(slot)
        .arg("MIGRATING")
        .arg(&to_id)
        .query_async(&mut nodes[from].conn)
        .await
        .unwrap();
    loop {
        let keys: Vec<String> = redis::cmd("CLUSTER")
            .arg("GETKEYSINSLOT")
            .arg(slot)
            .arg(10)
            .query_async(&mut nodes[from].conn)
            .await
            .unwrap();
        if keys.is_empty() {
            break;
        }
        let _: () = redis::cmd("MIGRATE")
            .arg(&to_host)
            .arg(to_port)
            .arg("")
            .arg(0)
            .arg(5_000)
            .arg("KEYS")
            .arg(&keys)
            .query_async(&mut nodes[from].conn)
            .await
            .unwrap();
        // Let the joiners run between batches, as a reshard over many keys would.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for n in nodes.iter_mut() {
        let _: () = redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg("NODE")
            .arg(&to_id)
            .query_async(&mut n.conn)
            .await
            .unwrap();
    }
}

async fn join_retrying(q: &impl AdmissionQueue, shopper: &UserId) -> Admission {
    let mut last = None;
    for _ in 0..50 {
        match q
            .join("reshard", shopper, t0() - TimeDelta::seconds(1))
            .await
        {
            Ok(a) => return a,
            Err(e) => {
                last = Some(e);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    panic!("{shopper} never joined: {last:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_moved_while_shoppers_join_loses_nobody() {
    let Some(redis): Option<Redis> = cluster().await else {
        return;
    };
    let urls: Vec<String> = std::env::var("REDIS_CLUSTER_URLS")
        .unwrap_or_else(|_| {
            "redis://127.0.0.1:7001,redis://127.0.0.1:7002,redis://127.0.0.1:7003".into()
        })
        .split(',')
        .map(str::to_owned)
        .collect();
    let mut nodes = nodes(&urls).await;
    let queue = redis.admission_queue();
    let config = SaleConfig {
        starts_at: t0(),
        spots: 1_000,
        admit_per_sec: 1_000_000,
        admission_ttl: TimeDelta::minutes(10),
        seed: 11,
    };
    queue.open("reshard", &config).await.unwrap();
    let slot = u16::try_from(crc16_slot(b"reshard")).unwrap();
    let server_slot: u16 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg("{reshard}")
        .query_async(&mut nodes[0].conn)
        .await
        .unwrap();
    assert_eq!(slot, server_slot, "the slot of the sale's hash tag");
    let home = owner(&mut nodes, slot).await;
    let away = (home + 1) % nodes.len();
    let shoppers: Vec<UserId> = (0..1_000)
        .map(|i| UserId::new(format!("mover-{i}")).unwrap())
        .collect();
    let joining = {
        let (queue, shoppers) = (queue.clone(), shoppers.clone());
        tokio::spawn(async move {
            for s in &shoppers {
                assert!(matches!(
                    join_retrying(&queue, s).await,
                    Admission::Waiting { .. }
                ));
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    move_slot(&mut nodes, slot, home, away).await;
    assert!(
        !joining.is_finished(),
        "the slot moved while shoppers were still joining"
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    move_slot(&mut nodes, slot, away, home).await;
    joining.await.unwrap();
    let mut admitted = queue
        .admit("reshard", t0() + TimeDelta::seconds(10))
        .await
        .unwrap();
    admitted.sort();
    let mut expected = shoppers.clone();
    expected.sort();
    assert_eq!(admitted, expected, "every shopper who joined, once");
}

/// The cluster slot of a hash tag (CRC16/XMODEM mod 16384).
fn crc16_slot(tag: &[u8]) -> u32 {
    let mut crc: u16 = 0;
    for &b in tag {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    u32::from(crc) % 16_384
}

async fn read_retrying(store: &RedisCartStore, id: &CartId) -> Cart {
    for _ in 0..100 {
        if let Ok(Some(c)) = store.get(id).await {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("cart {id} unreadable");
}

/// Adds one unit to the cart, retrying through redirections; an update whose answer was lost
/// is recognised by the version it left. Answers the cart as written.
async fn add_one_retrying(store: &RedisCartStore, id: &CartId) -> Cart {
    let product = sample_product("p-mover", "MOVER-SKU");
    loop {
        let current = read_retrying(store, id).await;
        let mut next = current.clone();
        let _ = next
            .execute(
                CartCommand::AddLine {
                    product: &product,
                    quantity: 1,
                    gift_wrap: false,
                },
                &Mutation::at(t0()),
            )
            .unwrap();
        match store.update(next.clone(), current.version(), &[]).await {
            Ok(CasOutcome::Committed) => return next,
            Ok(CasOutcome::VersionMismatch { current: v }) => {
                // Only this task writes the cart: a newer version is our own lost answer.
                assert_eq!(v, next.version(), "a version nobody wrote");
                return next;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_moved_while_carts_are_updated_loses_no_update() {
    let Some(redis): Option<Redis> = cluster().await else {
        return;
    };
    let urls: Vec<String> = std::env::var("REDIS_CLUSTER_URLS")
        .unwrap_or_else(|_| {
            "redis://127.0.0.1:7001,redis://127.0.0.1:7002,redis://127.0.0.1:7003".into()
        })
        .split(',')
        .map(str::to_owned)
        .collect();
    let mut nodes = nodes(&urls).await;
    let store = redis.cart_store(Arc::new(InMemoryEventLog::new()));
    let ids: Vec<CartId> = (0..)
        .map(|i| CartId::new(format!("mover-cart-{i}")).unwrap())
        .filter(|id| cart_bucket(id) == 7)
        .take(20)
        .collect();
    for id in &ids {
        store
            .insert(Cart::new(id.clone(), None, Currency::EUR, None, t0()), &[])
            .await
            .unwrap();
    }
    let slot = u16::try_from(crc16_slot(format!("{}.b07", redis.namespace()).as_bytes())).unwrap();
    let home = owner(&mut nodes, slot).await;
    let away = (home + 1) % nodes.len();
    let rounds = 40;
    let updating = {
        let (store, ids) = (store.clone(), ids.clone());
        tokio::spawn(async move {
            for _ in 0..rounds {
                for id in &ids {
                    let _ = add_one_retrying(&store, id).await;
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    move_slot(&mut nodes, slot, home, away).await;
    assert!(
        !updating.is_finished(),
        "the slot moved while carts were still updated"
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    move_slot(&mut nodes, slot, away, home).await;
    updating.await.unwrap();
    for id in &ids {
        let c = store.get(id).await.unwrap().unwrap();
        assert_eq!(c.version(), rounds, "{id}: every update kept");
        assert_eq!(
            c.lines()[0].quantity,
            u32::try_from(rounds).unwrap(),
            "{id}"
        );
    }
}
