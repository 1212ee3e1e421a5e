//! Money hot paths: parsing, rounding, allocation, FX conversion, and order transitions.
//!
//! `cargo bench -p benches --bench money`

use std::hint::black_box;

use chrono::NaiveDate;
use commerce_core::testkit::{sample_order, t0};
use commerce_core::{
    Currency, FxPolicy, FxTable, Money, Order, PaymentRef, RoundingMode, Transition, allocate,
};
use criterion::{Criterion, criterion_group, criterion_main};
use rust_decimal::Decimal;

fn money(c: &mut Criterion) {
    c.bench_function("money/parse_12.34_EUR", |b| {
        b.iter(|| black_box("12.34 EUR").parse::<Money>());
    });
    let price = Money::from_minor(1999, Currency::EUR);
    c.bench_function("money/mul_round_half_even", |b| {
        b.iter(|| {
            black_box(price)
                .checked_mul(black_box(Decimal::new(875, 3)))
                .map(|m| m.round(RoundingMode::HalfEven))
        });
    });
    let lines: Vec<Decimal> = (1..=20).map(|i| Decimal::new(i * 137, 2)).collect();
    let discount = Money::from_minor(1_000, Currency::EUR);
    c.bench_function("money/allocate_over_20_lines", |b| {
        b.iter(|| allocate(black_box(&discount), black_box(&lines)));
    });
    let day = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap_or_default();
    let mut fx = FxTable::new(Currency::EUR);
    fx.insert_day(
        day,
        [
            (Currency::USD, Decimal::new(10832, 4)),
            (Currency::JPY, Decimal::new(16250, 2)),
        ],
    )
    .unwrap_or_default();
    let usd = Money::from_minor(1_000, Currency::USD);
    c.bench_function("fx/convert_usd_to_jpy", |b| {
        b.iter(|| fx.convert(black_box(&usd), Currency::JPY, day, FxPolicy::default()));
    });
    let order = sample_order("bench-1");
    let payment_ref = PaymentRef::new("pay-1").ok();
    c.bench_function("order/confirm_then_replay", |b| {
        b.iter(|| {
            let mut o = order.clone();
            let captured = o.totals().grand_total;
            let _ = o.apply(
                Transition::ConfirmPayment {
                    payment_ref: payment_ref.clone(),
                    captured,
                },
                t0(),
            );
            Order::replay(o.ledger())
        });
    });
}

criterion_group!(benches, money);
criterion_main!(benches);
