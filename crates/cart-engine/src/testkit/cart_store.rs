//! Conformance cases for [`CartStore`].

use chrono::TimeDelta;
use commerce_core::testkit::{events_with_id, sample_product, t0};
use commerce_core::{
    CartId, CasOutcome, Currency, DomainEvent, ErrorKind, EventEnvelope, EventId, EventLog, UserId,
};
use futures::future::join_all;

use crate::{Cart, CartCommand, CartStatus, CartStore, Mutation};

fn cart(id: &str, owner: Option<&str>) -> Cart {
    Cart::new(
        CartId::new(id).unwrap(),
        owner.map(|o| UserId::new(o).unwrap()),
        Currency::EUR,
        None,
        t0(),
    )
}

fn add_one(c: &mut Cart) {
    let p = sample_product("p-store", "STORE-SKU");
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

/// An inserted cart reads back equal; a second insert of its id is `Conflict`.
pub async fn insert_then_get<S: CartStore + ?Sized, L: EventLog + ?Sized>(store: &S, _log: &L) {
    let c = cart("cs-a-1", None);
    store.insert(c.clone(), &[]).await.unwrap();
    assert_eq!(store.get(c.id()).await.unwrap(), Some(c.clone()));
    assert_eq!(
        store.insert(c, &[]).await.unwrap_err().kind,
        ErrorKind::Conflict
    );
    assert_eq!(
        store
            .get(&CartId::new("cs-missing").unwrap())
            .await
            .unwrap(),
        None
    );
}

/// `update` writes only over the expected version.
pub async fn update_is_compare_and_set<S: CartStore + ?Sized, L: EventLog + ?Sized>(
    store: &S,
    _log: &L,
) {
    let c = cart("cs-b-1", None);
    store.insert(c.clone(), &[]).await.unwrap();
    let mut next = c.clone();
    add_one(&mut next);
    assert_eq!(
        store.update(next.clone(), 0, &[]).await.unwrap(),
        CasOutcome::Committed
    );
    let mut stale = c.clone();
    add_one(&mut stale);
    assert_eq!(
        store.update(stale, 0, &[]).await.unwrap(),
        CasOutcome::VersionMismatch { current: 1 }
    );
    assert_eq!(store.get(c.id()).await.unwrap(), Some(next));
    let ghost = cart("cs-b-ghost", None);
    assert_eq!(
        store.update(ghost, 0, &[]).await.unwrap_err().kind,
        ErrorKind::NotFound
    );
}

/// A user's active cart is theirs alone; a second active cart for them is `Conflict`; owners
/// never change.
pub async fn owners_are_isolated<S: CartStore + ?Sized, L: EventLog + ?Sized>(store: &S, _log: &L) {
    let alice = cart("cs-c-alice", Some("cs-alice"));
    let bob = cart("cs-c-bob", Some("cs-bob"));
    store.insert(alice.clone(), &[]).await.unwrap();
    store.insert(bob.clone(), &[]).await.unwrap();
    let alice_id = UserId::new("cs-alice").unwrap();
    assert_eq!(
        store.get_active_for_user(&alice_id).await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(
        store
            .get_active_for_user(&UserId::new("cs-bob").unwrap())
            .await
            .unwrap(),
        Some(bob)
    );
    assert_eq!(
        store
            .get_active_for_user(&UserId::new("cs-carol").unwrap())
            .await
            .unwrap(),
        None
    );
    let second = cart("cs-c-alice-2", Some("cs-alice"));
    assert_eq!(
        store.insert(second, &[]).await.unwrap_err().kind,
        ErrorKind::Conflict
    );
    let stolen = Cart::new(
        alice.id().clone(),
        Some(UserId::new("cs-mallory").unwrap()),
        Currency::EUR,
        None,
        t0(),
    );
    assert_eq!(
        store.update(stolen, 0, &[]).await.unwrap_err().kind,
        ErrorKind::Conflict
    );
    assert_eq!(
        store.get_active_for_user(&alice_id).await.unwrap(),
        Some(alice)
    );
}

/// A checked-out cart is no longer the user's active cart, and they may start a new one.
pub async fn inactive_carts_free_the_owner<S: CartStore + ?Sized, L: EventLog + ?Sized>(
    store: &S,
    _log: &L,
) {
    let c = cart("cs-d-1", Some("cs-dave"));
    store.insert(c.clone(), &[]).await.unwrap();
    let mut done = c.clone();
    done.mark_checked_out().unwrap();
    assert_eq!(
        store.update(done, 0, &[]).await.unwrap(),
        CasOutcome::Committed
    );
    let dave = UserId::new("cs-dave").unwrap();
    assert_eq!(store.get_active_for_user(&dave).await.unwrap(), None);
    store
        .insert(cart("cs-d-2", Some("cs-dave")), &[])
        .await
        .unwrap();
    assert_eq!(
        store
            .get_active_for_user(&dave)
            .await
            .unwrap()
            .unwrap()
            .id()
            .as_str(),
        "cs-d-2"
    );
}

/// `list_expired` returns active carts past their expiry, oldest first, and nothing else.
pub async fn list_expired_finds_only_expired_active_carts<
    S: CartStore + ?Sized,
    L: EventLog + ?Sized,
>(
    store: &S,
    _log: &L,
) {
    let old = cart("cs-e-old", None);
    let mut newer = Cart::new(
        CartId::new("cs-e-newer").unwrap(),
        None,
        Currency::EUR,
        None,
        t0() + TimeDelta::days(1),
    );
    add_one(&mut newer);
    let fresh = Cart::new(
        CartId::new("cs-e-fresh").unwrap(),
        None,
        Currency::EUR,
        None,
        t0() + TimeDelta::days(40),
    );
    for c in [old.clone(), newer.clone(), fresh] {
        store.insert(c, &[]).await.unwrap();
    }
    let now = t0() + TimeDelta::days(35);
    let ids: Vec<String> = store
        .list_expired(now, 100)
        .await
        .unwrap()
        .iter()
        .map(|c| c.id().to_string())
        .filter(|id| id.starts_with("cs-e-"))
        .collect();
    assert_eq!(ids, ["cs-e-old", "cs-e-newer"]);
    let mut abandoned = old.clone();
    assert!(abandoned.abandon(now));
    assert_eq!(
        store.update(abandoned, old.version(), &[]).await.unwrap(),
        CasOutcome::Committed
    );
    let after: Vec<_> = store
        .list_expired(now, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.id() == old.id())
        .collect();
    assert!(after.is_empty(), "an abandoned cart is not listed again");
    assert!(store.list_expired(now, 1).await.unwrap().len() <= 1);
    assert_eq!(
        *store.get(old.id()).await.unwrap().unwrap().status(),
        CartStatus::Abandoned
    );
}

/// Of concurrent updates from one version, exactly one commits.
pub async fn concurrent_updates_have_one_winner<S: CartStore + ?Sized, L: EventLog + ?Sized>(
    store: &S,
    _log: &L,
) {
    let c = cart("cs-f-1", None);
    store.insert(c.clone(), &[]).await.unwrap();
    let updates = (0..8).map(|_| {
        let mut next = c.clone();
        add_one(&mut next);
        store.update(next, 0, &[])
    });
    let results = join_all(updates).await;
    assert_eq!(
        results
            .iter()
            .filter(|r| matches!(r, Ok(CasOutcome::Committed)))
            .count(),
        1
    );
}

/// A write commits its events with it; a refused or lost write commits none.
pub async fn events_commit_with_the_write<S: CartStore + ?Sized, L: EventLog + ?Sized>(
    store: &S,
    log: &L,
) {
    let event = |id: &str| {
        EventEnvelope::new(
            EventId::new(id).unwrap(),
            t0(),
            DomainEvent::CartAbandoned {
                cart_id: CartId::new("cs-g-1").unwrap(),
                user_id: None,
                last_activity_at: t0(),
            },
        )
    };
    let c = cart("cs-g-1", None);
    store
        .insert(c.clone(), &[event("cs-g:created")])
        .await
        .unwrap();
    assert_eq!(
        store
            .insert(c.clone(), &[event("cs-g:twice")])
            .await
            .unwrap_err()
            .kind,
        ErrorKind::Conflict
    );
    let mut next = c.clone();
    add_one(&mut next);
    assert_eq!(
        store
            .update(next, 0, &[event("cs-g:added"), event("cs-g:added")])
            .await
            .unwrap(),
        CasOutcome::Committed
    );
    let mut stale = c.clone();
    add_one(&mut stale);
    assert!(matches!(
        store
            .update(stale, 0, &[event("cs-g:stale")])
            .await
            .unwrap(),
        CasOutcome::VersionMismatch { .. }
    ));
    for (id, n) in [
        ("cs-g:created", 1),
        ("cs-g:twice", 0),
        ("cs-g:added", 1),
        ("cs-g:stale", 0),
    ] {
        assert_eq!(events_with_id(log, id).await, n, "{id}");
    }
}

/// Runs the [`CartStore`] conformance suite against `$make`, which yields `(store, log)`: the
/// store and a shared handle (`Arc`) to the event log its writes commit to.
#[macro_export]
macro_rules! cart_store_conformance {
    ($make:expr) => {
        ::commerce_core::__conformance_cases_with_log!($make;
            insert_then_get => $crate::testkit::cart_store::insert_then_get,
            update_is_compare_and_set => $crate::testkit::cart_store::update_is_compare_and_set,
            owners_are_isolated => $crate::testkit::cart_store::owners_are_isolated,
            inactive_carts_free_the_owner => $crate::testkit::cart_store::inactive_carts_free_the_owner,
            list_expired_finds_only_expired_active_carts => $crate::testkit::cart_store::list_expired_finds_only_expired_active_carts,
            concurrent_updates_have_one_winner => $crate::testkit::cart_store::concurrent_updates_have_one_winner,
            events_commit_with_the_write => $crate::testkit::cart_store::events_commit_with_the_write,
        );
    };
}
