use chrono::TimeDelta;

use super::*;
use crate::testkit::{sample_address, sample_order, t0};

fn pay() -> Transition {
    Transition::ConfirmPayment {
        payment_ref: PaymentRef::new("pay-1").unwrap(),
    }
}

fn ship() -> Transition {
    Transition::Ship {
        carrier: "dhl".into(),
        tracking_number: "DHL-1".into(),
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
        T::Ship => ship(),
        T::Deliver => Transition::Deliver,
        T::Cancel => Transition::Cancel {
            reason: "customer asked".into(),
        },
        T::Refund => Transition::Refund {
            amount: o.totals().grand_total,
        },
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
