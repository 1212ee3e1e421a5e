//! Products and indices for the tests.

use commerce_core::{
    CategoryPath, Currency, Money, PriceScope, PriceTable, ProductId, ProductProjection,
    ProductSignals, ProductStatus, Sku,
};
use rust_decimal::Decimal;
use search::{SearchIndex, SearchRequest, SearchResults, Storage, TenantConfig, TenantId};

/// A product builder with sensible defaults.
#[derive(Clone)]
pub(crate) struct P(pub(crate) ProductProjection);

pub(crate) fn product(id: &str, title: &str) -> P {
    P(ProductProjection {
        sku: Sku::new(format!("SKU-{id}").to_uppercase()).unwrap(),
        product_id: ProductId::new(id).unwrap(),
        title: title.into(),
        description: String::new(),
        brand: None,
        category: CategoryPath::default(),
        attributes: Default::default(),
        prices: PriceTable::single(Money::from_minor(1_000, Currency::EUR)),
        primary_image: None,
        status: ProductStatus::Active,
        version: 1,
        signals: ProductSignals::default(),
        in_stock: Some(true),
    })
}

impl P {
    pub(crate) fn sku(mut self, sku: &str) -> P {
        self.0.sku = Sku::new(sku).unwrap();
        self
    }
    pub(crate) fn desc(mut self, d: &str) -> P {
        self.0.description = d.into();
        self
    }
    pub(crate) fn brand(mut self, b: &str) -> P {
        self.0.brand = Some(b.into());
        self
    }
    pub(crate) fn category(mut self, c: &str) -> P {
        self.0.category = CategoryPath::parse(c).unwrap();
        self
    }
    pub(crate) fn attr(mut self, k: &str, v: &str) -> P {
        self.0.attributes.insert(k.into(), v.into());
        self
    }
    pub(crate) fn eur(mut self, minor: i64) -> P {
        self.0
            .prices
            .set(PriceScope::Default, Money::from_minor(minor, Currency::EUR))
            .unwrap();
        self
    }
    pub(crate) fn usd(mut self, minor: i64) -> P {
        self.0
            .prices
            .set(PriceScope::Default, Money::from_minor(minor, Currency::USD))
            .unwrap();
        self
    }
    pub(crate) fn rating(mut self, centi: i64) -> P {
        self.0.signals.rating = Some(Decimal::new(centi, 2));
        self
    }
    pub(crate) fn popularity(mut self, n: u64) -> P {
        self.0.signals.popularity = n;
        self
    }
    pub(crate) fn sponsored(mut self) -> P {
        self.0.signals.sponsored = true;
        self
    }
    pub(crate) fn stock(mut self, s: Option<bool>) -> P {
        self.0.in_stock = s;
        self
    }
    pub(crate) fn version(mut self, v: u64) -> P {
        self.0.version = v;
        self
    }
}

pub(crate) fn config() -> TenantConfig {
    TenantConfig::new(&[Currency::EUR, Currency::USD])
}

pub(crate) fn index_with(config: TenantConfig, products: &[P]) -> SearchIndex {
    let index = SearchIndex::create(TenantId::new("t").unwrap(), config, Storage::Ram).unwrap();
    let mut w = index.writer();
    for p in products {
        w.upsert(&p.0).unwrap();
    }
    w.commit(None).unwrap();
    index
}

pub(crate) fn index(products: &[P]) -> SearchIndex {
    index_with(config(), products)
}

pub(crate) fn search(index: &SearchIndex, text: &str) -> SearchResults {
    index
        .search(&SearchRequest::new(text, Currency::EUR))
        .unwrap()
}

/// The product ids of the hits, in order.
pub(crate) fn ids(r: &SearchResults) -> Vec<&str> {
    r.hits.iter().map(|h| h.product_id.as_str()).collect()
}

/// A fresh temporary directory.
pub(crate) fn temp_dir(name: &str) -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "search-it-{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A broker-like log that delivers at least once: it may hold one event at two offsets (the
/// in-memory log dedupes by event id, so it cannot).
#[derive(Debug, Default)]
pub(crate) struct AtLeastOnceLog(pub(crate) std::sync::Mutex<Vec<commerce_core::EventEnvelope>>);

#[async_trait::async_trait]
impl commerce_core::EventLog for AtLeastOnceLog {
    async fn read(
        &self,
        from: u64,
        max: usize,
    ) -> commerce_core::PortResult<Vec<commerce_core::LoggedEvent>> {
        let events = self.0.lock().unwrap();
        Ok(events
            .iter()
            .zip(0u64..)
            .skip(usize::try_from(from).unwrap())
            .take(max)
            .map(|(e, offset)| commerce_core::LoggedEvent {
                offset,
                envelope: e.clone(),
            })
            .collect())
    }
    async fn end_offset(&self) -> commerce_core::PortResult<u64> {
        Ok(self.0.lock().unwrap().len() as u64)
    }
    async fn wait(&self, _from: u64) -> commerce_core::PortResult<()> {
        Ok(())
    }
}
