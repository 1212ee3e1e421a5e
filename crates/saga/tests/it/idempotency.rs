//! Checkout idempotency by the client's key, and the orchestrator's other promises: external
//! completion, deadlines, leases, refund of a charge whose failure arrives late, and the
//! payment reconciliation pass.

use std::sync::Arc;

use chrono::TimeDelta;
use commerce_core::{
    AuthorizeRequest, Clock, Currency, IdempotencyKey, ManualClock, Money, NotificationKind,
    OrderId, OrderStatus, PaymentGateway, testkit,
};
use futures::executor::block_on;
use saga::*;

use crate::simulation::{World, input};

fn charges(world: &World) -> usize {
    world.payments.inner().snapshot().len()
}

#[test]
fn the_same_key_returns_the_same_outcome_and_charges_once() {
    let world = World::new(1, 0, 10);
    let checkout = world.checkout("w", 1);
    let order = input(&world, "key-1", &[(0, 1)], false, "tok_visa");
    let first = block_on(checkout.checkout(&order)).unwrap();
    assert_eq!(
        first,
        CheckoutOutcome::Confirmed {
            order_id: order.order.id.clone()
        }
    );
    for _ in 0..3 {
        assert_eq!(block_on(checkout.checkout(&order)).unwrap(), first);
    }
    assert_eq!(charges(&world), 1);
    // A second worker sees the same answer.
    assert_eq!(
        block_on(world.checkout("other", 2).checkout(&order)).unwrap(),
        first
    );
    // The same key with another cart is refused.
    let other = input(&world, "key-1", &[(1, 2)], false, "tok_visa");
    assert!(matches!(
        block_on(checkout.checkout(&other)),
        Err(saga::Error::InputMismatch(_))
    ));
    // A declined checkout is also the same failure every time, and charges nothing.
    let declined = input(&world, "key-2", &[(0, 1)], false, "tok_decline");
    let failed = block_on(checkout.checkout(&declined)).unwrap();
    assert!(matches!(failed, CheckoutOutcome::Failed { .. }));
    assert_eq!(block_on(checkout.checkout(&declined)).unwrap(), failed);
    assert_eq!(
        world
            .stock
            .level_now(&world.skus[0], world.clock.now())
            .unwrap()
            .held,
        0
    );
}

#[test]
fn a_second_request_while_the_first_runs_answers_in_progress() {
    let world = World::new(2, 0, 10);
    let a = world.checkout("worker-a", 1);
    let b = world.checkout("worker-b", 2);
    let order = input(&world, "key-3", &[(0, 1)], false, "tok_visa");
    // Worker A "dies" after three journal writes, holding the lease.
    let mut budget = 3;
    assert_eq!(
        block_on(a.checkout_with_budget(&order, &mut budget)).unwrap(),
        CheckoutOutcome::Unfinished
    );
    assert_eq!(
        block_on(b.checkout(&order)).unwrap(),
        CheckoutOutcome::InProgress
    );
    assert_eq!(charges(&world), 0);
    // After the lease expires, B takes over and finishes it, once.
    world.clock.advance(TimeDelta::seconds(301));
    assert_eq!(
        block_on(b.checkout(&order)).unwrap(),
        CheckoutOutcome::Confirmed {
            order_id: order.order.id.clone()
        }
    );
    assert_eq!(
        block_on(a.checkout(&order)).unwrap(),
        CheckoutOutcome::Confirmed {
            order_id: order.order.id.clone()
        }
    );
    assert_eq!(charges(&world), 1);
}

#[test]
fn a_crash_after_the_charge_resolves_by_asking_not_by_charging_again() {
    // Crash at every possible journal write; each time recovery must end with one charge.
    for crash_at in 1..16 {
        let world = World::new(3, 0, 10);
        let a = world.checkout("worker-a", 1);
        let order = input(
            &world,
            &format!("key-crash-{crash_at}"),
            &[(0, 1)],
            true,
            "tok_visa",
        );
        let mut budget = crash_at;
        let _ = block_on(a.checkout_with_budget(&order, &mut budget)).unwrap();
        world.clock.advance(TimeDelta::seconds(301));
        let recovered = block_on(world.checkout("worker-b", 2).orchestrator().recover(10)).unwrap();
        assert!(recovered.len() <= 1);
        let outcome = block_on(a.checkout(&order)).unwrap();
        assert_eq!(
            outcome,
            CheckoutOutcome::Confirmed {
                order_id: order.order.id.clone()
            },
            "crash at write {crash_at}"
        );
        assert_eq!(charges(&world), 1, "crash at write {crash_at}");
    }
}

#[test]
fn a_step_can_wait_for_an_external_signal() {
    // A saga whose only step waits for a webhook.
    #[derive(Debug)]
    struct Webhook;
    #[async_trait::async_trait]
    impl SagaDefinition for Webhook {
        fn kind(&self) -> &'static str {
            "webhook"
        }
        fn steps(&self) -> &'static [StepSpec] {
            &[StepSpec {
                name: "three_ds",
                kind: StepKind::Pivot,
            }]
        }
        async fn act(&self, _: &StepContext<'_>) -> Result<Vec<u8>, StepError> {
            Err(StepError::Pending)
        }
        async fn resolve(&self, _: &StepContext<'_>) -> Result<Option<Vec<u8>>, StepError> {
            Err(StepError::Pending)
        }
        async fn compensate(&self, _: &StepContext<'_>) -> Result<(), StepError> {
            Ok(())
        }
    }
    let clock = Arc::new(ManualClock::new(testkit::t0()));
    let journal = Arc::new(InMemoryJournal::new());
    let o = Orchestrator::new(
        Webhook,
        journal.clone(),
        clock.clone(),
        Arc::new(ClockSleeper(clock.clone())),
        "w",
        RetryPolicy::default(),
        7,
    );
    let deadline = testkit::t0() + TimeDelta::minutes(15);
    assert_eq!(
        block_on(o.start("s-1", b"in".to_vec(), deadline)).unwrap(),
        Drive::Waiting { step: 0 }
    );
    assert_eq!(
        block_on(o.drive("s-1")).unwrap(),
        Drive::Waiting { step: 0 }
    );
    match block_on(o.complete("s-1", 0, Ok(b"authenticated".to_vec()))).unwrap() {
        Drive::Completed(rec) => assert_eq!(
            rec.steps[0],
            StepState::Done {
                output: b"authenticated".to_vec()
            }
        ),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        block_on(o.start("s-2", b"in".to_vec(), deadline)).unwrap(),
        Drive::Waiting { .. }
    ));
    match block_on(o.complete("s-2", 0, Err("3-D Secure failed".into()))).unwrap() {
        Drive::Compensated(rec) => assert_eq!(rec.failure.as_deref(), Some("3-D Secure failed")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_late_failure_after_the_money_moved_is_refunded() {
    // The charge times out after taking effect and the saga is then told the step failed (a
    // late "payment failed" webhook): compensation asks the provider and refunds.
    let world = World::new(4, 0, 10);
    let checkout = world.checkout("w", 1);
    let order = input(&world, "key-late", &[(1, 1)], false, "tok_visa");
    // Run up to (not past) the journal write that would record the charge as done.
    let mut budget = 7;
    let _ = block_on(checkout.checkout_with_budget(&order, &mut budget)).unwrap();
    let paid = world.payments.inner().snapshot();
    assert_eq!(paid.len(), 1, "the charge happened before the crash");
    // The webhook is handled once the crashed driver's lease has lapsed.
    world.clock.advance(TimeDelta::seconds(301));
    let drive = block_on(checkout.orchestrator().complete(
        order.order.id.as_str(),
        CHARGE_STEP,
        Err("provider reported a failure".into()),
    ))
    .unwrap();
    assert!(matches!(drive, Drive::Compensated(_)), "{drive:?}");
    let after = &world.payments.inner().snapshot()[0];
    assert_eq!(after.refunded, after.captured, "refunded in full");
    assert_eq!(world.orders.snapshot()[0].status(), OrderStatus::Cancelled);
    assert_eq!(
        world
            .stock
            .level_now(&world.skus[1], world.clock.now())
            .unwrap()
            .held,
        0
    );
    assert!(
        world
            .notifier
            .sent()
            .iter()
            .any(|n| n.kind == NotificationKind::OrderCancelled)
    );
}

#[test]
fn steps_before_the_charge_stop_at_the_deadline() {
    let world = World::new(5, 0, 10);
    let checkout = world.checkout("w", 1);
    let order = input(&world, "key-slow", &[(2, 1)], false, "tok_visa");
    let mut budget = 2; // started, claims done
    let _ = block_on(checkout.checkout_with_budget(&order, &mut budget)).unwrap();
    world.clock.advance(TimeDelta::minutes(16)); // past the 15-minute hold TTL
    let outcome = block_on(checkout.checkout(&order)).unwrap();
    assert!(
        matches!(&outcome, CheckoutOutcome::Failed { reason, .. } if reason.contains("deadline")),
        "{outcome:?}"
    );
    assert_eq!(charges(&world), 0);
}

#[test]
fn reconciliation_refunds_a_charge_without_a_confirmed_order() {
    let world = World::new(6, 0, 10);
    let checkout = world.checkout("w", 1);
    let good = input(&world, "key-good", &[(0, 1)], false, "tok_visa");
    let _ = block_on(checkout.checkout(&good)).unwrap();
    // A charge some other path made for an order that never existed (the Saleor #12229 case).
    let stray = AuthorizeRequest {
        idempotency_key: IdempotencyKey::new("legacy:charge").unwrap(),
        order_id: OrderId::new("never-created").unwrap(),
        amount: Money::from_minor(5_000, Currency::EUR),
        method_token: "tok_visa".into(),
        capture: true,
    };
    let stray = block_on(world.payments.inner().authorize(&stray)).unwrap();
    let refunded = block_on(reconcile_payments(
        world.payments.inner(),
        world.orders.as_ref(),
        world.journal.as_ref(),
    ))
    .unwrap();
    assert_eq!(refunded, vec![stray.payment_ref.clone()]);
    let again = block_on(reconcile_payments(
        world.payments.inner(),
        world.orders.as_ref(),
        world.journal.as_ref(),
    ))
    .unwrap();
    assert!(again.is_empty(), "a second pass refunds nothing");
    let kept = world
        .payments
        .inner()
        .snapshot()
        .into_iter()
        .find(|p| p.order_id == good.order.id)
        .unwrap();
    assert!(
        kept.refunded.is_zero(),
        "the confirmed order keeps its payment"
    );
}

#[test]
fn a_step_that_hangs_times_out_and_is_resolved() {
    #[derive(Debug)]
    struct Hangs;
    #[async_trait::async_trait]
    impl SagaDefinition for Hangs {
        fn kind(&self) -> &'static str {
            "hangs"
        }
        fn steps(&self) -> &'static [StepSpec] {
            &[StepSpec {
                name: "slow_call",
                kind: StepKind::Pivot,
            }]
        }
        async fn act(&self, _: &StepContext<'_>) -> Result<Vec<u8>, StepError> {
            futures::future::pending().await
        }
        async fn resolve(&self, _: &StepContext<'_>) -> Result<Option<Vec<u8>>, StepError> {
            Ok(Some(b"it happened".to_vec()))
        }
        async fn compensate(&self, _: &StepContext<'_>) -> Result<(), StepError> {
            Ok(())
        }
    }
    let clock = Arc::new(ManualClock::new(testkit::t0()));
    let o = Orchestrator::new(
        Hangs,
        Arc::new(InMemoryJournal::new()),
        clock.clone(),
        Arc::new(ClockSleeper(clock.clone())),
        "w",
        RetryPolicy::default(),
        3,
    );
    match block_on(o.start("hang-1", vec![], testkit::t0() + TimeDelta::minutes(15))).unwrap() {
        Drive::Completed(rec) => assert_eq!(
            rec.steps[0],
            StepState::Done {
                output: b"it happened".to_vec()
            }
        ),
        other => panic!("{other:?}"),
    }
    assert!(
        clock.now() >= testkit::t0() + TimeDelta::seconds(10),
        "the step timeout elapsed"
    );
}

#[test]
fn eight_threads_with_one_key_charge_once() {
    for round in 0..20 {
        let world = Arc::new(World::new(round, 0, 10));
        let order = Arc::new(input(
            &world,
            &format!("race-{round}"),
            &[(0, 1)],
            false,
            "tok_visa",
        ));
        let barrier = Arc::new(std::sync::Barrier::new(8));
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let (world, order, barrier) = (world.clone(), order.clone(), barrier.clone());
                std::thread::spawn(move || {
                    let checkout = world.checkout(&format!("thread-{t}"), t);
                    barrier.wait();
                    block_on(checkout.checkout(&order)).unwrap()
                })
            })
            .collect();
        let outcomes: Vec<CheckoutOutcome> =
            handles.into_iter().map(|h| h.join().unwrap()).collect();
        let confirmed = CheckoutOutcome::Confirmed {
            order_id: order.order.id.clone(),
        };
        assert!(
            outcomes
                .iter()
                .all(|o| *o == confirmed || *o == CheckoutOutcome::InProgress),
            "{outcomes:?}"
        );
        assert!(outcomes.contains(&confirmed), "{outcomes:?}");
        assert_eq!(charges(&world), 1, "round {round}: one charge");
        assert_eq!(
            block_on(world.checkout("late", 99).checkout(&order)).unwrap(),
            confirmed
        );
    }
}

#[test]
fn one_instance_serving_two_requests_with_one_key_charges_once() {
    for round in 0..20 {
        let world = Arc::new(World::new(100 + round, 0, 10));
        let checkout = Arc::new(world.checkout("shared", round));
        let order = Arc::new(input(
            &world,
            &format!("shared-{round}"),
            &[(0, 1)],
            false,
            "tok_visa",
        ));
        let barrier = Arc::new(std::sync::Barrier::new(4));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let (c, o, b) = (checkout.clone(), order.clone(), barrier.clone());
                std::thread::spawn(move || {
                    b.wait();
                    block_on(c.checkout(&o)).unwrap()
                })
            })
            .collect();
        let outcomes: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert!(
            outcomes.iter().all(|o| matches!(
                o,
                CheckoutOutcome::Confirmed { .. } | CheckoutOutcome::InProgress
            )),
            "{outcomes:?}"
        );
        assert_eq!(charges(&world), 1, "round {round}");
    }
}

#[test]
fn bad_inputs_are_typed_errors_not_panics() {
    let world = World::new(8, 0, 10);
    let checkout = world.checkout("w", 1);
    let mut order = input(&world, "bad-ttl", &[(0, 1)], false, "tok_visa");
    order.hold_ttl_secs = i64::MAX;
    assert!(matches!(
        block_on(checkout.checkout(&order)),
        Err(saga::Error::NotReady(_))
    ));
    let good = input(&world, "good", &[(0, 1)], false, "tok_visa");
    let _ = block_on(checkout.checkout(&good)).unwrap();
    let drive = block_on(
        checkout
            .orchestrator()
            .complete("good", usize::MAX, Ok(vec![])),
    )
    .unwrap();
    assert!(matches!(drive, Drive::Completed(_)));
    let _ = world
        .stock
        .sweep_now(chrono::DateTime::<chrono::Utc>::MIN_UTC, 10)
        .unwrap();
}
