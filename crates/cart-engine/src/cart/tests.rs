use chrono::TimeDelta;
use commerce_core::testkit::{sample_address, sample_product, t0};
use commerce_core::{CartId, Currency, Money, PriceScope, PriceTable, ProductStatus};

use super::*;

fn new_cart() -> Cart {
    Cart::new(CartId::new("c-1").unwrap(), None, Currency::EUR, None, t0())
}

fn add<'a>(p: &'a Product, quantity: u32) -> CartCommand<'a> {
    CartCommand::AddLine {
        product: p,
        quantity,
        gift_wrap: false,
    }
}

fn at() -> Mutation {
    Mutation::at(t0())
}

#[test]
fn adding_takes_a_price_snapshot_and_sums_quantities() {
    let mut c = new_cart();
    let p = sample_product("p-1", "TEE");
    assert_eq!(
        c.execute(add(&p, 2), &at()).unwrap(),
        Outcome::Applied { version: 1 }
    );
    assert_eq!(
        c.execute(add(&p, 3), &at()).unwrap(),
        Outcome::Applied { version: 2 }
    );
    assert_eq!(c.lines().len(), 1);
    assert_eq!(c.lines()[0].quantity, 5);
    assert_eq!(
        c.lines()[0].unit_price,
        Money::from_minor(1999, Currency::EUR)
    );
    assert_eq!(c.lines()[0].product.title, "Product p-1");
}

#[test]
fn limits_are_checked_at_the_edge_and_refusals_change_nothing() {
    let mut c = new_cart();
    let p = sample_product("p-1", "TEE");
    let before = c.clone();
    assert!(matches!(
        c.execute(add(&p, 0), &at()),
        Err(Error::QuantityOutOfRange { .. })
    ));
    assert!(matches!(
        c.execute(add(&p, QUANTITY_PER_LINE_MAX + 1), &at()),
        Err(Error::QuantityOutOfRange { .. })
    ));
    assert_eq!(c, before);
    let _ = c.execute(add(&p, QUANTITY_PER_LINE_MAX), &at()).unwrap();
    let full = c.clone();
    assert!(matches!(
        c.execute(add(&p, 1), &at()),
        Err(Error::QuantityOutOfRange { .. })
    ));
    assert_eq!(c, full);

    let mut c = new_cart();
    for i in 0..LINES_MAX {
        let p = sample_product(&format!("p-{i}"), &format!("SKU-{i}"));
        let _ = c.execute(add(&p, 1), &at()).unwrap();
    }
    let extra = sample_product("p-x", "SKU-X");
    assert_eq!(
        c.execute(add(&extra, 1), &at()).unwrap_err(),
        Error::TooManyLines { max: LINES_MAX }
    );
}

#[test]
fn retired_products_and_missing_prices_are_refused() {
    let mut c = new_cart();
    let mut p = sample_product("p-1", "TEE");
    p.status = ProductStatus::Retired;
    assert_eq!(
        c.execute(add(&p, 1), &at()).unwrap_err(),
        Error::ProductRetired(p.sku.clone())
    );
    let mut usd_only = sample_product("p-2", "MUG");
    usd_only.prices = PriceTable::single(Money::from_minor(500, Currency::USD));
    assert!(matches!(
        c.execute(add(&usd_only, 1), &at()),
        Err(Error::Core(commerce_core::Error::PriceNotFound { .. }))
    ));
    assert_eq!(c.version(), 0);
}

#[test]
fn stale_versions_and_repeated_requests_are_ordinary_results() {
    let mut c = new_cart();
    let p = sample_product("p-1", "TEE");
    let req = Mutation {
        request_id: Some(RequestId::new("r-1").unwrap()),
        ..at()
    };
    assert_eq!(
        c.execute(add(&p, 1), &req).unwrap(),
        Outcome::Applied { version: 1 }
    );
    assert_eq!(
        c.execute(add(&p, 1), &req).unwrap(),
        Outcome::Duplicate { version: 1 }
    );
    let stale = Mutation {
        expected_version: Some(0),
        ..at()
    };
    assert_eq!(
        c.execute(add(&p, 1), &stale).unwrap(),
        Outcome::Stale { current: 1 }
    );
    let fresh = Mutation {
        expected_version: Some(1),
        ..at()
    };
    assert_eq!(
        c.execute(add(&p, 1), &fresh).unwrap(),
        Outcome::Applied { version: 2 }
    );
    assert_eq!(c.lines()[0].quantity, 2);
}

#[test]
fn request_ids_are_remembered_within_a_bounded_window() {
    let mut c = new_cart();
    let p = sample_product("p-1", "TEE");
    for i in 0..=REQUEST_IDS_KEPT {
        let m = Mutation {
            request_id: Some(RequestId::new(format!("r-{i}")).unwrap()),
            ..at()
        };
        let _ = c
            .execute(CartCommand::ApplyCode(format!("C{}", i % 3)), &m)
            .unwrap();
    }
    let oldest = Mutation {
        request_id: Some(RequestId::new("r-0").unwrap()),
        ..at()
    };
    let newest = Mutation {
        request_id: Some(RequestId::new(format!("r-{REQUEST_IDS_KEPT}")).unwrap()),
        ..at()
    };
    assert!(matches!(
        c.execute(add(&p, 1), &newest).unwrap(),
        Outcome::Duplicate { .. }
    ));
    assert!(matches!(
        c.execute(add(&p, 1), &oldest).unwrap(),
        Outcome::Applied { .. }
    ));
}

#[test]
fn set_quantity_remove_clear_and_codes() {
    let mut c = new_cart();
    let p = sample_product("p-1", "TEE");
    let q = sample_product("p-2", "MUG");
    let _ = c.execute(add(&p, 1), &at()).unwrap();
    let _ = c.execute(add(&q, 1), &at()).unwrap();
    let _ = c
        .execute(
            CartCommand::SetQuantity {
                sku: p.sku.clone(),
                quantity: 4,
            },
            &at(),
        )
        .unwrap();
    assert_eq!(c.lines()[0].quantity, 4);
    let _ = c
        .execute(
            CartCommand::SetQuantity {
                sku: p.sku.clone(),
                quantity: 0,
            },
            &at(),
        )
        .unwrap();
    assert_eq!(c.lines().len(), 1);
    assert_eq!(
        c.execute(CartCommand::RemoveLine { sku: p.sku.clone() }, &at())
            .unwrap_err(),
        Error::NoSuchLine(p.sku.clone())
    );
    let _ = c
        .execute(CartCommand::ApplyCode(" summer 10 ".into()), &at())
        .unwrap();
    let _ = c
        .execute(CartCommand::ApplyCode("SUMMER10".into()), &at())
        .unwrap();
    assert_eq!(
        c.codes().iter().map(PromoCode::as_str).collect::<Vec<_>>(),
        ["SUMMER10"]
    );
    assert!(matches!(
        c.execute(CartCommand::ApplyCode("bad!".into()), &at()),
        Err(Error::Code { .. })
    ));
    assert!(matches!(
        c.execute(CartCommand::RemoveCode("other".into()), &at()),
        Err(Error::Code { .. })
    ));
    let _ = c
        .execute(CartCommand::RemoveCode("summer10".into()), &at())
        .unwrap();
    let _ = c.execute(CartCommand::Clear, &at()).unwrap();
    assert!(c.lines().is_empty() && c.codes().is_empty());
}

#[test]
fn repricing_reports_changes_and_checkout_waits_for_acknowledgement() {
    let mut c = new_cart();
    let mut p = sample_product("p-1", "TEE");
    let _ = c.execute(add(&p, 2), &at()).unwrap();
    let _ = c
        .execute(CartCommand::SetShippingAddress(sample_address()), &at())
        .unwrap();
    let method = ShippingMethod {
        id: "std".into(),
        name: "Standard".into(),
        price: Money::from_minor(490, Currency::EUR),
    };
    let _ = c
        .execute(CartCommand::SetShippingMethod(method), &at())
        .unwrap();
    assert!(c.checkout_blockers(t0()).is_empty());

    let v = c.version();
    let unchanged = c.reprice(|_| Some(&p), t0());
    assert!(unchanged.changes.is_empty() && unchanged.unavailable.is_empty());
    assert_eq!(c.version(), v, "nothing changed, no new version");

    p.prices
        .set(PriceScope::Default, Money::from_minor(2499, Currency::EUR))
        .unwrap();
    let report = c.reprice(|_| Some(&p), t0());
    let change = PriceChange {
        sku: p.sku.clone(),
        accepted: Money::from_minor(1999, Currency::EUR),
        current: Money::from_minor(2499, Currency::EUR),
    };
    assert_eq!(report.changes, vec![change.clone()]);
    assert_eq!(
        c.checkout_blockers(t0()),
        vec![Blocker::PriceChanged(change)]
    );
    assert_eq!(
        c.lines()[0].unit_price,
        Money::from_minor(1999, Currency::EUR),
        "the accepted price stays"
    );
    let _ = c.execute(CartCommand::AcknowledgePrices, &at()).unwrap();
    assert!(c.checkout_blockers(t0()).is_empty());
    assert_eq!(
        c.lines()[0].unit_price,
        Money::from_minor(2499, Currency::EUR)
    );

    p.status = ProductStatus::Retired;
    let report = c.reprice(|_| Some(&p), t0());
    assert_eq!(report.unavailable, vec![p.sku.clone()]);
    assert_eq!(
        c.checkout_blockers(t0()),
        vec![Blocker::Unavailable { sku: p.sku.clone() }]
    );
}

#[test]
fn an_empty_cart_without_shipping_is_blocked() {
    let c = new_cart();
    assert_eq!(
        c.checkout_blockers(t0()),
        vec![
            Blocker::Empty,
            Blocker::NoShippingAddress,
            Blocker::NoShippingMethod
        ]
    );
}

#[test]
fn carts_expire_after_their_ttl_and_then_refuse_changes() {
    let mut c = new_cart().with_ttl(TimeDelta::days(30)).unwrap();
    let p = sample_product("p-1", "TEE");
    let later = t0() + TimeDelta::days(10);
    let _ = c.execute(add(&p, 1), &Mutation::at(later)).unwrap();
    assert_eq!(c.expires_at(), later + TimeDelta::days(30));
    let just_before = later + TimeDelta::days(30) - TimeDelta::seconds(1);
    assert!(!c.is_expired(just_before));
    assert!(!c.abandon(just_before));
    let expired = later + TimeDelta::days(30);
    assert_eq!(
        c.execute(add(&p, 1), &Mutation::at(expired)).unwrap_err(),
        Error::Expired
    );
    assert!(c.abandon(expired));
    assert!(!c.abandon(expired), "abandoned once");
    assert_eq!(*c.status(), CartStatus::Abandoned);
    assert!(new_cart().with_ttl(TimeDelta::zero()).is_err());
}

#[test]
fn shipping_method_in_another_currency_is_refused() {
    let mut c = new_cart();
    let method = ShippingMethod {
        id: "std".into(),
        name: "Standard".into(),
        price: Money::from_minor(490, Currency::USD),
    };
    assert_eq!(
        c.execute(CartCommand::SetShippingMethod(method), &at())
            .unwrap_err(),
        Error::CurrencyMismatch {
            cart: Currency::EUR,
            other: Currency::USD
        }
    );
}
