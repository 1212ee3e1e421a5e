//! Property tests: money sums, allocation, rounding, FX round trips, and the order state machine.

use chrono::NaiveDate;
use commerce_core::testkit::{sample_address, sample_order, t0};
use commerce_core::*;
use proptest::prelude::*;
use rust_decimal::Decimal;

fn currency() -> impl Strategy<Value = Currency> {
    proptest::sample::select(Currency::ALL)
}

fn mode() -> impl Strategy<Value = RoundingMode> {
    proptest::sample::select(RoundingMode::ALL.to_vec())
}

/// A rounded amount of up to ±10^12 minor units.
fn money() -> impl Strategy<Value = Money> {
    (-1_000_000_000_000i64..1_000_000_000_000, currency())
        .prop_map(|(m, c)| Money::from_minor(m, c))
}

/// A non-negative decimal weight with up to 4 decimals; zero is common.
fn weight() -> impl Strategy<Value = Decimal> {
    prop_oneof![
        1 => Just(Decimal::ZERO),
        4 => (0i64..1_000_000_000, 0u32..5).prop_map(|(m, s)| Decimal::new(m, s)),
    ]
}

/// `part` is within one minor unit of `total × w / Σw`, checked exactly in integers:
/// |part·Σw − total·w| < Σw.
fn within_one_unit(part: i128, total: i128, w: Decimal, sum: Decimal) -> bool {
    let lhs = Decimal::from_i128_with_scale(part, 0) * sum;
    let rhs = Decimal::from_i128_with_scale(total, 0) * w;
    (lhs - rhs).abs() < sum
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn allocation_sums_exactly_and_each_part_is_within_one_unit(
        total in money(),
        weights in proptest::collection::vec(weight(), 1..40),
    ) {
        let parts = allocate(&total, &weights).unwrap();
        prop_assert_eq!(parts.len(), weights.len());
        prop_assert_eq!(Money::sum(total.currency(), &parts).unwrap(), total);
        let sum: Decimal = weights.iter().sum();
        let t = i128::from(total.to_minor().unwrap());
        for (part, w) in parts.iter().zip(&weights) {
            prop_assert_eq!(part.currency(), total.currency());
            let p = i128::from(part.to_minor().unwrap());
            if sum.is_zero() {
                // All-zero weights split evenly.
                let n = Decimal::from(weights.len());
                prop_assert!(within_one_unit(p, t, Decimal::ONE, n));
            } else {
                prop_assert!(within_one_unit(p, t, *w, sum), "part {} of {} for weight {} / {}", p, t, w, sum);
            }
            // No part has the opposite sign of the total.
            prop_assert!(p == 0 || (p > 0) == (t > 0));
        }
    }

    #[test]
    fn allocation_is_deterministic_and_negation_mirrors(
        total in money(),
        weights in proptest::collection::vec(weight(), 1..20),
    ) {
        let a = allocate(&total, &weights).unwrap();
        prop_assert_eq!(&a, &allocate(&total, &weights).unwrap());
        let mirrored: Vec<Money> = allocate(&total.negated(), &weights).unwrap();
        prop_assert_eq!(mirrored, a.iter().map(Money::negated).collect::<Vec<_>>());
    }

    #[test]
    fn rounding_is_idempotent_and_moves_less_than_one_unit(
        mantissa in any::<i64>(),
        scale in 0u32..12,
        c in currency(),
        m in mode(),
    ) {
        let x = Money::new(Decimal::new(mantissa, scale), c);
        let r = x.round(m);
        prop_assert!(r.is_rounded());
        prop_assert_eq!(r.round(m), r);
        for other in RoundingMode::ALL {
            prop_assert_eq!(r.round(other), r, "a rounded amount is a fixed point of every mode");
        }
        let unit = Decimal::new(1, u32::from(c.exponent()));
        prop_assert!((r.amount() - x.amount()).abs() < unit);
        // Half modes never move more than half a unit.
        if matches!(m, RoundingMode::HalfEven | RoundingMode::HalfUp | RoundingMode::HalfDown) {
            prop_assert!((r.amount() - x.amount()).abs() * Decimal::TWO <= unit);
        }
    }

    #[test]
    fn text_round_trips(x in money()) {
        prop_assert_eq!(x.to_string().parse::<Money>().unwrap(), x);
        prop_assert_eq!(Money::from_minor(x.to_minor().unwrap(), x.currency()), x);
    }

    #[test]
    fn sums_do_not_depend_on_order_and_sub_undoes_add(
        minors in proptest::collection::vec(-1_000_000_000i64..1_000_000_000, 0..30),
        c in currency(),
    ) {
        let items: Vec<Money> = minors.iter().map(|m| Money::from_minor(*m, c)).collect();
        let forward = Money::sum(c, &items).unwrap();
        let mut reversed = items.clone();
        reversed.reverse();
        prop_assert_eq!(forward, Money::sum(c, &reversed).unwrap());
        prop_assert_eq!(forward.to_minor().unwrap(), minors.iter().sum::<i64>());
        if let Some(first) = items.first() {
            prop_assert_eq!(forward.checked_sub(first).unwrap().checked_add(first).unwrap(), forward);
        }
    }

    #[test]
    fn fx_round_trip_stays_within_one_minor_unit(
        minor in 0i64..10_000_000_000,
        pair in (currency(), currency()),
        rates in (1u64..100_000_000, 1u64..100_000_000),
        m in mode(),
    ) {
        let (a, b) = pair;
        let day = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
        // Rates with 4 decimals against EUR: 0.0001 to 10,000.
        let rate = |r: u64, c: Currency| if c == Currency::EUR { Decimal::ONE } else { Decimal::new(i64::try_from(r).unwrap(), 4) };
        let (ra, rb) = (rate(rates.0, a), rate(rates.1, b));
        let mut fx = FxTable::new(Currency::EUR);
        fx.insert_day(day, [(a, ra), (b, rb)].into_iter().filter(|(c, _)| *c != Currency::EUR)).unwrap();
        let policy = FxPolicy { max_age_days: 0, rounding: m };
        let x = Money::from_minor(minor, a);
        let y = fx.convert(&x, b, day, policy).unwrap();
        let z = fx.convert(&y, a, day, policy).unwrap();
        let unit_a = Decimal::new(1, u32::from(a.exponent()));
        let unit_b_in_a = Decimal::new(1, u32::from(b.exponent())) * ra / rb;
        let error = (z.amount() - x.amount()).abs();
        // The round trip loses at most one rounding in B (seen in A) and one in A.
        prop_assert!(error <= unit_a + unit_b_in_a, "{} -> {} -> {}", x, y, z);
        // When B's minor unit is worth no more than A's, that is within one minor unit of A.
        if unit_b_in_a <= unit_a && matches!(m, RoundingMode::HalfEven | RoundingMode::HalfUp | RoundingMode::HalfDown) {
            prop_assert!(error <= unit_a, "{} -> {} -> {}", x, y, z);
        }
    }

    #[test]
    fn settlement_is_exact_in_both_currencies_however_the_money_moves(
        lines in proptest::collection::vec((1u32..5, 0i64..50_000, 0i64..100), 1..6),
        shipping in 0i64..2_000,
        rate in 1i64..100_000_000,
        cuts in proptest::collection::vec(0u64..1_000, 0..5),
    ) {
        let eur = |m| Money::from_minor(m, Currency::EUR);
        let mut new = NewOrder::new(OrderId::new("o-prop").unwrap(), UserId::new("u").unwrap(), Currency::EUR, sample_address())
            .with_shipping(eur(shipping))
            .settled_at(FxQuote {
                id: "q".into(),
                from: Currency::EUR,
                to: Currency::JPY,
                rate: Decimal::new(rate, 4),
                as_of: NaiveDate::from_ymd_opt(2026, 11, 30).unwrap(),
            });
        for (i, (qty, unit, off_percent)) in lines.iter().enumerate() {
            let sub = unit * i64::from(*qty);
            let line = OrderLine::new(Sku::new(format!("S{i}")).unwrap(), *qty, eur(*unit), LocationId::new("main").unwrap())
                .unwrap()
                .discounted(eur(sub * off_percent / 100));
            new = new.with_line(line);
        }
        let order = Order::new(new, t0()).unwrap();
        let s = order.settlement().unwrap();
        let total = order.totals().grand_total;
        // The parts sum to the settled total.
        let parts = s.lines.iter().chain([&s.shipping, &s.fees, &s.tax]).try_fold(Money::zero(Currency::JPY), |a, m| a.checked_add(m)).unwrap();
        prop_assert_eq!(parts, s.grand_total);
        // Any split of the grand total settles to the settled total.
        let g = total.to_minor().unwrap();
        let mut points: Vec<i64> = cuts.iter().map(|c| g * i64::try_from(*c).unwrap() / 1_000).collect();
        points.push(0);
        points.push(g);
        points.sort_unstable();
        let mut settled = Money::zero(Currency::JPY);
        for w in points.windows(2) {
            let part = order.settled(&eur(w[0]), &eur(w[1] - w[0])).unwrap().unwrap();
            prop_assert!(!part.is_negative());
            settled = settled.checked_add(&part).unwrap();
        }
        prop_assert_eq!(settled, s.grand_total);
    }

    #[test]
    fn random_walks_of_the_order_state_machine(
        steps in proptest::collection::vec((proptest::sample::select(TransitionKind::ALL.to_vec()), any::<bool>()), 0..40),
    ) {
        let mut order = sample_order("walk-1");
        let mut model = Model::new();
        for (kind, capture_at_once) in steps {
            let before = order.clone();
            let result = order.apply(transition(kind, capture_at_once, &order), t0());
            let expected = next_status(model.status, kind);
            match (expected, model.guard(kind)) {
                (Some(to), Guard::Passes) => {
                    prop_assert!(result.is_ok(), "{:?} from {:?}: {:?}", kind, model.status, result);
                    model.apply(kind, to, capture_at_once);
                }
                (Some(_), Guard::Invalid) => {
                    let refused = matches!(result, Err(Error::Invalid { .. }));
                    prop_assert!(refused, "{:?} must be refused as invalid: {:?}", kind, result);
                    prop_assert_eq!(&order, &before);
                }
                (None, _) | (Some(_), Guard::Illegal) => {
                    prop_assert_eq!(result.unwrap_err(), Error::IllegalTransition { from: model.status, transition: kind });
                    prop_assert_eq!(&order, &before);
                }
            }
            prop_assert_eq!(order.status(), model.status);
            prop_assert_eq!(order.unshipped().len(), model.unshipped);
            prop_assert_eq!(order.captured().is_zero(), !model.captured && !model.captured_later);
            prop_assert_eq!(Order::replay(order.ledger()).unwrap(), order.status());
            prop_assert_eq!(order.version(), order.ledger().len() as u64);
        }
        let json = serde_json::to_string(&order).unwrap();
        prop_assert_eq!(serde_json::from_str::<Order>(&json).unwrap(), order);
    }
}

/// What a transition's own guard says beyond the table.
enum Guard {
    Passes,
    Invalid,
    Illegal,
}

/// The sample order's payment and shipments, followed independently of the order (two lines,
/// a non-zero total).
struct Model {
    status: OrderStatus,
    paid: bool,
    /// Captured in full at confirmation.
    captured: bool,
    /// Captured (the rest) later.
    captured_later: bool,
    voided: bool,
    unshipped: usize,
    last_parcel: usize,
    parts: bool,
}

impl Model {
    fn new() -> Model {
        Model {
            status: OrderStatus::PendingPayment,
            paid: false,
            captured: false,
            captured_later: false,
            voided: false,
            unshipped: 2,
            last_parcel: 0,
            parts: false,
        }
    }

    fn uncaptured(&self) -> bool {
        self.paid && !self.captured && !self.captured_later && !self.voided
    }

    fn guard(&self, kind: TransitionKind) -> Guard {
        let ok = |b: bool| if b { Guard::Passes } else { Guard::Invalid };
        match kind {
            TransitionKind::Capture => ok(self.uncaptured()),
            TransitionKind::Void => ok(self.uncaptured()),
            TransitionKind::Refund => ok(self.paid && (self.captured || self.captured_later)),
            TransitionKind::ShipPart => ok(self.unshipped >= 2),
            TransitionKind::Cancel if self.parts => Guard::Illegal,
            _ => Guard::Passes,
        }
    }

    fn apply(&mut self, kind: TransitionKind, to: OrderStatus, capture_at_once: bool) {
        match kind {
            TransitionKind::ConfirmPayment => {
                self.paid = true;
                self.captured = capture_at_once;
            }
            TransitionKind::Capture => self.captured_later = true,
            TransitionKind::Void => self.voided = true,
            TransitionKind::ShipPart => {
                self.unshipped -= 1;
                self.parts = true;
            }
            TransitionKind::Ship => {
                self.last_parcel = self.unshipped;
                self.unshipped = 0;
            }
            TransitionKind::ReportLost | TransitionKind::ReturnToSender => {
                self.unshipped = self.last_parcel;
            }
            _ => {}
        }
        self.status = to;
    }
}

fn transition(kind: TransitionKind, capture_at_once: bool, o: &Order) -> Transition {
    match kind {
        TransitionKind::ConfirmPayment => Transition::ConfirmPayment {
            payment_ref: Some(PaymentRef::new("pay-walk").unwrap()),
            captured: if capture_at_once {
                o.totals().grand_total
            } else {
                Money::zero(o.currency())
            },
        },
        TransitionKind::StartFulfilment => Transition::StartFulfilment,
        TransitionKind::Capture => Transition::Capture {
            amount: o.uncaptured().unwrap(),
        },
        TransitionKind::ShipPart => Transition::ShipPart {
            carrier: "dhl".into(),
            tracking_number: "T-0".into(),
            lines: o.unshipped().into_iter().take(1).collect(),
        },
        TransitionKind::Ship => Transition::Ship {
            carrier: "dhl".into(),
            tracking_number: "T-1".into(),
            lines: Vec::new(),
        },
        TransitionKind::Deliver => Transition::Deliver,
        TransitionKind::Cancel => Transition::Cancel {
            reason: "walk".into(),
        },
        TransitionKind::Refund => Transition::Refund {
            amount: o.captured(),
        },
        TransitionKind::Void => Transition::Void,
        TransitionKind::ReturnReceived => Transition::ReturnReceived,
        TransitionKind::CorrectAddress => Transition::CorrectAddress {
            address: sample_address(),
        },
        TransitionKind::ReportLost => Transition::ReportLost,
        TransitionKind::ReturnToSender => Transition::ReturnToSender,
    }
}

#[test]
fn every_status_is_reachable_and_the_table_has_no_duplicates() {
    use std::collections::BTreeSet;
    let mut reached = BTreeSet::from([OrderStatus::PendingPayment]);
    loop {
        let next: BTreeSet<_> = TRANSITIONS
            .iter()
            .filter(|(f, _, _)| reached.contains(f))
            .map(|(_, _, t)| *t)
            .collect();
        let grown: BTreeSet<_> = reached.union(&next).copied().collect();
        if grown == reached {
            break;
        }
        reached = grown;
    }
    assert_eq!(reached.len(), OrderStatus::ALL.len());
    let pairs: BTreeSet<_> = TRANSITIONS.iter().map(|(f, k, _)| (*f, *k)).collect();
    assert_eq!(
        pairs.len(),
        TRANSITIONS.len(),
        "one target per (status, transition)"
    );
}

mod token_bucket {
    use commerce_core::ports::{RateDecision, RateLimit, take_tokens};
    use proptest::prelude::*;

    proptest! {
        /// Over any run of requests, what passes never exceeds the burst plus what the rate
        /// earned since the first request; a refused request takes nothing; a refusal's
        /// wait is exact (one millisecond less is still refused, the wait itself passes).
        #[test]
        fn never_more_than_burst_plus_rate(
            capacity in 1u32..50,
            rate in 1u32..100,
            steps in proptest::collection::vec((1u32..50, 0i64..2_000), 1..60),
        ) {
            let limit = RateLimit { capacity, refill_per_sec: rate };
            let mut bucket = None;
            let mut now = 0i64;
            let mut passed = 0i64;
            for (cost, dt) in steps {
                let cost = cost.min(capacity);
                now += dt;
                let before = bucket;
                let (after, decision) = take_tokens(before, &limit, cost, now);
                match decision {
                    RateDecision::Allowed { remaining } => {
                        passed += i64::from(cost);
                        prop_assert!(i64::from(remaining) <= i64::from(capacity));
                    }
                    RateDecision::Limited { retry_after } => {
                        let wait = retry_after.num_milliseconds();
                        prop_assert!(wait >= 1);
                        let (_, at_wait) = take_tokens(before, &limit, cost, now + wait);
                        prop_assert!(matches!(at_wait, RateDecision::Allowed { .. }), "the wait passes");
                        let (_, early) = take_tokens(before, &limit, cost, now + wait - 1);
                        prop_assert!(matches!(early, RateDecision::Limited { .. }), "a millisecond early is refused");
                        let b = before.map_or(i64::from(capacity) * 1_000, |b| b.milli_tokens);
                        prop_assert!(after.milli_tokens >= b, "a refusal takes nothing");
                    }
                }
                prop_assert!(after.milli_tokens <= i64::from(capacity) * 1_000);
                prop_assert!(after.milli_tokens >= 0);
                bucket = Some(after);
                let earned = now * i64::from(rate) / 1_000;
                prop_assert!(passed <= i64::from(capacity) + earned, "{passed} passed by {now} ms");
            }
        }
    }
}
