//! Checkout idempotency by the client's key, crash recovery, and the orchestrator's other
//! promises: typed steps and outputs, external completion, deadlines, leases, step timeouts,
//! refund of a charge whose failure arrives late, and the payment reconciliation pass.

use std::sync::Arc;

use chrono::TimeDelta;
use commerce_core::testkit::faults::CrashPoint;
use commerce_core::testkit::t0;
use commerce_core::{
    AuthorizeRequest, Clock, Currency, ErrorKind, IdempotencyKey, ManualClock, Money,
    NotificationKind, OrderId, OrderStatus, PaymentGateway,
};
use futures::FutureExt;
use futures::executor::block_on;
use inventory::StockLevels;
use saga::*;
use serde::{Deserialize, Serialize};

use crate::world::{World, input};

fn charges(world: &World) -> usize {
    world.payments.snapshot().len()
}

fn confirmed(order: &CheckoutInput) -> CheckoutOutcome {
    CheckoutOutcome::Confirmed {
        order_id: order.order.id.clone(),
    }
}

#[test]
fn the_same_key_returns_the_same_outcome_and_charges_once() {
    let world = World::new(10);
    let checkout = world.checkout("w", 1);
    let order = input(&world, "key-1", &[(0, 1)], false, "tok_visa");
    let first = block_on(checkout.checkout(&order)).unwrap();
    assert_eq!(first, confirmed(&order));
    for _ in 0..3 {
        assert_eq!(block_on(checkout.checkout(&order)).unwrap(), first);
    }
    assert_eq!(charges(&world), 1);
    // A second worker sees the same answer.
    assert_eq!(
        block_on(world.checkout("other", 2).checkout(&order)).unwrap(),
        first
    );
    // The same key with another cart is refused, as a conflict.
    let other = input(&world, "key-1", &[(1, 2)], false, "tok_visa");
    let err = block_on(checkout.checkout(&other)).unwrap_err();
    assert!(matches!(err, saga::Error::InputMismatch { .. }), "{err}");
    assert_eq!(err.kind(), ErrorKind::Conflict);
    // A declined checkout is the same typed failure every time, and charges nothing.
    let declined = input(&world, "key-2", &[(0, 1)], false, "tok_decline");
    let failed = block_on(checkout.checkout(&declined)).unwrap();
    assert!(
        matches!(
            &failed,
            CheckoutOutcome::Failed {
                reason: CheckoutFailure::PaymentDeclined { .. },
                ..
            }
        ),
        "{failed:?}"
    );
    assert_eq!(block_on(checkout.checkout(&declined)).unwrap(), failed);
    let level = block_on(world.stock.level(&world.skus[0], world.clock.now())).unwrap();
    assert_eq!(level.held, 0);
}

#[test]
fn failures_say_why_in_types() {
    let world = World::new(1);
    let checkout = world.checkout("w", 1);
    // Two of one SKU and one of another, with one unit each: both lines are short.
    let short = input(&world, "short", &[(0, 2), (1, 2)], false, "tok_visa");
    let outcome = block_on(checkout.checkout(&short)).unwrap();
    let CheckoutOutcome::Failed {
        reason: CheckoutFailure::OutOfStock { lines },
        ..
    } = &outcome
    else {
        panic!("{outcome:?}");
    };
    let skus: Vec<&str> = lines.iter().map(|l| l.sku.as_str()).collect();
    assert_eq!(skus, ["SKU-0", "SKU-1"]);
    assert_eq!((lines[0].requested, lines[0].available), (2, 1));
    // The promotion's limit (2 uses in total).
    let world = World::new(10);
    let checkout = world.checkout("w", 1);
    for i in 0..2 {
        let ok = input(&world, &format!("promo-{i}"), &[(0, 1)], true, "tok_visa");
        assert_eq!(block_on(checkout.checkout(&ok)).unwrap(), confirmed(&ok));
    }
    let third = input(&world, "promo-2", &[(0, 1)], true, "tok_visa");
    let outcome = block_on(checkout.checkout(&third)).unwrap();
    assert!(
        matches!(
            &outcome,
            CheckoutOutcome::Failed {
                reason: CheckoutFailure::PromotionLimitReached {
                    limit: cart_engine::LimitReached::Total,
                    ..
                },
                ..
            }
        ),
        "{outcome:?}"
    );
    let CheckoutOutcome::Failed { reason, .. } = outcome else {
        unreachable!()
    };
    assert_eq!(reason.kind(), ErrorKind::Refused);
}

#[test]
fn a_second_request_while_the_first_runs_answers_in_progress() {
    let world = World::new(10);
    let a = world.process("worker-a", 1, 0);
    let b = world.checkout("worker-b", 2);
    let order = input(&world, "key-3", &[(0, 1)], false, "tok_visa");
    // Worker A dies a few calls in, holding the lease.
    a.switch.arm_at(4, CrashPoint::After);
    assert!(a.checkout.checkout(&order).now_or_never().is_none());
    assert_eq!(
        block_on(b.checkout(&order)).unwrap(),
        CheckoutOutcome::InProgress
    );
    assert_eq!(charges(&world), 0);
    // After the lease expires, B takes over and finishes it, once.
    world.clock.advance(TimeDelta::seconds(301));
    assert_eq!(block_on(b.checkout(&order)).unwrap(), confirmed(&order));
    a.switch.revive();
    assert_eq!(
        block_on(a.checkout.checkout(&order)).unwrap(),
        confirmed(&order)
    );
    assert_eq!(charges(&world), 1);
}

#[test]
fn a_crash_at_any_call_recovers_to_one_charge() {
    // Crash the process at every call it makes, before and after each; a second worker then
    // recovers. Every time: confirmed, charged once, stock committed once.
    for crash_at in 1..60 {
        for point in [CrashPoint::Before, CrashPoint::After] {
            let world = World::new(10);
            let a = world.process("worker-a", 1, 0);
            let order = input(
                &world,
                &format!("crash-{crash_at}"),
                &[(0, 1)],
                true,
                "tok_visa",
            );
            a.switch.arm_at(crash_at, point);
            let finished = a.checkout.checkout(&order).now_or_never();
            world.clock.advance(TimeDelta::seconds(301));
            let b = world.checkout("worker-b", 2);
            let _ = block_on(b.recover(10)).unwrap();
            let outcome = block_on(b.checkout(&order)).unwrap();
            assert_eq!(
                outcome,
                confirmed(&order),
                "crash at call {crash_at} {point:?}"
            );
            assert_eq!(charges(&world), 1, "crash at call {crash_at} {point:?}");
            let level = block_on(world.stock.level(&world.skus[0], world.clock.now())).unwrap();
            assert_eq!(
                (level.committed, level.held),
                (1, 0),
                "crash at {crash_at} {point:?}"
            );
            if finished.is_some() {
                // The checkout needs fewer calls than this: no later crash point is new.
                assert!(crash_at > 10, "a checkout makes more than {crash_at} calls");
                return;
            }
        }
    }
    panic!("a checkout that never finishes within 60 calls");
}

/// A saga whose only step waits for a webhook.
#[derive(Debug)]
struct Webhook;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WebhookStep {
    ThreeDs,
}

impl Step for WebhookStep {
    const ALL: &'static [WebhookStep] = &[WebhookStep::ThreeDs];
    fn name(self) -> &'static str {
        "three_ds"
    }
    fn kind(self) -> StepKind {
        StepKind::Pivot
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Verdict {
    Authenticated,
    Failed(String),
}

#[async_trait::async_trait]
impl SagaDefinition for Webhook {
    const KIND: &'static str = "webhook";
    type Input = String;
    type Step = WebhookStep;
    type Output = Verdict;
    type Failure = Verdict;
    async fn act(
        &self,
        _: &StepContext<'_, Self>,
    ) -> std::result::Result<Verdict, StepError<Verdict>> {
        Err(StepError::Pending)
    }
    async fn resolve(
        &self,
        _: &StepContext<'_, Self>,
    ) -> std::result::Result<Option<Verdict>, StepError<Verdict>> {
        Err(StepError::Pending)
    }
    fn deadline_passed(&self, _: WebhookStep) -> Verdict {
        Verdict::Failed("deadline".into())
    }
}

fn orchestrator<D: SagaDefinition>(definition: D) -> (Orchestrator<D>, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(t0()));
    let o = Orchestrator::new(
        definition,
        Arc::new(InMemoryJournal::new()),
        clock.clone(),
        Arc::new(ClockSleeper(clock.clone())),
        "w",
        RetryPolicy::default(),
        7,
    );
    (o, clock)
}

#[test]
fn a_step_can_wait_for_an_external_signal() {
    let (o, _) = orchestrator(Webhook);
    let deadline = t0() + TimeDelta::minutes(15);
    let input = "card-1".to_owned();
    assert!(matches!(
        block_on(o.start("s-1", &input, deadline)).unwrap(),
        Drive::Waiting(WebhookStep::ThreeDs)
    ));
    assert!(matches!(
        block_on(o.drive("s-1")).unwrap(),
        Drive::Waiting(WebhookStep::ThreeDs)
    ));
    match block_on(o.complete("s-1", WebhookStep::ThreeDs, Ok(Verdict::Authenticated))).unwrap() {
        Drive::Completed(outputs) => assert_eq!(outputs, [Verdict::Authenticated]),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        block_on(o.start("s-2", &input, deadline)).unwrap(),
        Drive::Waiting(_)
    ));
    let failed = Verdict::Failed("3-D Secure failed".into());
    match block_on(o.complete("s-2", WebhookStep::ThreeDs, Err(failed.clone()))).unwrap() {
        Drive::Compensated(f) => assert_eq!((f.step, f.reason), (WebhookStep::ThreeDs, failed)),
        other => panic!("{other:?}"),
    }
    // A signal for a finished saga changes nothing.
    assert!(matches!(
        block_on(o.complete(
            "s-1",
            WebhookStep::ThreeDs,
            Err(Verdict::Failed("late".into()))
        ))
        .unwrap(),
        Drive::Completed(_)
    ));
}

#[test]
fn a_saga_journaled_by_other_steps_is_refused_not_misread() {
    // Another deployment renamed the step while the saga waited.
    let journal = Arc::new(InMemoryJournal::new());
    let record = SagaRecord {
        id: "s-renamed".into(),
        kind: Webhook::KIND.into(),
        input: serde_json::to_vec("x").unwrap(),
        status: SagaStatus::Running,
        steps: vec![StepEntry {
            name: "three_d_secure_v1".into(),
            state: StepState::Started,
        }],
        failure: None,
        version: 0,
        lease: None,
        created_at: t0(),
        deadline: t0() + TimeDelta::minutes(15),
    };
    let _ = block_on(journal.create(record)).unwrap();
    let clock = Arc::new(ManualClock::new(t0()));
    let o = Orchestrator::new(
        Webhook,
        journal.clone(),
        clock.clone(),
        Arc::new(ClockSleeper(clock)),
        "w",
        RetryPolicy::default(),
        1,
    );
    let err = block_on(o.drive("s-renamed")).unwrap_err();
    assert!(
        matches!(err, saga::Error::DefinitionChanged { .. }),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::Internal);
    assert_eq!(
        block_on(journal.load("s-renamed"))
            .unwrap()
            .unwrap()
            .version,
        0,
        "left as it was, for an operator"
    );
}

#[test]
fn a_late_failure_after_the_money_moved_is_refunded() {
    // The process dies right after the charge took effect, before journaling it; then a late
    // "payment failed" webhook arrives: compensation asks the provider and refunds.
    for crash_at in 1..60 {
        let world = World::new(10);
        let a = world.process("w", 1, 0);
        let order = input(&world, "key-late", &[(1, 1)], false, "tok_visa");
        a.switch.arm_at(crash_at, CrashPoint::After);
        if a.checkout.checkout(&order).now_or_never().is_some() {
            panic!("the charge was never the crashing call");
        }
        let charged = world.payments.snapshot().len() == 1;
        let journaled = world.journal.snapshot()[0]
            .steps
            .iter()
            .any(|s| s.name == "charge" && matches!(s.state, StepState::Done { .. }));
        if !charged || journaled {
            continue;
        }
        // The webhook is handled once the crashed driver's lease has lapsed.
        world.clock.advance(TimeDelta::seconds(301));
        let b = world.checkout("w2", 2);
        let drive = block_on(b.orchestrator().complete(
            order.order.id.as_str(),
            CheckoutStep::Charge,
            Err(CheckoutFailure::PaymentDeclined {
                message: "provider reported a failure".into(),
            }),
        ))
        .unwrap();
        assert!(matches!(drive, Drive::Compensated(_)), "{drive:?}");
        let after = &world.payments.snapshot()[0];
        assert_eq!(after.refunded, after.captured, "refunded in full");
        assert_eq!(world.orders.snapshot()[0].status(), OrderStatus::Cancelled);
        let level = block_on(world.stock.level(&world.skus[1], world.clock.now())).unwrap();
        assert_eq!(level.held, 0);
        assert!(
            world
                .notifier
                .sent()
                .iter()
                .any(|n| n.kind == NotificationKind::OrderCancelled)
        );
        return;
    }
    panic!("no crash point between the charge and its journal entry");
}

#[test]
fn steps_before_the_charge_stop_at_the_deadline() {
    let world = World::new(10);
    let a = world.process("w", 1, 0);
    let order = input(&world, "key-slow", &[(2, 1)], false, "tok_visa");
    // Die early: the saga exists, nothing is charged.
    a.switch.arm_at(5, CrashPoint::Before);
    assert!(a.checkout.checkout(&order).now_or_never().is_none());
    world.clock.advance(TimeDelta::minutes(16)); // past the 15-minute hold TTL
    let outcome = block_on(world.checkout("w2", 2).checkout(&order)).unwrap();
    assert!(
        matches!(
            &outcome,
            CheckoutOutcome::Failed {
                reason: CheckoutFailure::DeadlinePassed { .. },
                ..
            }
        ),
        "{outcome:?}"
    );
    assert_eq!(charges(&world), 0);
}

#[test]
fn reconciliation_refunds_a_charge_without_a_confirmed_order() {
    let world = World::new(10);
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
    let stray = block_on(world.payments.authorize(&stray)).unwrap();
    let reconcile = || {
        block_on(reconcile_payments(
            world.payments.as_ref(),
            world.orders.as_ref(),
            world.journal.as_ref(),
        ))
        .unwrap()
    };
    assert_eq!(reconcile(), vec![stray.payment_ref.clone()]);
    assert!(reconcile().is_empty(), "a second pass refunds nothing");
    let kept = world
        .payments
        .snapshot()
        .into_iter()
        .find(|p| p.order_id == good.order.id)
        .unwrap();
    assert!(
        kept.refunded.is_zero(),
        "the confirmed order keeps its payment"
    );
}

/// A saga whose only step never answers; its resolution finds the effect.
#[derive(Debug)]
struct Hangs;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HangsStep {
    SlowCall,
}

impl Step for HangsStep {
    const ALL: &'static [HangsStep] = &[HangsStep::SlowCall];
    fn name(self) -> &'static str {
        "slow_call"
    }
    fn kind(self) -> StepKind {
        StepKind::Pivot
    }
}

#[async_trait::async_trait]
impl SagaDefinition for Hangs {
    const KIND: &'static str = "hangs";
    type Input = ();
    type Step = HangsStep;
    type Output = String;
    type Failure = String;
    async fn act(
        &self,
        _: &StepContext<'_, Self>,
    ) -> std::result::Result<String, StepError<String>> {
        futures::future::pending().await
    }
    async fn resolve(
        &self,
        _: &StepContext<'_, Self>,
    ) -> std::result::Result<Option<String>, StepError<String>> {
        Ok(Some("it happened".into()))
    }
    fn deadline_passed(&self, _: HangsStep) -> String {
        "deadline".into()
    }
}

#[test]
fn a_step_that_hangs_times_out_and_is_resolved() {
    let (o, clock) = orchestrator(Hangs);
    match block_on(o.start("hang-1", &(), t0() + TimeDelta::minutes(15))).unwrap() {
        Drive::Completed(outputs) => assert_eq!(outputs, ["it happened"]),
        other => panic!("{other:?}"),
    }
    assert!(
        clock.now() >= t0() + TimeDelta::seconds(10),
        "the step timeout elapsed"
    );
}

#[test]
fn eight_threads_with_one_key_charge_once() {
    for round in 0..20 {
        let world = Arc::new(World::new(10));
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
        let done = confirmed(&order);
        assert!(
            outcomes
                .iter()
                .all(|o| *o == done || *o == CheckoutOutcome::InProgress),
            "{outcomes:?}"
        );
        assert!(outcomes.contains(&done), "{outcomes:?}");
        assert_eq!(charges(&world), 1, "round {round}: one charge");
        assert_eq!(
            block_on(world.checkout("late", 99).checkout(&order)).unwrap(),
            done
        );
    }
}

#[test]
fn one_instance_serving_two_requests_with_one_key_charges_once() {
    for round in 0..20 {
        let world = Arc::new(World::new(10));
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
    let world = World::new(10);
    let checkout = world.checkout("w", 1);
    let mut order = input(&world, "bad-ttl", &[(0, 1)], false, "tok_visa");
    order.hold_ttl_secs = i64::MAX;
    let err = block_on(checkout.checkout(&order)).unwrap_err();
    assert!(
        matches!(
            err,
            saga::Error::Invalid {
                field: "hold_ttl_secs",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        (err.kind(), err.field()),
        (ErrorKind::Invalid, Some("hold_ttl_secs"))
    );
    assert!(matches!(
        block_on(checkout.orchestrator().drive("no-such-saga")),
        Err(saga::Error::NotFound { .. })
    ));
    let _ = block_on(inventory::HoldStore::sweep(
        world.stock.as_ref(),
        chrono::DateTime::<chrono::Utc>::MIN_UTC,
        10,
    ))
    .unwrap();
}

#[test]
fn a_sold_out_checkout_is_refused_before_a_saga_starts_but_a_retry_finds_its_order() {
    // One unit of each SKU.
    let world = World::new(1);
    let checkout = world.checkout("w", 1);
    let first = input(&world, "first", &[(0, 1)], false, "tok_visa");
    assert_eq!(block_on(checkout.short_of_stock(&first)).unwrap(), None);
    assert_eq!(
        block_on(checkout.checkout(&first)).unwrap(),
        confirmed(&first)
    );

    // The unit is gone: a new buyer is refused with the shortage, and nothing is recorded.
    let late = input(&world, "late", &[(0, 1), (1, 1)], false, "tok_visa");
    let refused = block_on(checkout.short_of_stock(&late)).unwrap();
    let Some(CheckoutFailure::OutOfStock { lines }) = refused else {
        panic!("{refused:?}");
    };
    assert_eq!(lines.len(), 1, "only the sold-out line is short: {lines:?}");
    assert_eq!((lines[0].requested, lines[0].available), (1, 0));
    assert!(
        block_on(world.journal.load(late.order.id.as_str()))
            .unwrap()
            .is_none(),
        "no saga for a refused checkout"
    );

    // The first buyer's retry is not "sold out": its saga exists and answers its order.
    assert_eq!(block_on(checkout.short_of_stock(&first)).unwrap(), None);
    assert_eq!(
        block_on(checkout.checkout(&first)).unwrap(),
        confirmed(&first)
    );
    assert_eq!(charges(&world), 1);
}

/// A notifier that refuses every message (a customer whose mailbox the mail system refuses).
#[derive(Debug)]
struct Refusing;

#[async_trait::async_trait]
impl commerce_core::Notifier for Refusing {
    async fn send(&self, _: &commerce_core::Notification) -> commerce_core::PortResult<()> {
        Err(commerce_core::PortError::new(
            commerce_core::ErrorKind::Refused,
            "550 no such mailbox",
        ))
    }
}

/// An order whose confirmation cannot be delivered is still confirmed: the notify step does
/// not stall the saga on a refusal that no retry would change.
#[test]
fn a_refused_notification_does_not_stall_the_order() {
    let world = World::new(10);
    let ports = saga::CheckoutPorts {
        usage: world.usage.clone(),
        stock: world.stock.clone(),
        orders: world.orders.clone(),
        payments: world.payments.clone(),
        notifier: std::sync::Arc::new(Refusing),
    };
    let checkout = saga::Checkout::new(
        ports,
        world.journal.clone(),
        world.clock.clone(),
        std::sync::Arc::new(saga::ClockSleeper(world.clock.clone())),
        "w",
        1,
    );
    let order = input(&world, "key-refused-mail", &[(0, 1)], false, "tok_visa");
    assert_eq!(
        block_on(checkout.checkout(&order)).unwrap(),
        confirmed(&order)
    );
    assert_eq!(world.orders.snapshot()[0].status(), OrderStatus::Confirmed);
    assert_eq!(charges(&world), 1);
}
