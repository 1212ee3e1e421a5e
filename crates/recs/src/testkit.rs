//! Conformance suites of the recommendation store ports: every implementation (in memory
//! here, Redis in the adapters) runs the same cases. See `commerce_core::testkit` for how the
//! macros work: each stamps out one `#[tokio::test]` per case, evaluating its argument (which
//! may `.await`) once per case. Each case uses keys of its own (prefixed with the case's
//! name), so one server can serve them all.
//!
//! ```ignore
//! mod topk {
//!     recs::topk_store_conformance!(my_adapter::RedisTopK::connect(url()).await);
//! }
//! mod recently_viewed {
//!     // The store under test must keep 5 SKUs per session.
//!     recs::recently_viewed_conformance!(my_adapter::RedisRecentlyViewed::connect(url(), 5).await);
//! }
//! ```

#![allow(
    clippy::missing_panics_doc,
    reason = "conformance cases are tests: they panic to report a broken contract"
)]

use chrono::{DateTime, Duration, Utc};
use commerce_core::testkit::t0;
use commerce_core::{ErrorKind, EventId, OrderId, SessionId, Sku, UserId};
use futures::future::join_all;

use crate::limits::{
    ARRIVALS_PER_USER_MAX, EXPERIMENT_BATCH_MAX, TOPK_BATCH_MAX, TOPK_MAX, WATCHES_PER_USER_MAX,
};
use crate::{
    ArmName, BackInStockStore, ExperimentEvent, ExperimentId, ExperimentLog, ExperimentRecord,
    ListKey, RecentlyViewedStore, Scored, TopKList, TopKStore, Viewed,
};

fn sku(id: &str) -> Sku {
    Sku::new(id).unwrap()
}

fn user(id: &str) -> UserId {
    UserId::new(id).unwrap()
}

fn session(id: &str) -> SessionId {
    SessionId::new(id).unwrap()
}

fn at(seconds: i64) -> DateTime<Utc> {
    t0() + Duration::seconds(seconds)
}

/// A list of `n` items `{prefix}-{i}` with distinct scores, at `generation`.
pub fn sample_list(prefix: &str, n: usize, generation: u64) -> TopKList {
    let items = (0..n)
        .map(|i| {
            #[allow(clippy::cast_precision_loss, reason = "small test counts")]
            let score = 1.0 - i as f32 / 1_000.0;
            Scored::new(sku(&format!("{prefix}-{i}")), score)
        })
        .collect();
    TopKList::new(generation, items).unwrap()
}

// ---- TopKStore ----------------------------------------------------------------------------

/// A written list reads back exactly: items, order, scores bit for bit, generation; an empty
/// list and the longest list too; a missing key is `None`.
pub async fn topk_put_then_get<S: TopKStore + ?Sized>(s: &S) {
    let key = ListKey::Item(sku("tk-a"));
    let odd = TopKList::new(
        3,
        vec![
            Scored::new(sku("tk-a-1"), 1e-30),
            Scored::new(sku("tk-a-2"), -0.0),
            Scored::new(sku("tk-a-3"), -3.5e30),
            Scored::new(sku("tk-a-4"), f32::MAX),
            Scored::new(sku("tk-a-5"), 0.1),
        ],
    )
    .unwrap();
    assert_eq!(s.put(&[(key.clone(), odd.clone())]).await.unwrap(), 1);
    let back = s.get(&key).await.unwrap().expect("written");
    assert_eq!(back, odd);
    for (a, b) in back.items().iter().zip(odd.items()) {
        assert_eq!(a.score.to_bits(), b.score.to_bits(), "scores bit for bit");
    }
    let long = ListKey::Item(sku("tk-a-long"));
    let list = sample_list("tk-a-long", TOPK_MAX, 1);
    s.put(&[(long.clone(), list.clone())]).await.unwrap();
    assert_eq!(s.get(&long).await.unwrap(), Some(list));
    let empty = ListKey::User(user("tk-a-empty"));
    s.put(&[(empty.clone(), TopKList::empty(1))]).await.unwrap();
    assert_eq!(s.get(&empty).await.unwrap(), Some(TopKList::empty(1)));
    assert_eq!(s.get(&ListKey::Item(sku("tk-a-none"))).await.unwrap(), None);
}

/// An older generation never replaces a newer one; an equal one does (a retry), a newer one
/// does; `put` counts what it wrote.
pub async fn topk_generations_never_go_back<S: TopKStore + ?Sized>(s: &S) {
    let key = ListKey::Item(sku("tk-b"));
    let v5 = sample_list("tk-b5", 3, 5);
    assert_eq!(s.put(&[(key.clone(), v5.clone())]).await.unwrap(), 1);
    assert_eq!(
        s.put(&[(key.clone(), sample_list("tk-b4", 2, 4))])
            .await
            .unwrap(),
        0,
        "an older list is skipped"
    );
    assert_eq!(s.get(&key).await.unwrap(), Some(v5.clone()));
    let v5b = sample_list("tk-b5b", 1, 5);
    assert_eq!(s.put(&[(key.clone(), v5b.clone())]).await.unwrap(), 1);
    assert_eq!(s.get(&key).await.unwrap(), Some(v5b));
    let other = ListKey::Item(sku("tk-b-other"));
    let written = s
        .put(&[
            (key.clone(), sample_list("tk-b3", 1, 3)),
            (other.clone(), sample_list("tk-b-o", 2, 1)),
        ])
        .await
        .unwrap();
    assert_eq!(written, 1, "each list decided on its own");
    assert!(s.get(&other).await.unwrap().is_some());
}

/// Item and user keys are separate namespaces, even with the same text.
pub async fn topk_namespaces_are_separate<S: TopKStore + ?Sized>(s: &S) {
    let item = ListKey::Item(sku("tk-c"));
    let person = ListKey::User(user("tk-c"));
    s.put(&[(item.clone(), sample_list("tk-c-i", 1, 1))])
        .await
        .unwrap();
    assert_eq!(s.get(&person).await.unwrap(), None);
    s.put(&[(person.clone(), sample_list("tk-c-u", 2, 1))])
        .await
        .unwrap();
    assert_eq!(s.get(&item).await.unwrap().unwrap().len(), 1);
    assert_eq!(s.get(&person).await.unwrap().unwrap().len(), 2);
}

/// `get_many` answers each key in the order asked, `None` for missing ones, repeats included.
pub async fn topk_get_many_in_order<S: TopKStore + ?Sized>(s: &S) {
    let a = ListKey::Item(sku("tk-d-a"));
    let b = ListKey::Item(sku("tk-d-b"));
    let missing = ListKey::Item(sku("tk-d-missing"));
    s.put(&[
        (a.clone(), sample_list("tk-d-a", 1, 1)),
        (b.clone(), sample_list("tk-d-b", 2, 1)),
    ])
    .await
    .unwrap();
    let got = s
        .get_many(&[b.clone(), missing, a.clone(), b.clone()])
        .await
        .unwrap();
    let lens: Vec<Option<usize>> = got.iter().map(|l| l.as_ref().map(TopKList::len)).collect();
    assert_eq!(lens, [Some(2), None, Some(1), Some(2)]);
    assert!(s.get_many(&[]).await.unwrap().is_empty());
}

/// `remove` deletes only a list not newer than asked; a missing key is `false`.
pub async fn topk_remove_respects_generation<S: TopKStore + ?Sized>(s: &S) {
    let key = ListKey::User(user("tk-e"));
    s.put(&[(key.clone(), sample_list("tk-e", 2, 7))])
        .await
        .unwrap();
    assert!(!s.remove(&key, 6).await.unwrap(), "newer than asked: kept");
    assert!(s.get(&key).await.unwrap().is_some());
    assert!(s.remove(&key, 7).await.unwrap());
    assert_eq!(s.get(&key).await.unwrap(), None);
    assert!(!s.remove(&key, 7).await.unwrap(), "already gone");
}

/// Batches over the bound are `Invalid` and write nothing.
pub async fn topk_batches_are_bounded<S: TopKStore + ?Sized>(s: &S) {
    let lists: Vec<(ListKey, TopKList)> = (0..=TOPK_BATCH_MAX)
        .map(|i| (ListKey::Item(sku(&format!("tk-f-{i}"))), TopKList::empty(1)))
        .collect();
    let e = s.put(&lists).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Invalid);
    assert_eq!(s.get(&lists[0].0).await.unwrap(), None, "nothing written");
    let keys: Vec<ListKey> = lists.into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        s.get_many(&keys).await.unwrap_err().kind,
        ErrorKind::Invalid
    );
    assert_eq!(s.put(&[]).await.unwrap(), 0);
}

/// Concurrent writes of one key with different generations leave the highest.
pub async fn topk_concurrent_writes_keep_the_newest<S: TopKStore + ?Sized>(s: &S) {
    let key = ListKey::Item(sku("tk-g"));
    let writes: Vec<[(ListKey, TopKList); 1]> = (1..=20)
        .rev()
        .map(|g| [(key.clone(), sample_list(&format!("tk-g{g}"), 3, g))])
        .collect();
    join_all(writes.iter().map(|w| s.put(w)))
        .await
        .into_iter()
        .for_each(|r| {
            r.unwrap();
        });
    assert_eq!(s.get(&key).await.unwrap().unwrap().generation(), 20);
}

/// The longest SKU and user ids work as keys and items.
pub async fn topk_longest_ids<S: TopKStore + ?Sized>(s: &S) {
    let long_sku = sku(&format!(
        "tk-h{}",
        "x".repeat(commerce_core::limits::SKU_LEN_MAX - 4)
    ));
    let long_user = user(&format!(
        "tk-h+{}@example.com",
        "y".repeat(commerce_core::limits::ID_LEN_MAX - 17)
    ));
    let list = TopKList::new(1, vec![Scored::new(long_sku.clone(), 2.0)]).unwrap();
    let keys = [ListKey::Item(long_sku), ListKey::User(long_user)];
    for k in &keys {
        s.put(&[(k.clone(), list.clone())]).await.unwrap();
        assert_eq!(s.get(k).await.unwrap(), Some(list.clone()));
    }
}

/// Runs the [`TopKStore`] conformance suite against `$make`.
#[macro_export]
macro_rules! topk_store_conformance {
    ($make:expr) => {
        ::commerce_core::__conformance_cases!($make;
            topk_put_then_get => $crate::testkit::topk_put_then_get,
            topk_generations_never_go_back => $crate::testkit::topk_generations_never_go_back,
            topk_namespaces_are_separate => $crate::testkit::topk_namespaces_are_separate,
            topk_get_many_in_order => $crate::testkit::topk_get_many_in_order,
            topk_remove_respects_generation => $crate::testkit::topk_remove_respects_generation,
            topk_batches_are_bounded => $crate::testkit::topk_batches_are_bounded,
            topk_concurrent_writes_keep_the_newest => $crate::testkit::topk_concurrent_writes_keep_the_newest,
            topk_longest_ids => $crate::testkit::topk_longest_ids,
        );
    };
}

// ---- RecentlyViewedStore -------------------------------------------------------------------

fn skus(views: &[Viewed]) -> Vec<&str> {
    views.iter().map(|v| v.sku.as_str()).collect()
}

/// Views read back newest first with their times; an unknown session is empty.
pub async fn viewed_newest_first<S: RecentlyViewedStore + ?Sized>(s: &S) {
    assert!(
        s.capacity() >= 3,
        "the suite needs a capacity of at least 3"
    );
    let sess = session("rv-a");
    for (i, id) in ["rv-a-1", "rv-a-2", "rv-a-3"].into_iter().enumerate() {
        s.record(
            &sess,
            &Viewed {
                sku: sku(id),
                at: at(i64::try_from(i).unwrap()),
            },
        )
        .await
        .unwrap();
    }
    let recent = s.recent(&sess, 10).await.unwrap();
    assert_eq!(skus(&recent), ["rv-a-3", "rv-a-2", "rv-a-1"]);
    assert_eq!(recent[0].at, at(2));
    assert_eq!(
        skus(&s.recent(&sess, 2).await.unwrap()),
        ["rv-a-3", "rv-a-2"]
    );
    assert!(s.recent(&session("rv-a-none"), 5).await.unwrap().is_empty());
}

/// A SKU is kept once at its latest view; a redelivered older view changes nothing.
pub async fn viewed_once_at_latest<S: RecentlyViewedStore + ?Sized>(s: &S) {
    let sess = session("rv-b");
    let view = |id: &str, t| Viewed {
        sku: sku(id),
        at: at(t),
    };
    s.record(&sess, &view("rv-b-1", 1)).await.unwrap();
    s.record(&sess, &view("rv-b-2", 2)).await.unwrap();
    s.record(&sess, &view("rv-b-1", 3)).await.unwrap();
    assert_eq!(
        skus(&s.recent(&sess, 10).await.unwrap()),
        ["rv-b-1", "rv-b-2"]
    );
    s.record(&sess, &view("rv-b-1", 1)).await.unwrap();
    s.record(&sess, &view("rv-b-2", 2)).await.unwrap();
    let recent = s.recent(&sess, 10).await.unwrap();
    assert_eq!(skus(&recent), ["rv-b-1", "rv-b-2"]);
    assert_eq!(recent[0].at, at(3), "the latest view stays");
}

/// A session keeps only its `capacity` most recent SKUs.
pub async fn viewed_capacity_bounds_a_session<S: RecentlyViewedStore + ?Sized>(s: &S) {
    let sess = session("rv-c");
    let cap = s.capacity();
    for i in 0..cap + 3 {
        let t = i64::try_from(i).unwrap();
        s.record(
            &sess,
            &Viewed {
                sku: sku(&format!("rv-c-{i:03}")),
                at: at(t),
            },
        )
        .await
        .unwrap();
    }
    let recent = s.recent(&sess, cap + 10).await.unwrap();
    assert_eq!(recent.len(), cap);
    assert_eq!(recent[0].sku.as_str(), format!("rv-c-{:03}", cap + 2));
    assert_eq!(
        recent[cap - 1].sku.as_str(),
        format!("rv-c-{:03}", 3),
        "the oldest went first"
    );
    // An old view of an evicted SKU does not come back in.
    s.record(
        &sess,
        &Viewed {
            sku: sku("rv-c-000"),
            at: at(-100),
        },
    )
    .await
    .unwrap();
    assert!(
        !skus(&s.recent(&sess, cap).await.unwrap()).contains(&"rv-c-000"),
        "older than everything kept"
    );
}

/// Equal times list by descending SKU; times keep millisecond precision.
pub async fn viewed_ties_and_precision<S: RecentlyViewedStore + ?Sized>(s: &S) {
    let sess = session("rv-d");
    let t = at(0) + Duration::microseconds(1_234_567);
    for id in ["rv-d-a", "rv-d-c", "rv-d-b"] {
        s.record(
            &sess,
            &Viewed {
                sku: sku(id),
                at: t,
            },
        )
        .await
        .unwrap();
    }
    let recent = s.recent(&sess, 10).await.unwrap();
    assert_eq!(skus(&recent), ["rv-d-c", "rv-d-b", "rv-d-a"]);
    assert_eq!(recent[0].at, at(0) + Duration::milliseconds(1_234));
}

/// Sessions are independent; `clear` forgets one.
pub async fn viewed_sessions_are_independent<S: RecentlyViewedStore + ?Sized>(s: &S) {
    let (a, b) = (session("rv-e-a"), session("rv-e-b"));
    s.record(
        &a,
        &Viewed {
            sku: sku("rv-e-1"),
            at: at(1),
        },
    )
    .await
    .unwrap();
    s.record(
        &b,
        &Viewed {
            sku: sku("rv-e-2"),
            at: at(2),
        },
    )
    .await
    .unwrap();
    assert_eq!(skus(&s.recent(&a, 5).await.unwrap()), ["rv-e-1"]);
    s.clear(&a).await.unwrap();
    assert!(s.recent(&a, 5).await.unwrap().is_empty());
    assert_eq!(skus(&s.recent(&b, 5).await.unwrap()), ["rv-e-2"]);
    s.clear(&session("rv-e-none")).await.unwrap();
}

/// Concurrent views of one session end as if applied in any order: the latest `capacity`.
pub async fn viewed_concurrent_records<S: RecentlyViewedStore + ?Sized>(s: &S) {
    let sess = session("rv-f");
    let cap = s.capacity();
    let views: Vec<Viewed> = (0..cap * 2)
        .map(|i| Viewed {
            sku: sku(&format!("rv-f-{i:03}")),
            at: at(i64::try_from(i).unwrap()),
        })
        .collect();
    for r in join_all(views.iter().rev().map(|v| s.record(&sess, v))).await {
        r.unwrap();
    }
    let recent = s.recent(&sess, cap).await.unwrap();
    let want: Vec<String> = (cap..cap * 2)
        .rev()
        .map(|i| format!("rv-f-{i:03}"))
        .collect();
    assert_eq!(skus(&recent), want);
}

/// Runs the [`RecentlyViewedStore`] conformance suite against `$make` (capacity at least 3).
#[macro_export]
macro_rules! recently_viewed_conformance {
    ($make:expr) => {
        ::commerce_core::__conformance_cases!($make;
            viewed_newest_first => $crate::testkit::viewed_newest_first,
            viewed_once_at_latest => $crate::testkit::viewed_once_at_latest,
            viewed_capacity_bounds_a_session => $crate::testkit::viewed_capacity_bounds_a_session,
            viewed_ties_and_precision => $crate::testkit::viewed_ties_and_precision,
            viewed_sessions_are_independent => $crate::testkit::viewed_sessions_are_independent,
            viewed_concurrent_records => $crate::testkit::viewed_concurrent_records,
        );
    };
}

// ---- BackInStockStore ----------------------------------------------------------------------

/// Watching is a set; watchers list ascending, bounded by `limit`; unwatch removes.
pub async fn watch_is_a_set<S: BackInStockStore + ?Sized>(s: &S) {
    let item = sku("bis-a");
    for u in ["bis-a-c", "bis-a-a", "bis-a-b"] {
        assert!(s.watch(&user(u), &item).await.unwrap());
    }
    assert!(!s.watch(&user("bis-a-a"), &item).await.unwrap(), "already");
    let all: Vec<String> = s
        .watchers(&item, 10)
        .await
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(all, ["bis-a-a", "bis-a-b", "bis-a-c"]);
    assert_eq!(s.watchers(&item, 2).await.unwrap().len(), 2);
    assert!(s.unwatch(&user("bis-a-b"), &item).await.unwrap());
    assert!(!s.unwatch(&user("bis-a-b"), &item).await.unwrap());
    assert_eq!(s.watchers(&item, 10).await.unwrap().len(), 2);
    assert!(s.watchers(&sku("bis-a-none"), 10).await.unwrap().is_empty());
}

/// `back_in_stock` hands each watcher an arrival once and stops their watching; a repeat
/// returns nobody.
pub async fn back_in_stock_moves_watchers_once<S: BackInStockStore + ?Sized>(s: &S) {
    let item = sku("bis-b");
    let other = sku("bis-b-other");
    let (a, b) = (user("bis-b-a"), user("bis-b-b"));
    s.watch(&b, &item).await.unwrap();
    s.watch(&a, &item).await.unwrap();
    s.watch(&a, &other).await.unwrap();
    assert_eq!(
        s.back_in_stock(&item, at(5)).await.unwrap(),
        [a.clone(), b.clone()]
    );
    assert!(
        s.back_in_stock(&item, at(6)).await.unwrap().is_empty(),
        "once"
    );
    assert!(s.watchers(&item, 10).await.unwrap().is_empty());
    assert_eq!(
        s.watchers(&other, 10).await.unwrap(),
        std::slice::from_ref(&a),
        "others kept"
    );
    let arrivals = s.arrivals(&a, 10).await.unwrap();
    assert_eq!(
        arrivals,
        [Viewed {
            sku: item.clone(),
            at: at(5)
        }]
    );
    assert!(
        s.back_in_stock(&sku("bis-b-none"), at(1))
            .await
            .unwrap()
            .is_empty()
    );
}

/// Arrivals list newest first, each SKU once at its latest, bounded; `dismiss` removes one.
pub async fn arrivals_newest_first_and_dismissed<S: BackInStockStore + ?Sized>(s: &S) {
    let u = user("bis-c");
    for (i, id) in ["bis-c-1", "bis-c-2", "bis-c-1"].into_iter().enumerate() {
        s.watch(&u, &sku(id)).await.unwrap();
        s.back_in_stock(&sku(id), at(i64::try_from(i).unwrap()))
            .await
            .unwrap();
    }
    let list = s.arrivals(&u, 10).await.unwrap();
    assert_eq!(skus(&list), ["bis-c-1", "bis-c-2"]);
    assert_eq!(list[0].at, at(2));
    assert!(s.dismiss(&u, &sku("bis-c-1")).await.unwrap());
    assert!(!s.dismiss(&u, &sku("bis-c-1")).await.unwrap());
    assert_eq!(skus(&s.arrivals(&u, 10).await.unwrap()), ["bis-c-2"]);
    assert!(
        !s.dismiss(&user("bis-c-none"), &sku("bis-c-2"))
            .await
            .unwrap()
    );
    let busy = user("bis-c-busy");
    for i in 0..ARRIVALS_PER_USER_MAX + 2 {
        let item = sku(&format!("bis-c-b{i:03}"));
        s.watch(&busy, &item).await.unwrap();
        s.back_in_stock(&item, at(i64::try_from(i).unwrap()))
            .await
            .unwrap();
    }
    let list = s.arrivals(&busy, ARRIVALS_PER_USER_MAX + 10).await.unwrap();
    assert_eq!(list.len(), ARRIVALS_PER_USER_MAX, "the oldest go first");
    assert_eq!(
        list[0].sku.as_str(),
        format!("bis-c-b{:03}", ARRIVALS_PER_USER_MAX + 1)
    );
}

/// A user watching the most SKUs is refused another, and nothing changes.
pub async fn watches_are_bounded<S: BackInStockStore + ?Sized>(s: &S) {
    let u = user("bis-d");
    for i in 0..WATCHES_PER_USER_MAX {
        s.watch(&u, &sku(&format!("bis-d-{i}"))).await.unwrap();
    }
    let e = s.watch(&u, &sku("bis-d-extra")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Refused);
    assert!(s.watchers(&sku("bis-d-extra"), 1).await.unwrap().is_empty());
    assert!(
        !s.watch(&u, &sku("bis-d-0")).await.unwrap(),
        "a repeat is not refused"
    );
}

/// Concurrent `back_in_stock` calls hand each watcher out exactly once.
pub async fn concurrent_back_in_stock_hands_out_once<S: BackInStockStore + ?Sized>(s: &S) {
    let item = sku("bis-e");
    for i in 0..20 {
        s.watch(&user(&format!("bis-e-{i:02}")), &item)
            .await
            .unwrap();
    }
    let results = join_all((0..4).map(|t| s.back_in_stock(&item, at(t)))).await;
    let mut all: Vec<UserId> = results.into_iter().flat_map(Result::unwrap).collect();
    all.sort();
    let before = all.len();
    all.dedup();
    assert_eq!((before, all.len()), (20, 20), "each watcher once");
}

/// Runs the [`BackInStockStore`] conformance suite against `$make`.
#[macro_export]
macro_rules! back_in_stock_conformance {
    ($make:expr) => {
        ::commerce_core::__conformance_cases!($make;
            watch_is_a_set => $crate::testkit::watch_is_a_set,
            back_in_stock_moves_watchers_once => $crate::testkit::back_in_stock_moves_watchers_once,
            arrivals_newest_first_and_dismissed => $crate::testkit::arrivals_newest_first_and_dismissed,
            watches_are_bounded => $crate::testkit::watches_are_bounded,
            concurrent_back_in_stock_hands_out_once => $crate::testkit::concurrent_back_in_stock_hands_out_once,
        );
    };
}

// ---- ExperimentLog -------------------------------------------------------------------------

/// A record of `experiment` with id `id`: an exposure to `control` of user `u-{id}`.
pub fn sample_record(experiment: &str, id: &str) -> ExperimentRecord {
    ExperimentRecord {
        id: EventId::new(id).unwrap(),
        experiment: ExperimentId::new(experiment).unwrap(),
        user: user(&format!("u-{id}")),
        at: at(0),
        event: ExperimentEvent::Exposure {
            arm: ArmName::new("control").unwrap(),
        },
    }
}

/// Appends are idempotent by id; records read back in append order with dense positions.
pub async fn log_appends_once_in_order<S: ExperimentLog + ?Sized>(s: &S) {
    let exp = ExperimentId::new("xl-a").unwrap();
    let mut click = sample_record("xl-a", "c1");
    click.event = ExperimentEvent::Click { sku: sku("xl-a-1") };
    let mut buy = sample_record("xl-a", "b1");
    buy.event = ExperimentEvent::Conversion {
        order_id: OrderId::new("xl-a-o1").unwrap(),
    };
    let first = vec![sample_record("xl-a", "e1"), click.clone()];
    assert_eq!(s.append(&first).await.unwrap(), 2);
    assert_eq!(
        s.append(&[click.clone(), buy.clone()]).await.unwrap(),
        1,
        "the click was logged"
    );
    let read = s.read(&exp, 0, 100).await.unwrap();
    let seqs: Vec<u64> = read.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, [0, 1, 2]);
    assert_eq!(read[0].record, first[0]);
    assert_eq!(read[1].record, click);
    assert_eq!(read[2].record, buy);
    assert_eq!(s.append(&[]).await.unwrap(), 0);
}

/// Reads page from a position; past the end is empty; experiments are independent (the same
/// id in two experiments is two records).
pub async fn log_pages_and_experiments_are_independent<S: ExperimentLog + ?Sized>(s: &S) {
    let records: Vec<ExperimentRecord> = (0..7)
        .map(|i| sample_record("xl-b", &format!("r{i}")))
        .collect();
    s.append(&records).await.unwrap();
    s.append(&[sample_record("xl-b2", "r0")]).await.unwrap();
    let exp = ExperimentId::new("xl-b").unwrap();
    let page = s.read(&exp, 2, 3).await.unwrap();
    assert_eq!(page.iter().map(|r| r.seq).collect::<Vec<_>>(), [2, 3, 4]);
    assert_eq!(page[0].record, records[2]);
    assert!(s.read(&exp, 7, 10).await.unwrap().is_empty());
    assert!(s.read(&exp, 100, 10).await.unwrap().is_empty());
    let other = s
        .read(&ExperimentId::new("xl-b2").unwrap(), 0, 10)
        .await
        .unwrap();
    assert_eq!(other.len(), 1);
    assert!(
        s.read(&ExperimentId::new("xl-b-none").unwrap(), 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// A batch over the bound is `Invalid` and adds nothing.
pub async fn log_batches_are_bounded<S: ExperimentLog + ?Sized>(s: &S) {
    let records: Vec<ExperimentRecord> = (0..=EXPERIMENT_BATCH_MAX)
        .map(|i| sample_record("xl-c", &format!("r{i}")))
        .collect();
    assert_eq!(
        s.append(&records).await.unwrap_err().kind,
        ErrorKind::Invalid
    );
    assert!(
        s.read(&ExperimentId::new("xl-c").unwrap(), 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Concurrent appends add each record once, at dense positions.
pub async fn log_concurrent_appends<S: ExperimentLog + ?Sized>(s: &S) {
    let batches: Vec<Vec<ExperimentRecord>> = (0..8)
        .map(|b| {
            (0..10)
                .map(|i| sample_record("xl-d", &format!("r{}", (b * 5 + i) % 50)))
                .collect()
        })
        .collect();
    let added: usize = join_all(batches.iter().map(|b| s.append(b)))
        .await
        .into_iter()
        .map(Result::unwrap)
        .sum();
    let read = s
        .read(&ExperimentId::new("xl-d").unwrap(), 0, 1_000)
        .await
        .unwrap();
    assert_eq!(added, read.len());
    assert_eq!(read.len(), 45, "distinct ids");
    assert!(read.iter().zip(0..).all(|(r, i)| r.seq == i));
}

/// Runs the [`ExperimentLog`] conformance suite against `$make`.
#[macro_export]
macro_rules! experiment_log_conformance {
    ($make:expr) => {
        ::commerce_core::__conformance_cases!($make;
            log_appends_once_in_order => $crate::testkit::log_appends_once_in_order,
            log_pages_and_experiments_are_independent => $crate::testkit::log_pages_and_experiments_are_independent,
            log_batches_are_bounded => $crate::testkit::log_batches_are_bounded,
            log_concurrent_appends => $crate::testkit::log_concurrent_appends,
        );
    };
}
