//! A shop in memory for the saga tests: every store over one shared outbox, and workers
//! (checkout + lifecycle) that are either plain or simulated processes whose ports fail and
//! crash by seed.

use std::sync::Arc;

use cart_engine::{InMemoryUsageStore, PromotionId, UsageLimits};
use commerce_core::memory::{
    InMemoryCarrier, InMemoryEventLog, InMemoryNotifier, InMemoryOrderStore, InMemoryPaymentGateway,
};
use commerce_core::testkit::faults::{CrashSwitch, Faults, Faulty};
use commerce_core::testkit::{sample_address, t0};
use commerce_core::*;
use futures::executor::block_on;
use inventory::{InMemoryStockStore, StockConfig, StockKey, StockMovements};
use saga::testkit::CrashingSleeper;
use saga::*;

pub(crate) struct World {
    pub clock: Arc<ManualClock>,
    pub outbox: Arc<InMemoryEventLog>,
    pub stock: Arc<InMemoryStockStore>,
    pub usage: Arc<InMemoryUsageStore>,
    pub orders: Arc<InMemoryOrderStore>,
    pub payments: Arc<InMemoryPaymentGateway>,
    pub carrier: Arc<InMemoryCarrier>,
    pub notifier: Arc<InMemoryNotifier>,
    pub journal: Arc<InMemoryJournal>,
    pub skus: Vec<StockKey>,
    pub units: i64,
}

/// A simulated process: a checkout and a lifecycle whose every port (and sleeper) is behind
/// seeded faults and one crash switch.
pub(crate) struct Process {
    pub switch: Arc<CrashSwitch>,
    pub checkout: Checkout,
    pub lifecycle: Lifecycle,
    /// The faults of each port, by name, for coverage counts.
    pub faults: Vec<(&'static str, Faults)>,
}

pub(crate) fn location() -> LocationId {
    LocationId::new("wh").unwrap()
}

impl World {
    /// Three SKUs of `units` each at one location (the first sharded 4 ways).
    pub(crate) fn new(units: i64) -> World {
        let clock = Arc::new(ManualClock::new(t0()));
        let outbox = Arc::new(InMemoryEventLog::new());
        let stock = Arc::new(InMemoryStockStore::with_outbox(outbox.clone()));
        let skus: Vec<StockKey> = (0..3)
            .map(|i| StockKey::new(Sku::new(format!("SKU-{i}")).unwrap(), location()))
            .collect();
        for (i, k) in skus.iter().enumerate() {
            let config = if i == 0 {
                StockConfig::sharded(4)
            } else {
                StockConfig::default()
            };
            block_on(stock.configure(k, config)).unwrap();
            let po = IdempotencyKey::new(format!("po-{i}")).unwrap();
            let _ = block_on(stock.receive(&po, k, units, t0())).unwrap();
        }
        World {
            clock,
            stock,
            usage: Arc::new(InMemoryUsageStore::new()),
            orders: Arc::new(InMemoryOrderStore::with_outbox(outbox.clone())),
            payments: Arc::new(InMemoryPaymentGateway::new()),
            carrier: Arc::new(InMemoryCarrier::with_standard_services(
                "acme",
                Currency::EUR,
            )),
            notifier: Arc::new(InMemoryNotifier::new()),
            journal: Arc::new(InMemoryJournal::new()),
            outbox,
            skus,
            units,
        }
    }

    fn sleeper(&self) -> Arc<dyn Sleeper> {
        Arc::new(ClockSleeper(self.clock.clone()))
    }

    /// A checkout over the plain stores.
    pub(crate) fn checkout(&self, owner: &str, seed: u64) -> Checkout {
        let ports = CheckoutPorts {
            usage: self.usage.clone(),
            stock: self.stock.clone(),
            orders: self.orders.clone(),
            payments: self.payments.clone(),
            notifier: self.notifier.clone(),
        };
        Checkout::new(
            ports,
            self.journal.clone(),
            self.clock.clone(),
            self.sleeper(),
            owner,
            seed,
        )
    }

    /// A lifecycle over the plain stores.
    pub(crate) fn lifecycle(&self, owner: &str, seed: u64) -> Lifecycle {
        let ports = LifecyclePorts {
            orders: self.orders.clone(),
            stock: self.stock.clone(),
            payments: self.payments.clone(),
            carrier: self.carrier.clone(),
            outbox: self.outbox.clone(),
            notifier: self.notifier.clone(),
        };
        Lifecycle::new(
            ports,
            self.journal.clone(),
            self.clock.clone(),
            self.sleeper(),
            owner,
            seed,
        )
    }

    /// A simulated process `name`: `percent` of its writes to every port fail (reads half as
    /// often), and it can crash.
    pub(crate) fn process(&self, name: &str, seed: u64, percent: u64) -> Process {
        let switch = CrashSwitch::new(seed ^ 0x5EED);
        let mut faults = Vec::new();
        let mut f = |port: &'static str, salt: u64| {
            let fx = Faults::new(seed.wrapping_mul(31).wrapping_add(salt), percent)
                .in_process(switch.clone());
            faults.push((port, fx.clone()));
            fx
        };
        let journal = Arc::new(Faulty::new(self.journal.clone(), f("journal", 1)));
        let stock = Arc::new(Faulty::new(self.stock.clone(), f("stock", 2)));
        let usage = Arc::new(Faulty::new(self.usage.clone(), f("usage", 3)));
        let orders = Arc::new(Faulty::new(self.orders.clone(), f("orders", 4)));
        let payments = Arc::new(Faulty::new(self.payments.clone(), f("payments", 5)));
        let carrier = Arc::new(Faulty::new(self.carrier.clone(), f("carrier", 6)));
        let notifier = Arc::new(Faulty::new(self.notifier.clone(), f("notifier", 7)));
        let outbox = Arc::new(Faulty::new(self.outbox.clone(), f("outbox", 8)));
        let sleeper: Arc<dyn Sleeper> = Arc::new(CrashingSleeper::new(
            ClockSleeper(self.clock.clone()),
            switch.clone(),
        ));
        let checkout = Checkout::new(
            CheckoutPorts {
                usage,
                stock: stock.clone(),
                orders: orders.clone(),
                payments: payments.clone(),
                notifier: notifier.clone(),
            },
            journal.clone(),
            self.clock.clone(),
            sleeper.clone(),
            name,
            seed,
        );
        let lifecycle = Lifecycle::new(
            LifecyclePorts {
                orders,
                stock,
                payments,
                carrier,
                outbox,
                notifier,
            },
            journal,
            self.clock.clone(),
            sleeper,
            name,
            seed,
        );
        Process {
            switch,
            checkout,
            lifecycle,
            faults,
        }
    }
}

pub(crate) fn limited_promo() -> PromotionClaim {
    PromotionClaim {
        promotion_id: PromotionId::new("launch").unwrap(),
        discount: Money::from_minor(100, Currency::EUR),
        limits: UsageLimits {
            total: Some(2),
            ..UsageLimits::default()
        },
    }
}

/// A checkout of `lines` (SKU index, quantity) at 10.00 EUR a unit, 1.00 off with the launch
/// promotion when `promo`.
pub(crate) fn input(
    world: &World,
    id: &str,
    lines: &[(usize, u32)],
    promo: bool,
    token: &str,
) -> CheckoutInput {
    let eur = |c| Money::from_minor(c, Currency::EUR);
    let mut order_lines: Vec<OrderLine> = lines
        .iter()
        .map(|(s, q)| {
            OrderLine::new(
                world.skus[*s].sku.clone(),
                *q,
                eur(1_000),
                world.skus[*s].location.clone(),
            )
            .unwrap()
            .of_product(
                ProductId::new(format!("p-{s}")).unwrap(),
                format!("Product {s}"),
            )
        })
        .collect();
    if promo {
        order_lines[0].discount = eur(100);
    }
    let mut order = NewOrder::new(
        OrderId::new(id).unwrap(),
        UserId::new(format!("user-{id}")).unwrap(),
        Currency::EUR,
        sample_address(),
    )
    .with_shipping(eur(490));
    order.lines = order_lines;
    CheckoutInput {
        order,
        claims: if promo {
            vec![limited_promo()]
        } else {
            Vec::new()
        },
        hold_ttl_secs: 900,
        method_token: token.into(),
        capture: CapturePolicy::AtCheckout,
        cart_hold: None,
    }
}

/// A shipment request for the standard service of the world's carrier.
pub(crate) fn shipment_request() -> ShipmentRequest {
    ShipmentRequest {
        from: sample_address(),
        to: sample_address(),
        parcels: vec![Parcel {
            weight_g: 1_500,
            dimensions_mm: [300, 200, 100],
        }],
        currency: Currency::EUR,
        ship_date: t0().date_naive(),
    }
}

/// A shipment `key` whose label the lifecycle buys.
pub(crate) fn buy(key: &str) -> Shipment {
    Shipment::whole(
        key,
        LabelSource::Buy {
            request: Box::new(shipment_request()),
            service: "standard".into(),
        },
    )
}

/// The order `id` as stored.
pub(crate) fn order(world: &World, id: &OrderId) -> Order {
    block_on(world.orders.get(id)).unwrap().unwrap()
}
