use chrono::TimeDelta;

use super::*;
use crate::testkit::{sample_address, sample_order, t0};

fn pay() -> Transition {
    Transition::ConfirmPayment {
        payment_ref: Some(PaymentRef::new("pay-1").unwrap()),
        captured: Money::from_minor(4588, Currency::EUR),
    }
}

fn ship() -> Transition {
    Transition::Ship {
        carrier: "dhl".into(),
        tracking_number: "DHL-1".into(),
        lines: Vec::new(),
    }
}

#[test]
fn docs_show_exactly_the_table_in_code() {
    let doc = include_str!("../../docs/order-transitions.md");
    assert!(
        doc.contains(&transition_table_markdown()),
        "docs/order-transitions.md is out of date; paste:\n{}",
        transition_table_markdown()
    );
}

#[test]
fn the_happy_path_and_its_ledger() {
    let mut o = sample_order("o-1");
    assert_eq!(o.totals().grand_total.to_string(), "45.88 EUR");
    let steps = [
        pay(),
        Transition::StartFulfilment,
        ship(),
        Transition::Deliver,
    ];
    for (i, t) in steps.into_iter().enumerate() {
        let at = t0() + TimeDelta::minutes(i64::try_from(i).unwrap());
        o.apply(t, at).unwrap();
    }
    assert_eq!(o.status(), OrderStatus::Delivered);
    assert_eq!(o.payment_ref().unwrap().as_str(), "pay-1");
    let statuses: Vec<_> = o.ledger().iter().map(|e| (e.seq, e.from, e.to)).collect();
    assert_eq!(
        statuses,
        [
            (1, S::PendingPayment, S::Confirmed),
            (2, S::Confirmed, S::Fulfilling),
            (3, S::Fulfilling, S::Shipped),
            (4, S::Shipped, S::Delivered),
        ]
    );
    assert_eq!(Order::replay(o.ledger()).unwrap(), o.status());
    assert_eq!(o.version(), 4);
}

#[test]
fn every_pair_outside_the_table_is_refused_and_changes_nothing() {
    // Drive an order into each status, then try every transition kind that the table lacks.
    let paths: Vec<Vec<Transition>> = vec![
        vec![],
        vec![pay()],
        vec![pay(), Transition::StartFulfilment],
        vec![pay(), Transition::StartFulfilment, ship()],
        vec![
            pay(),
            Transition::StartFulfilment,
            ship(),
            Transition::Deliver,
        ],
        vec![pay(), Transition::Cancel { reason: "x".into() }],
        vec![
            pay(),
            Transition::StartFulfilment,
            ship(),
            Transition::Deliver,
            Transition::ReturnReceived,
        ],
    ];
    let mut covered = std::collections::BTreeSet::new();
    for path in paths {
        let mut o = sample_order("o-2");
        for t in path {
            o.apply(t, t0()).unwrap();
        }
        covered.insert(o.status());
        for kind in TransitionKind::ALL {
            if next_status(o.status(), kind).is_some() {
                continue;
            }
            let before = o.clone();
            let t = sample_transition(kind, &o);
            assert_eq!(
                o.apply(t, t0()).unwrap_err(),
                Error::IllegalTransition {
                    from: o.status(),
                    transition: kind
                }
            );
            assert_eq!(o, before);
        }
    }
    assert_eq!(
        covered.len(),
        7,
        "every non-terminal status and returned was visited"
    );
}

pub(crate) fn sample_transition(kind: TransitionKind, o: &Order) -> Transition {
    match kind {
        T::ConfirmPayment => pay(),
        T::StartFulfilment => Transition::StartFulfilment,
        T::Capture => Transition::Capture {
            amount: o.uncaptured().unwrap_or(o.totals().grand_total),
        },
        T::ShipPart => Transition::ShipPart {
            carrier: "dhl".into(),
            tracking_number: "DHL-0".into(),
            lines: o.unshipped().into_iter().take(1).collect(),
        },
        T::Ship => ship(),
        T::Deliver => Transition::Deliver,
        T::Cancel => Transition::Cancel {
            reason: "customer asked".into(),
        },
        T::Refund => Transition::Refund {
            amount: o.captured(),
        },
        T::Void => Transition::Void,
        T::ReturnReceived => Transition::ReturnReceived,
        T::CorrectAddress => {
            let mut a = sample_address();
            a.line1 = "Friedrichstrasse 2".into();
            Transition::CorrectAddress { address: a }
        }
        T::ReportLost => Transition::ReportLost,
        T::ReturnToSender => Transition::ReturnToSender,
    }
}

#[test]
fn shipping_exceptions_have_their_own_ledger_entries() {
    let mut o = sample_order("o-3");
    for t in [pay(), Transition::StartFulfilment, ship()] {
        o.apply(t, t0()).unwrap();
    }
    let corrected = sample_transition(T::CorrectAddress, &o);
    let entry = o.apply(corrected, t0()).unwrap().clone();
    assert_eq!((entry.from, entry.to), (S::Shipped, S::Shipped));
    assert_eq!(o.shipping_address().line1, "Friedrichstrasse 2");
    assert_eq!(o.billing_address().line1, "Unter den Linden 1");
    o.apply(Transition::ReportLost, t0()).unwrap();
    assert_eq!(o.status(), S::Fulfilling);
    o.apply(ship(), t0()).unwrap();
    o.apply(Transition::ReturnToSender, t0()).unwrap();
    o.apply(
        Transition::Cancel {
            reason: "undeliverable".into(),
        },
        t0(),
    )
    .unwrap();
    o.apply(
        Transition::Refund {
            amount: o.totals().grand_total,
        },
        t0(),
    )
    .unwrap();
    assert_eq!(o.status(), S::Refunded);
    assert!(o.status().is_terminal());
    let kinds: Vec<_> = o.ledger().iter().map(|e| e.transition.kind()).collect();
    assert_eq!(
        kinds,
        [
            T::ConfirmPayment,
            T::StartFulfilment,
            T::Ship,
            T::CorrectAddress,
            T::ReportLost,
            T::Ship,
            T::ReturnToSender,
            T::Cancel,
            T::Refund
        ]
    );
    assert_eq!(Order::replay(o.ledger()).unwrap(), S::Refunded);
}

#[test]
fn guards_refuse_and_change_nothing() {
    // Refund of an unpaid cancelled order.
    let mut o = sample_order("o-4");
    o.apply(
        Transition::Cancel {
            reason: "changed mind".into(),
        },
        t0(),
    )
    .unwrap();
    let before = o.clone();
    let refund = Transition::Refund {
        amount: o.totals().grand_total,
    };
    assert!(matches!(
        o.apply(refund, t0()),
        Err(Error::Invalid {
            field: "refund",
            ..
        })
    ));
    assert_eq!(o, before);

    // Refund of the wrong amount.
    let mut o = sample_order("o-5");
    o.apply(pay(), t0()).unwrap();
    o.apply(Transition::Cancel { reason: "x".into() }, t0())
        .unwrap();
    let before = o.clone();
    let short = Transition::Refund {
        amount: Money::from_minor(1, Currency::EUR),
    };
    assert!(matches!(
        o.apply(short, t0()),
        Err(Error::Invalid {
            field: "refund.amount",
            ..
        })
    ));
    assert_eq!(o, before);

    // A bad corrected address, and a shipment without tracking.
    let mut o = sample_order("o-6");
    let mut bad = sample_address();
    bad.city = String::new();
    let before = o.clone();
    assert!(
        o.apply(Transition::CorrectAddress { address: bad }, t0())
            .is_err()
    );
    o.apply(pay(), t0()).unwrap();
    o.apply(Transition::StartFulfilment, t0()).unwrap();
    let before_ship = o.clone();
    let no_tracking = Transition::Ship {
        carrier: "dhl".into(),
        tracking_number: " ".into(),
        lines: Vec::new(),
    };
    assert!(matches!(
        o.apply(no_tracking, t0()),
        Err(Error::Invalid { field: "ship", .. })
    ));
    assert_eq!(o, before_ship);
    assert_ne!(o, before);
}

#[test]
fn new_order_validation_names_the_field() {
    let base = || {
        let o = sample_order("o-7");
        NewOrder {
            id: o.id().clone(),
            user_id: o.user_id().clone(),
            currency: o.currency(),
            lines: o.lines().to_vec(),
            shipping: o.totals().shipping,
            fees: Some(o.totals().fees),
            tax: o.totals().tax,
            tax_included: o.totals().tax_included,
            shipping_address: o.shipping_address().clone(),
            billing_address: o.billing_address().clone(),
            settlement: None,
        }
    };
    let usd = Money::from_minor(100, Currency::USD);
    type Breaker = Box<dyn Fn(&mut NewOrder)>;
    let cases: Vec<(Breaker, &str)> = vec![
        (Box::new(|n| n.lines.clear()), "order.lines"),
        (
            Box::new(|n| n.lines[0].quantity = 0),
            "order.lines.quantity",
        ),
        (
            Box::new(move |n| n.lines[0].unit_price = usd),
            "order.lines.unit_price",
        ),
        (
            Box::new(|n| n.lines[1].discount = Money::from_minor(501, Currency::EUR)),
            "order.lines.discount",
        ),
        (
            Box::new(|n| n.lines[1].discount = Money::from_minor(-1, Currency::EUR)),
            "order.lines.discount",
        ),
        (
            Box::new(|n| n.shipping = Money::new(Decimal::new(1, 3), Currency::EUR)),
            "order.shipping",
        ),
        (Box::new(move |n| n.tax = usd), "order.tax"),
        (
            Box::new(|n| n.shipping_address.name = " ".into()),
            "address.name",
        ),
        (
            Box::new(|n| n.billing_address.postal_code = String::new()),
            "address.postal_code",
        ),
    ];
    for (break_it, field) in cases {
        let mut n = base();
        break_it(&mut n);
        match Order::new(n, t0()) {
            Err(Error::Invalid { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: {other:?}"),
        }
    }
    assert!(Order::new(base(), t0()).is_ok());
}

#[test]
fn loading_refuses_an_inconsistent_order() {
    let mut o = sample_order("o-8");
    o.apply(pay(), t0()).unwrap();
    let json = serde_json::to_value(&o).unwrap();
    assert_eq!(serde_json::from_value::<Order>(json.clone()).unwrap(), o);

    let mut wrong_status = json.clone();
    wrong_status["status"] = "shipped".into();
    assert!(serde_json::from_value::<Order>(wrong_status).is_err());

    let mut wrong_total = json.clone();
    wrong_total["totals"]["grand_total"]["amount"] = "1.00".into();
    assert!(serde_json::from_value::<Order>(wrong_total).is_err());

    let mut forged_ledger = json.clone();
    forged_ledger["ledger"][0]["to"] = "delivered".into();
    assert!(serde_json::from_value::<Order>(forged_ledger).is_err());

    let mut forged_payment = json.clone();
    forged_payment["payment_ref"] = "pay-other".into();
    assert!(serde_json::from_value::<Order>(forged_payment).is_err());

    let mut moved = json;
    moved["shipping_address"]["city"] = "Hamburg".into();
    assert!(
        serde_json::from_value::<Order>(moved.clone()).is_ok(),
        "no correction in the ledger"
    );
    let mut corrected = o.clone();
    corrected
        .apply(sample_transition(T::CorrectAddress, &o), t0())
        .unwrap();
    let mut forged_address = serde_json::to_value(&corrected).unwrap();
    forged_address["shipping_address"]["city"] = "Hamburg".into();
    assert!(serde_json::from_value::<Order>(forged_address).is_err());
}

fn new_of(o: &Order) -> NewOrder {
    let mut new = NewOrder::new(
        o.id().clone(),
        o.user_id().clone(),
        o.currency(),
        o.shipping_address().clone(),
    )
    .with_shipping(o.totals().shipping);
    for line in o.lines() {
        new = new.with_line(line.clone());
    }
    new
}

fn usd_quote(rate: Decimal) -> FxQuote {
    FxQuote {
        id: "EUR:2026-11-30:EUR-USD".into(),
        from: Currency::EUR,
        to: Currency::USD,
        rate,
        as_of: chrono::NaiveDate::from_ymd_opt(2026, 11, 30).unwrap(),
    }
}

#[test]
fn an_order_settles_in_the_merchants_currency_exactly() {
    // 45.88 EUR at 1.0832 = 49.697… → 49.70 USD, shared over the lines (36.98, 4.00) and
    // shipping (4.90) so the parts add up in both currencies.
    let o = sample_order("o-fx");
    let settled = Order::new(
        new_of(&o).settled_at(usd_quote(Decimal::new(10832, 4))),
        t0(),
    )
    .unwrap();
    let s = settled.settlement().unwrap();
    assert_eq!(s.grand_total.to_string(), "49.70 USD");
    let parts: Vec<String> = s.lines.iter().map(Money::to_string).collect();
    assert_eq!(parts, ["40.06 USD", "4.33 USD"]);
    assert_eq!(s.shipping.to_string(), "5.31 USD");
    let sum = s
        .lines
        .iter()
        .chain([&s.shipping, &s.fees, &s.tax])
        .try_fold(Money::zero(Currency::USD), |a, m| a.checked_add(m))
        .unwrap();
    assert_eq!(sum, s.grand_total);
    // Captured in two parts, refunded in one: both settle to the settled total.
    let total = settled.totals().grand_total;
    let first = Money::from_minor(3_001, Currency::EUR);
    let second = total.checked_sub(&first).unwrap();
    let a = settled
        .settled(&Money::zero(Currency::EUR), &first)
        .unwrap()
        .unwrap();
    let b = settled.settled(&first, &second).unwrap().unwrap();
    assert_eq!(a.checked_add(&b).unwrap(), s.grand_total);
    let refund = settled
        .settled(&Money::zero(Currency::EUR), &total)
        .unwrap();
    assert_eq!(refund, Some(s.grand_total));
    // It survives storage; a forged settlement does not load.
    let json = serde_json::to_value(&settled).unwrap();
    assert_eq!(
        serde_json::from_value::<Order>(json.clone()).unwrap(),
        settled
    );
    let mut forged = json;
    forged["settlement"]["grand_total"]["amount"] = "1.00".into();
    assert!(serde_json::from_value::<Order>(forged).is_err());
    // Without a quote there is nothing to settle.
    assert_eq!(
        o.settled(&Money::zero(Currency::EUR), &total).unwrap(),
        None
    );
}

#[test]
fn a_settlement_quote_is_checked() {
    let o = sample_order("o-fx-bad");
    for (quote, field) in [
        (usd_quote(Decimal::ZERO), "settlement.rate"),
        (
            FxQuote {
                from: Currency::USD,
                ..usd_quote(Decimal::ONE)
            },
            "settlement.from",
        ),
        (
            FxQuote {
                id: String::new(),
                ..usd_quote(Decimal::ONE)
            },
            "settlement.id",
        ),
    ] {
        assert!(matches!(
            Order::new(new_of(&o).settled_at(quote), t0()),
            Err(Error::Invalid { field: f, .. }) if f == field
        ));
    }
}

fn authorized_only() -> Transition {
    Transition::ConfirmPayment {
        payment_ref: Some(PaymentRef::new("pay-auth").unwrap()),
        captured: Money::zero(Currency::EUR),
    }
}

fn parcel(sku: &str) -> Transition {
    Transition::ShipPart {
        carrier: "dhl".into(),
        tracking_number: format!("DHL-{sku}"),
        lines: vec![Sku::new(sku).unwrap()],
    }
}

#[test]
fn split_shipments_capture_their_share_and_the_last_captures_the_rest() {
    let mut o = sample_order("o-split");
    o.apply(authorized_only(), t0()).unwrap();
    o.apply(Transition::StartFulfilment, t0()).unwrap();
    assert_eq!(o.uncaptured().unwrap(), o.totals().grand_total);
    // The socks' share of 45.88 by line totals (36.98 and 4.00): 4.4782… → 4.48.
    let socks = [Sku::new("SOCKS").unwrap()];
    let share = o.capture_share(&socks).unwrap();
    assert_eq!(share.to_string(), "4.48 EUR");
    o.apply(Transition::Capture { amount: share }, t0())
        .unwrap();
    o.apply(parcel("SOCKS"), t0()).unwrap();
    assert_eq!(o.status(), OrderStatus::Fulfilling);
    assert_eq!(o.unshipped(), [Sku::new("TEE-RED-M").unwrap()]);
    // Shipped already: not again, and a part may not take the last line (that is `ship`).
    assert!(o.apply(parcel("SOCKS"), t0()).is_err());
    assert!(o.apply(parcel("TEE-RED-M"), t0()).is_err());
    // Once part has shipped, the order can no longer be cancelled.
    assert_eq!(
        o.apply(Transition::Cancel { reason: "x".into() }, t0())
            .unwrap_err(),
        Error::IllegalTransition {
            from: OrderStatus::Fulfilling,
            transition: TransitionKind::Cancel
        }
    );
    let rest = o.capture_share(&o.unshipped()).unwrap();
    assert_eq!(rest.to_string(), "41.40 EUR");
    o.apply(Transition::Capture { amount: rest }, t0()).unwrap();
    // Capturing more than authorized is refused.
    assert!(
        o.apply(
            Transition::Capture {
                amount: Money::from_minor(1, Currency::EUR)
            },
            t0()
        )
        .is_err()
    );
    o.apply(ship(), t0()).unwrap();
    assert_eq!(o.status(), OrderStatus::Shipped);
    assert_eq!(o.captured(), o.totals().grand_total);
    // The ledger records the last parcel's lines.
    assert!(matches!(
        &o.ledger().last().unwrap().transition,
        Transition::Ship { lines, .. } if lines == &[Sku::new("TEE-RED-M").unwrap()]
    ));
    // Lost: that parcel's line is to ship again, the socks are not.
    o.apply(Transition::ReportLost, t0()).unwrap();
    assert_eq!(o.unshipped(), [Sku::new("TEE-RED-M").unwrap()]);
}

#[test]
fn a_cancelled_authorization_is_voided_once_and_never_refunded() {
    let mut o = sample_order("o-void");
    o.apply(authorized_only(), t0()).unwrap();
    o.apply(Transition::Cancel { reason: "x".into() }, t0())
        .unwrap();
    // Nothing was captured: no refund.
    assert!(matches!(
        o.apply(
            Transition::Refund {
                amount: o.totals().grand_total
            },
            t0()
        ),
        Err(Error::Invalid {
            field: "refund",
            ..
        })
    ));
    o.apply(Transition::Void, t0()).unwrap();
    assert_eq!(o.uncaptured().unwrap(), Money::zero(Currency::EUR));
    assert!(o.apply(Transition::Void, t0()).is_err());
    assert_eq!(o.status(), OrderStatus::Cancelled);
}

#[test]
fn an_order_that_costs_nothing_confirms_without_a_payment() {
    let o = sample_order("o-free");
    let mut new = new_of(&o).with_shipping(Money::zero(Currency::EUR));
    for line in &mut new.lines {
        line.discount = line.subtotal().unwrap();
    }
    let mut free = Order::new(new, t0()).unwrap();
    assert!(free.totals().grand_total.is_zero());
    free.apply(
        Transition::ConfirmPayment {
            payment_ref: None,
            captured: Money::zero(Currency::EUR),
        },
        t0(),
    )
    .unwrap();
    assert!(free.is_confirmed() && free.payment_ref().is_none());
    // An order that costs something cannot.
    let mut paid = sample_order("o-not-free");
    assert!(matches!(
        paid.apply(
            Transition::ConfirmPayment {
                payment_ref: None,
                captured: Money::zero(Currency::EUR),
            },
            t0()
        ),
        Err(Error::Invalid {
            field: "confirm_payment.payment_ref",
            ..
        })
    ));
}
