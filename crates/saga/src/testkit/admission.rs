//! The [`AdmissionQueue`] conformance suite: the in-memory queue here, the Redis one in the
//! adapters (single node and cluster). Each case opens sales of its own.

use chrono::{DateTime, TimeDelta, Utc};
use commerce_core::testkit::t0;
use commerce_core::{ErrorKind, UserId};

use crate::{Admission, AdmissionQueue, SaleConfig, lottery_rank};

fn ms(n: i64) -> DateTime<Utc> {
    t0() + TimeDelta::milliseconds(n)
}

fn user(name: &str) -> UserId {
    UserId::new(name).unwrap()
}

fn config(spots: u32, admit_per_sec: u32) -> SaleConfig {
    SaleConfig {
        starts_at: t0(),
        spots,
        admit_per_sec,
        admission_ttl: TimeDelta::minutes(10),
        seed: 0x5eed,
    }
}

/// After the start, shoppers wait in arrival order and are admitted at the rate.
pub async fn after_the_start_it_is_first_come_first_served<Q: AdmissionQueue + ?Sized>(q: &Q) {
    q.open("fifo", &config(10, 1)).await.unwrap();
    for (i, name) in ["ann", "ben", "cat"].into_iter().enumerate() {
        let at = ms(100 * (1 + i64::try_from(i).unwrap()));
        assert_eq!(
            q.join("fifo", &user(name), at).await.unwrap(),
            Admission::Waiting {
                position: u64::try_from(i).unwrap() + 1
            }
        );
    }
    assert_eq!(q.admit("fifo", ms(1500)).await.unwrap(), vec![user("ann")]);
    assert!(
        q.admit("fifo", ms(1900)).await.unwrap().is_empty(),
        "the rate holds"
    );
    assert_eq!(q.admit("fifo", ms(2000)).await.unwrap(), vec![user("ben")]);
    assert_eq!(
        q.status("fifo", &user("ann")).await.unwrap(),
        Some(Admission::Admitted {
            until: ms(1500) + TimeDelta::minutes(10)
        })
    );
    assert_eq!(
        q.status("fifo", &user("cat")).await.unwrap(),
        Some(Admission::Waiting { position: 1 })
    );
    assert_eq!(q.status("fifo", &user("dan")).await.unwrap(), None);
}

/// The crowd present before the start is admitted in the lottery's order (not arrival order);
/// later arrivals come after all of them, in arrival order.
pub async fn the_crowd_at_the_start_is_shuffled_once<Q: AdmissionQueue + ?Sized>(q: &Q) {
    let c = config(100, 1_000);
    q.open("lottery", &c).await.unwrap();
    let early: Vec<UserId> = (0..50).map(|i| user(&format!("early-{i:02}"))).collect();
    for (i, u) in early.iter().enumerate() {
        let at = ms(-60_000 + 1_000 * i64::try_from(i).unwrap());
        let _ = q.join("lottery", u, at).await.unwrap();
    }
    let late: Vec<UserId> = (0..5).map(|i| user(&format!("late-{i}"))).collect();
    for (i, u) in late.iter().enumerate() {
        let _ = q
            .join("lottery", u, ms(i64::try_from(i).unwrap()))
            .await
            .unwrap();
    }
    let admitted = q.admit("lottery", ms(60000)).await.unwrap();
    let mut drawn = early.clone();
    drawn.sort_by_key(|u| (lottery_rank(c.seed, u), u.as_str().to_owned()));
    assert_ne!(drawn, early, "a shuffle, not the arrival order");
    let expected: Vec<UserId> = drawn.into_iter().chain(late).collect();
    assert_eq!(admitted, expected);
}

/// Two thousand shoppers at once for a hundred spots, admitted by several tickers at once:
/// exactly a hundred distinct shoppers get in, everyone else is told it is over.
pub async fn never_more_than_the_spots<Q: AdmissionQueue + ?Sized>(q: &Q) {
    q.open("crowd", &config(100, 1_000)).await.unwrap();
    let shoppers: Vec<UserId> = (0..2_000).map(|i| user(&format!("s-{i}"))).collect();
    let joins = shoppers.iter().map(|u| q.join("crowd", u, ms(-1000)));
    for j in futures::future::join_all(joins).await {
        assert!(matches!(j.unwrap(), Admission::Waiting { .. }));
    }
    let tickers = (0..10).map(|t| q.admit("crowd", ms(10 * t + 50)));
    let mut admitted: Vec<UserId> = futures::future::join_all(tickers)
        .await
        .into_iter()
        .flat_map(Result::unwrap)
        .collect();
    admitted.extend(q.admit("crowd", ms(10000)).await.unwrap());
    admitted.extend(q.admit("crowd", ms(20000)).await.unwrap());
    let n = admitted.len();
    admitted.sort();
    admitted.dedup();
    assert_eq!((n, admitted.len()), (100, 100));
    let left_out = shoppers.iter().find(|u| !admitted.contains(u)).unwrap();
    assert_eq!(
        q.status("crowd", left_out).await.unwrap(),
        Some(Admission::Closed)
    );
    assert_eq!(
        q.join("crowd", &user("latecomer"), ms(30000))
            .await
            .unwrap(),
        Admission::Closed
    );
}

/// Joining again answers where the shopper stands and changes nothing.
pub async fn joining_again_changes_nothing<Q: AdmissionQueue + ?Sized>(q: &Q) {
    q.open("again", &config(1, 1)).await.unwrap();
    let first = q.join("again", &user("ann"), ms(1000)).await.unwrap();
    assert_eq!(first, Admission::Waiting { position: 1 });
    let _ = q.join("again", &user("ben"), ms(1100)).await.unwrap();
    assert_eq!(
        q.join("again", &user("ann"), ms(1200)).await.unwrap(),
        first
    );
    assert_eq!(q.admit("again", ms(2000)).await.unwrap(), vec![user("ann")]);
    assert!(matches!(
        q.join("again", &user("ann"), ms(3000)).await.unwrap(),
        Admission::Admitted { .. }
    ));
}

/// Sales are opened once with one configuration; unknown sales and bad input are refused.
pub async fn bad_sales_are_refused<Q: AdmissionQueue + ?Sized>(q: &Q) {
    q.open("once", &config(5, 5)).await.unwrap();
    q.open("once", &config(5, 5)).await.unwrap();
    assert_eq!(
        q.open("once", &config(6, 5)).await.unwrap_err().kind,
        ErrorKind::Conflict
    );
    assert_eq!(
        q.join("never-opened", &user("ann"), t0())
            .await
            .unwrap_err()
            .kind,
        ErrorKind::NotFound
    );
    for bad in ["", "has space", "x{tag}", &"x".repeat(65)] {
        assert_eq!(
            q.open(bad, &config(1, 1)).await.unwrap_err().kind,
            ErrorKind::Invalid,
            "{bad:?}"
        );
    }
    assert_eq!(
        q.open("zero", &config(0, 1)).await.unwrap_err().kind,
        ErrorKind::Invalid
    );
}

/// Runs the [`AdmissionQueue`] conformance suite against `$make`.
#[macro_export]
macro_rules! admission_queue_conformance {
    ($make:expr) => {
        ::commerce_core::__conformance_cases!($make;
            after_the_start_it_is_first_come_first_served => $crate::testkit::admission::after_the_start_it_is_first_come_first_served,
            the_crowd_at_the_start_is_shuffled_once => $crate::testkit::admission::the_crowd_at_the_start_is_shuffled_once,
            never_more_than_the_spots => $crate::testkit::admission::never_more_than_the_spots,
            joining_again_changes_nothing => $crate::testkit::admission::joining_again_changes_nothing,
            bad_sales_are_refused => $crate::testkit::admission::bad_sales_are_refused,
        );
    };
}
