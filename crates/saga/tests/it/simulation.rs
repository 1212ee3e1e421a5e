//! Deterministic simulation of the whole order life — checkout (captured at once or at
//! shipment, or free), cancellation (refund or void), shipping in one parcel or several with
//! bought labels and per-parcel captures, tracking (delivered, lost, returned to sender),
//! delivery, returns — run by two
//! simulated processes whose every port (stock, orders and their outbox, journal, payments,
//! carrier, notifier, promotion usage, the standalone outbox) fails by seed: unavailable,
//! timed out before sending, or timed out after the effect. The processes also crash at random
//! calls, before or after the call took effect, and restart; a crashed process's leases lapse
//! and the other process (or recovery) takes over. After every run, recovery drives every saga
//! to its end and the global invariants are checked.
//!
//! A failure prints its seed: `SAGA_SIM_SEED=<seed> cargo test -p saga --test it simulation`
//! replays it, and `SAGA_SIM_RUNS=<n>` runs more.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::result::Result;

use chrono::TimeDelta;
use commerce_core::testkit::faults::SeededRng;
use commerce_core::*;
use futures::FutureExt;
use futures::executor::block_on;
use inventory::{HoldStore, StockLevels};
use saga::*;

use crate::world::{Process, World, buy, input, limited_promo};

/// Out of 100 writes to each port, how many fail (reads half as often).
const PERCENT_FAULTY: u64 = 15;
/// Checkouts per run.
const ORDERS: u64 = 6;
/// Actions per run, before recovery.
const ACTIONS: u64 = 80;

/// What the runs reached, summed over seeds, so a test can show the simulation covers every
/// path it claims to.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Reached {
    pub confirmed: u64,
    pub failed_checkouts: u64,
    pub paid_then_cancelled: u64,
    pub shipments: u64,
    pub replacements: u64,
    pub deliveries: u64,
    pub returns: u64,
    pub returned_to_sender: u64,
    pub crashes: u64,
    pub timeouts_after_effect: u64,
    pub voided_labels: u64,
    pub split_parcels: u64,
    pub captured_at_shipment: u64,
    pub voided_authorizations: u64,
    pub free_orders: u64,
}

impl Reached {
    fn add(&mut self, r: &Reached) {
        self.confirmed += r.confirmed;
        self.failed_checkouts += r.failed_checkouts;
        self.paid_then_cancelled += r.paid_then_cancelled;
        self.shipments += r.shipments;
        self.replacements += r.replacements;
        self.deliveries += r.deliveries;
        self.returns += r.returns;
        self.returned_to_sender += r.returned_to_sender;
        self.crashes += r.crashes;
        self.timeouts_after_effect += r.timeouts_after_effect;
        self.voided_labels += r.voided_labels;
        self.split_parcels += r.split_parcels;
        self.captured_at_shipment += r.captured_at_shipment;
        self.voided_authorizations += r.voided_authorizations;
        self.free_orders += r.free_orders;
    }
}

type Action<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + 'a>>;

/// An error a caller may see and retry: the port was down or the outcome unknown.
fn retryable(e: &saga::Error) -> bool {
    matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::Indeterminate)
}

fn lifecycle_result(r: saga::Result<Applied>) -> Result<(), String> {
    match r {
        Ok(_) => Ok(()),
        // An order that was never created (its checkout failed before the order step).
        Err(e) if retryable(&e) || e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("lifecycle: {e}")),
    }
}

/// What a process is asked to do with one order.
#[derive(Debug, Clone, Copy)]
enum Choice {
    Checkout,
    Cancel,
    Fulfil,
    Ship,
    Track(TrackingStatus),
    Deliver,
    Return { restock: bool },
    Recover,
}

/// What a shop would do next with an order in `status` (`None`: not created yet).
fn natural(status: Option<OrderStatus>, rng: &SeededRng) -> Choice {
    let roll = rng.below(100);
    match status {
        None | Some(OrderStatus::PendingPayment) => Choice::Checkout,
        Some(OrderStatus::Confirmed) if roll < 80 => Choice::Fulfil,
        Some(OrderStatus::Confirmed | OrderStatus::Fulfilling) if roll < 20 => Choice::Cancel,
        Some(OrderStatus::Confirmed | OrderStatus::Fulfilling) => Choice::Ship,
        Some(OrderStatus::Shipped) => Choice::Track(match roll {
            0..45 => TrackingStatus::Delivered,
            45..65 => TrackingStatus::Lost,
            65..85 => TrackingStatus::ReturnToSender,
            _ => TrackingStatus::InTransit,
        }),
        Some(OrderStatus::Delivered) if roll < 60 => Choice::Return {
            restock: rng.below(2) == 0,
        },
        Some(OrderStatus::Delivered) => Choice::Track(TrackingStatus::Delivered),
        Some(_) => Choice::Recover,
    }
}

/// Any action at all, legal or not for the order's state.
fn random(rng: &SeededRng) -> Choice {
    match rng.below(9) {
        0 => Choice::Checkout,
        1 => Choice::Cancel,
        2 => Choice::Fulfil,
        3 => Choice::Ship,
        4 => Choice::Track(TrackingStatus::Delivered),
        5 => Choice::Track(TrackingStatus::Lost),
        6 => Choice::Deliver,
        7 => Choice::Return {
            restock: rng.below(2) == 0,
        },
        _ => Choice::Recover,
    }
}

/// The next thing process `p` does: mostly what the shop would do next with a random order,
/// sometimes anything at all.
fn action<'a>(
    world: &'a World,
    p: &'a Process,
    inputs: &'a [CheckoutInput],
    rng: &SeededRng,
) -> Action<'a> {
    let input = &inputs[usize::try_from(rng.below(ORDERS)).unwrap()];
    let id = input.order.id.clone();
    let stored = block_on(world.orders.get(&id)).unwrap();
    let choice = if rng.below(10) < 7 {
        natural(stored.as_ref().map(Order::status), rng)
    } else {
        random(rng)
    };
    let at = world.clock.now();
    match choice {
        Choice::Checkout => Box::pin(async move {
            match p.checkout.checkout(input).await {
                Ok(_) => Ok(()),
                Err(e) if retryable(&e) => Ok(()),
                Err(e) => Err(format!("checkout {}: {e}", input.order.id)),
            }
        }),
        Choice::Cancel => {
            Box::pin(
                async move { lifecycle_result(p.lifecycle.cancel(&id, "customer asked").await) },
            )
        }
        Choice::Fulfil => {
            Box::pin(async move { lifecycle_result(p.lifecycle.start_fulfilment(&id).await) })
        }
        Choice::Ship => {
            // The warehouse ships the order's next parcel: its first, one of several when the
            // order has more than one line left, or a replacement for one lost or returned.
            let parcels = stored.as_ref().map_or(0, |o| {
                count(o, TransitionKind::Ship) + count(o, TransitionKind::ShipPart)
            });
            let mut shipment = buy(&format!("parcel-{}", parcels + 1));
            let unshipped = stored.as_ref().map(Order::unshipped).unwrap_or_default();
            if unshipped.len() > 1 && rng.below(2) == 0 {
                shipment.lines = Some(unshipped[..1].to_vec());
            }
            Box::pin(async move { lifecycle_result(p.lifecycle.ship(&id, shipment).await) })
        }
        Choice::Track(status) => {
            // The carrier's network scans the order's current parcel.
            let tracking = stored.as_ref().and_then(|o| {
                o.ledger().iter().rev().find_map(|e| match &e.transition {
                    Transition::Ship {
                        tracking_number, ..
                    } => Some(tracking_number.clone()),
                    _ => None,
                })
            });
            let update = tracking
                .as_ref()
                .and_then(|t| world.carrier.push_tracking(t, status, at).ok());
            Box::pin(async move {
                match (tracking, update) {
                    (Some(t), Some(u)) => {
                        lifecycle_result(p.lifecycle.on_tracking(&id, "acme", &t, &u).await)
                    }
                    _ => Ok(()),
                }
            })
        }
        Choice::Deliver => {
            Box::pin(async move { lifecycle_result(p.lifecycle.deliver(&id).await) })
        }
        Choice::Return { restock } => {
            Box::pin(
                async move { lifecycle_result(p.lifecycle.return_received(&id, restock).await) },
            )
        }
        Choice::Recover => Box::pin(async move {
            for result in [
                p.checkout.recover(10).await.map(|_| ()),
                p.lifecycle.recover(10).await.map(|_| ()),
            ] {
                match result {
                    Ok(()) => {}
                    Err(e) if retryable(&e) => {}
                    Err(e) => return Err(format!("recovery: {e}")),
                }
            }
            Ok(())
        }),
    }
}

/// One seeded run; returns what it reached.
pub(crate) fn run(seed: u64) -> Result<Reached, String> {
    let world = World::new(4);
    let rng = SeededRng::new(seed ^ 0xC0FFEE);
    let procs = [
        world.process("worker-a", seed, PERCENT_FAULTY),
        world.process("worker-b", seed.wrapping_add(1), PERCENT_FAULTY),
    ];
    let inputs: Vec<CheckoutInput> = (0..ORDERS)
        .map(|i| {
            let mut seen = BTreeSet::new();
            let lines: Vec<(usize, u32)> = (0..1 + rng.below(2))
                .map(|_| {
                    (
                        usize::try_from(rng.below(3)).unwrap(),
                        u32::try_from(1 + rng.below(2)).unwrap(),
                    )
                })
                .filter(|(s, _)| seen.insert(*s))
                .collect();
            let token = if rng.below(8) == 0 {
                "tok_decline"
            } else {
                "tok_visa"
            };
            let mut input = input(
                &world,
                &format!("o-{seed}-{i}"),
                &lines,
                rng.below(3) == 0,
                token,
            );
            if rng.below(2) == 0 {
                input.capture = CapturePolicy::AtShipment;
            }
            if rng.below(10) == 0 {
                // Free: every line fully discounted, free shipping.
                for line in &mut input.order.lines {
                    line.discount = line.subtotal().unwrap();
                }
                input.order.shipping = Money::zero(Currency::EUR);
            }
            input
        })
        .collect();
    for _ in 0..ACTIONS {
        let p = &procs[usize::try_from(rng.below(2)).unwrap()];
        if rng.below(4) == 0 {
            p.switch.arm(1 + rng.below(30));
        }
        let step = action(&world, p, &inputs, &rng);
        // `None`: the process died mid-action; it restarts with nothing but what the stores
        // hold.
        if let Some(result) = step.now_or_never() {
            result?;
        }
        p.switch.revive();
        match rng.below(40) {
            // Now and then long enough for a dead process's leases to lapse.
            0 => world.clock.advance(TimeDelta::seconds(301)),
            1..=12 => world
                .clock
                .advance(TimeDelta::seconds(i64::try_from(rng.below(30)).unwrap())),
            _ => {}
        }
    }
    recover(&world, &procs)?;
    check(&world, &inputs)?;
    let mut reached = reached(&world);
    reached.crashes = procs.iter().map(|p| p.switch.crashes()).sum();
    reached.timeouts_after_effect = procs
        .iter()
        .flat_map(|p| &p.faults)
        .map(|(_, f)| f.injected().timeout_after)
        .sum();
    Ok(reached)
}

/// Lets every lease lapse and drives every saga to its end (the ports still fail now and
/// then), then sweeps what holds expired.
fn recover(world: &World, procs: &[Process]) -> Result<(), String> {
    for round in 0..400 {
        if world
            .journal
            .snapshot()
            .iter()
            .all(|s| s.status.is_finished())
        {
            let _ = block_on(
                world
                    .stock
                    .sweep(world.clock.now() + TimeDelta::days(2), 10_000),
            )
            .map_err(|e| e.to_string())?;
            return Ok(());
        }
        world.clock.advance(TimeDelta::seconds(301));
        let p = &procs[round % 2];
        match block_on(p.checkout.recover(100)) {
            Ok(_) => {}
            Err(e) if retryable(&e) => {}
            Err(e) => return Err(format!("checkout recovery: {e}")),
        }
        match block_on(p.lifecycle.recover(100)) {
            Ok(_) => {}
            Err(e) if retryable(&e) => {}
            Err(e) => return Err(format!("lifecycle recovery: {e}")),
        }
    }
    let open: Vec<String> = world
        .journal
        .snapshot()
        .into_iter()
        .filter(|s| !s.status.is_finished())
        .map(|s| format!("{} ({:?}, steps {:?})", s.id, s.status, s.steps))
        .collect();
    Err(format!("sagas still unfinished after recovery: {open:?}"))
}

fn count(order: &Order, kind: TransitionKind) -> usize {
    order
        .ledger()
        .iter()
        .filter(|e| e.transition.kind() == kind)
        .count()
}

fn has(order: &Order, kind: TransitionKind) -> bool {
    count(order, kind) > 0
}

/// Checks every global invariant; returns a description of the first broken one.
pub(crate) fn check(world: &World, inputs: &[CheckoutInput]) -> Result<(), String> {
    let now = world.clock.now();
    let orders: BTreeMap<OrderId, Order> = world
        .orders
        .snapshot()
        .into_iter()
        .map(|o| (o.id().clone(), o))
        .collect();
    let payments = world.payments.snapshot();
    let events = world.outbox.snapshot();
    let sent = world.notifier.sent();

    // Every saga ended.
    for s in world.journal.snapshot() {
        if !s.status.is_finished() {
            return Err(format!("saga {} unfinished: {:?}", s.id, s.status));
        }
    }
    // No event committed twice under one id.
    let mut ids = BTreeSet::new();
    for e in &events {
        if !ids.insert(e.event_id.clone()) {
            return Err(format!("event {} committed twice", e.event_id));
        }
    }
    // No double charge: one payment per order at most, and every payment for an order that
    // exists.
    let mut per_order: BTreeMap<&OrderId, &Payment> = BTreeMap::new();
    for p in &payments {
        if per_order.insert(&p.order_id, p).is_some() {
            return Err(format!("order {} charged twice", p.order_id));
        }
        if !orders.contains_key(&p.order_id) {
            return Err(format!("payment {} for no order", p.payment_ref));
        }
    }
    for (id, order) in &orders {
        check_order(id, order, per_order.get(id).copied(), &events, &sent)?;
    }
    check_stock(world, &orders, &events, now)?;
    // Every label sold went out on a shipment or was voided, never both.
    let shipped: BTreeSet<String> = orders
        .values()
        .flat_map(|o| o.ledger())
        .filter_map(|e| match &e.transition {
            Transition::Ship {
                tracking_number, ..
            }
            | Transition::ShipPart {
                tracking_number, ..
            } => Some(tracking_number.clone()),
            _ => None,
        })
        .collect();
    for (label, voided) in world.carrier.labels() {
        if voided == shipped.contains(&label.tracking_number) {
            return Err(format!(
                "label {}: voided={voided}, shipped={}",
                label.tracking_number, !voided
            ));
        }
    }
    // Promotion usage never exceeds its limit and matches confirmed orders.
    let with_promo = inputs
        .iter()
        .filter(|i| !i.claims.is_empty())
        .filter(|i| {
            orders
                .get(&i.order.id)
                .is_some_and(|o| has(o, TransitionKind::ConfirmPayment))
        })
        .count();
    let usage = block_on(cart_engine::PromotionUsageStore::usage(
        world.usage.as_ref(),
        &limited_promo().promotion_id,
    ))
    .map_err(|e| e.to_string())?;
    if usage.uses > 2 || usage.uses as usize != with_promo {
        return Err(format!(
            "promotion used {} times, confirmed orders with it {with_promo}",
            usage.uses
        ));
    }
    // The money safety net finds nothing to do.
    let refunded = block_on(reconcile_payments(
        world.payments.as_ref(),
        world.orders.as_ref(),
        world.journal.as_ref(),
    ))
    .map_err(|e| e.to_string())?;
    if !refunded.is_empty() {
        return Err(format!("reconciliation had to refund {refunded:?}"));
    }
    Ok(())
}

fn check_order(
    id: &OrderId,
    order: &Order,
    payment: Option<&Payment>,
    events: &[EventEnvelope],
    sent: &[Notification],
) -> Result<(), String> {
    if Order::replay(order.ledger()).map_err(|e| e.to_string())? != order.status() {
        return Err(format!("order {id}: the ledger does not replay"));
    }
    if order.status() == OrderStatus::PendingPayment {
        return Err(format!("order {id} left pending payment"));
    }
    // Every ledger entry's event committed exactly once, and no event without its entry.
    let changes: Vec<(u32, OrderStatus, OrderStatus)> = events
        .iter()
        .filter_map(|e| match &e.event {
            DomainEvent::OrderStatusChanged {
                order_id,
                seq,
                from,
                to,
                ..
            } if order_id == id => Some((*seq, *from, *to)),
            _ => None,
        })
        .collect();
    let expected: Vec<(u32, OrderStatus, OrderStatus)> = order
        .ledger()
        .iter()
        .map(|e| (e.seq, e.from, e.to))
        .collect();
    let mut got = changes.clone();
    got.sort_by_key(|c| c.0);
    if got != expected {
        return Err(format!(
            "order {id}: status events {got:?}, ledger {expected:?}"
        ));
    }
    let of = |kind: &str| {
        events
            .iter()
            .filter(|e| e.event_type == kind && e.partition_key == id.as_str())
            .count()
    };
    let confirmed = has(order, TransitionKind::ConfirmPayment);
    let cancelled = has(order, TransitionKind::Cancel);
    if of("OrderConfirmed") != usize::from(confirmed) {
        return Err(format!(
            "order {id}: {} OrderConfirmed",
            of("OrderConfirmed")
        ));
    }
    if of("OrderCancelled") != usize::from(cancelled) {
        return Err(format!(
            "order {id}: {} OrderCancelled",
            of("OrderCancelled")
        ));
    }
    // Money. The provider and the ledger agree on what was captured and refunded; a
    // cancelled or returned order keeps nothing, its captured money refunded and an
    // authorization never captured voided; a parcel shipped captured its share (the last
    // parcel the rest); an order never confirmed holds no money and no authorization; a free
    // order has no payment at all. A refund only follows a cancellation, a return, or a
    // checkout that never confirmed.
    let total = order.totals().grand_total;
    let captured = order.captured();
    let refunded = has(order, TransitionKind::Refund);
    let voided = has(order, TransitionKind::Void);
    let returned = has(order, TransitionKind::ReturnReceived);
    match payment {
        Some(p) if confirmed => {
            if order.payment_ref() != Some(&p.payment_ref) {
                return Err(format!("order {id}: not paid by {}", p.payment_ref));
            }
            // A parcel's capture made just before the order was cancelled under it is
            // refunded by the shipment's compensation: the provider's net is the ledger's.
            let net = p
                .captured
                .checked_sub(&p.refunded)
                .map_err(|e| e.to_string())?;
            let kept = if refunded {
                Money::zero(total.currency())
            } else {
                captured
            };
            if net != kept {
                return Err(format!(
                    "order {id}: the provider keeps {net}, the ledger {kept} ({p:?}; {:?})",
                    order
                        .ledger()
                        .iter()
                        .map(|e| e.transition.kind())
                        .collect::<Vec<_>>()
                ));
            }
            if voided && p.status != PaymentStatus::Voided && !net.is_zero() {
                return Err(format!(
                    "order {id}: voided on the ledger, not at the provider"
                ));
            }
            if (cancelled || returned) && !net.is_zero() {
                return Err(format!("order {id} ({:?}) keeps {net}", order.status()));
            }
            if cancelled && p.status == PaymentStatus::Authorized {
                return Err(format!("order {id}: cancelled, authorization still open"));
            }
            if has(order, TransitionKind::Ship) && captured != total {
                return Err(format!(
                    "order {id}: shipped, captured {captured} of {total}"
                ));
            }
        }
        Some(p) => {
            let net = p
                .captured
                .checked_sub(&p.refunded)
                .map_err(|e| e.to_string())?;
            if !net.is_zero() || p.status == PaymentStatus::Authorized {
                return Err(format!(
                    "order {id} never confirmed, its payment {:?} keeps {net}",
                    p.status
                ));
            }
        }
        None if confirmed && total.is_positive() => {
            return Err(format!("order {id} confirmed without a payment"));
        }
        None => {}
    }
    // The customer heard of each step once.
    let notes = |kind: NotificationKind| {
        sent.iter()
            .filter(|n| n.kind == kind && n.order_id.as_ref() == Some(id))
            .count()
    };
    let want = [
        (NotificationKind::OrderConfirmed, usize::from(confirmed)),
        (NotificationKind::OrderCancelled, usize::from(cancelled)),
        (
            NotificationKind::OrderShipped,
            count(order, TransitionKind::Ship) + count(order, TransitionKind::ShipPart),
        ),
        (
            NotificationKind::OrderDelivered,
            count(order, TransitionKind::Deliver),
        ),
    ];
    for (kind, n) in want {
        if notes(kind) != n {
            return Err(format!(
                "order {id}: {} {kind:?} notifications, want {n}",
                notes(kind)
            ));
        }
    }
    Ok(())
}

fn check_stock(
    world: &World,
    orders: &BTreeMap<OrderId, Order>,
    events: &[EventEnvelope],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), String> {
    // Whether each return put its goods back, as its saga was started with.
    let restocked: BTreeSet<OrderId> = world
        .journal
        .snapshot()
        .into_iter()
        .filter(|s| s.kind == ReturnSaga::KIND)
        .filter_map(|s| serde_json::from_slice::<ReturnInput>(&s.input).ok())
        .filter(|i| i.restock)
        .map(|i| i.order_id)
        .collect();
    for k in &world.skus {
        let qty = |o: &Order| -> i64 {
            o.lines()
                .iter()
                .filter(|l| l.sku == k.sku)
                .map(|l| i64::from(l.quantity))
                .sum()
        };
        let in_parcel = |lines: &[Sku]| lines.contains(&k.sku);
        let mut committed = 0;
        let mut shipped = 0;
        let mut back = 0;
        for o in orders.values() {
            // Walk the parcels: each took its lines' units; a parcel back from the carrier
            // (the last one sent) brought them back.
            let mut ever_shipped = false;
            let mut last: &[Sku] = &[];
            for e in o.ledger() {
                match &e.transition {
                    Transition::Ship { lines, .. } | Transition::ShipPart { lines, .. } => {
                        if in_parcel(lines) {
                            shipped += qty(o);
                            ever_shipped = true;
                        }
                        if e.transition.kind() == TransitionKind::Ship {
                            last = lines;
                        }
                    }
                    Transition::ReturnToSender if in_parcel(last) => back += qty(o),
                    _ => {}
                }
            }
            if has(o, TransitionKind::ConfirmPayment)
                && !ever_shipped
                && !has(o, TransitionKind::Cancel)
            {
                committed += qty(o);
            }
            if has(o, TransitionKind::ReturnReceived) && restocked.contains(o.id()) {
                back += qty(o);
            }
        }
        let level = block_on(world.stock.level(k, now)).map_err(|e| e.to_string())?;
        let on_hand = world.units - shipped + back;
        if (level.on_hand, level.committed, level.held) != (on_hand, committed, 0)
            || level.available != level.on_hand - level.committed
        {
            let story: Vec<String> = orders
                .values()
                .filter(|o| o.lines().iter().any(|l| l.sku == k.sku))
                .map(|o| {
                    format!(
                        "{} {:?}",
                        o.id(),
                        o.ledger()
                            .iter()
                            .map(|e| e.transition.clone())
                            .collect::<Vec<_>>()
                    )
                })
                .collect();
            return Err(format!(
                "{k}: {level:?}, want on hand {on_hand} (shipped {shipped}, back {back}), committed {committed}; {story:#?}"
            ));
        }
        // Every stock write committed its events: the last word on `k` is its on-hand count.
        let last = events.iter().rev().find_map(|e| match &e.event {
            DomainEvent::InventoryChanged { sku, on_hand, .. } if *sku == k.sku => Some(*on_hand),
            _ => None,
        });
        if last != Some(level.on_hand) {
            return Err(format!(
                "{k}: last InventoryChanged says {last:?}, stock {}",
                level.on_hand
            ));
        }
    }
    // No hold outlives its checkout.
    for s in world
        .journal
        .snapshot()
        .iter()
        .filter(|s| s.kind == CheckoutSaga::KIND)
    {
        let hold = inventory::HoldId::new(format!("{}:hold", s.id)).map_err(|e| e.to_string())?;
        if let Some(h) = block_on(world.stock.hold(&hold)).map_err(|e| e.to_string())?
            && matches!(
                h.status,
                inventory::HoldStatus::Held | inventory::HoldStatus::Pinned
            )
        {
            return Err(format!("hold {hold} still {:?}", h.status));
        }
    }
    Ok(())
}

/// What the world's final state shows of each path.
fn reached(world: &World) -> Reached {
    let mut r = Reached::default();
    let orders = world.orders.snapshot();
    let n = |b: bool| u64::from(b);
    for o in &orders {
        let confirmed = has(o, TransitionKind::ConfirmPayment);
        r.confirmed += n(confirmed);
        r.failed_checkouts += n(!confirmed);
        r.paid_then_cancelled += n(confirmed && has(o, TransitionKind::Cancel));
        let ships = u64::try_from(count(o, TransitionKind::Ship)).unwrap();
        r.shipments += ships;
        r.replacements += ships.saturating_sub(1);
        r.deliveries += n(has(o, TransitionKind::Deliver));
        r.split_parcels += u64::try_from(count(o, TransitionKind::ShipPart)).unwrap();
        r.captured_at_shipment += n(has(o, TransitionKind::Capture));
        r.voided_authorizations += n(has(o, TransitionKind::Void));
        r.free_orders += n(confirmed && o.totals().grand_total.is_zero());
        r.returns += n(has(o, TransitionKind::ReturnReceived));
        r.returned_to_sender += n(has(o, TransitionKind::ReturnToSender));
    }
    r.failed_checkouts += ORDERS - u64::try_from(orders.len()).unwrap();
    r.voided_labels = world.carrier.labels().iter().filter(|(_, v)| *v).count() as u64;
    r
}

#[test]
fn seeded_runs_keep_every_invariant() {
    if let Some(seed) = std::env::var("SAGA_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        if let Err(e) = run(seed) {
            panic!("seed {seed}: {e}");
        }
        return;
    }
    let runs: u64 = std::env::var("SAGA_SIM_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000);
    let mut total = Reached::default();
    for seed in 0..runs {
        match run(seed) {
            Ok(r) => total.add(&r),
            Err(e) => panic!("seed {seed} failed (replay with SAGA_SIM_SEED={seed}): {e}"),
        }
    }
    #[allow(
        clippy::print_stdout,
        reason = "what the runs reached, with --nocapture"
    )]
    {
        println!("{runs} runs reached {total:?}");
    }
}

/// The simulation must reach every kind of ending, or it proves little.
#[test]
fn runs_reach_every_path() {
    let mut total = Reached::default();
    for seed in 10_000..10_200u64 {
        total.add(&run(seed).unwrap_or_else(|e| panic!("seed {seed}: {e}")));
    }
    #[allow(
        clippy::print_stdout,
        reason = "the coverage, for whoever runs it with --nocapture"
    )]
    {
        println!("{total:?}");
    }
    let Reached {
        confirmed,
        failed_checkouts,
        paid_then_cancelled,
        shipments,
        replacements,
        deliveries,
        returns,
        returned_to_sender,
        crashes,
        timeouts_after_effect,
        voided_labels,
        split_parcels,
        captured_at_shipment,
        voided_authorizations,
        free_orders,
    } = total;
    for (what, n) in [
        ("confirmed", confirmed),
        ("failed checkouts", failed_checkouts),
        ("paid then cancelled", paid_then_cancelled),
        ("shipments", shipments),
        ("replacements", replacements),
        ("deliveries", deliveries),
        ("returns", returns),
        ("returned to sender", returned_to_sender),
        ("crashes", crashes),
        ("timeouts after the effect", timeouts_after_effect),
        ("voided labels", voided_labels),
        ("split parcels", split_parcels),
        ("captured at shipment", captured_at_shipment),
        ("voided authorizations", voided_authorizations),
        ("free orders", free_orders),
    ] {
        assert!(n >= 10, "{what}: only {n} over 200 runs");
    }
}
