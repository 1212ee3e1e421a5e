//! Catalog types: the product as the merchant edits it, and the projection a cache serves by SKU.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::limits::{
    ATTRIBUTE_CHARS_MAX, ATTRIBUTES_MAX, CATEGORY_DEPTH_MAX, DESCRIPTION_CHARS_MAX, IMAGES_MAX,
    TITLE_CHARS_MAX,
};
use crate::{
    DomainEvent, Error, EventEnvelope, EventId, PriceScope, PriceTable, ProductId, Result, Sku,
};

/// Whether a product can be sold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProductStatus {
    /// On sale.
    Active,
    /// No longer sold; kept for order history. Search drops it and carts refuse it.
    Retired,
}

/// A product image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// Where the image is served from.
    pub url: String,
    /// Alternative text for screen readers.
    pub alt: String,
}

/// A category path from the root: `["Home", "Kitchen", "Knives"]`, written `Home/Kitchen/Knives`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct CategoryPath(Vec<String>);

impl CategoryPath {
    /// Builds a path from its segments.
    ///
    /// # Errors
    /// [`Error::Invalid`] (field `category`) for an empty or over-long segment, a segment
    /// containing `/`, or a path deeper than [`CATEGORY_DEPTH_MAX`].
    pub fn new<S: Into<String>>(segments: impl IntoIterator<Item = S>) -> Result<CategoryPath> {
        let segments: Vec<String> = segments.into_iter().map(Into::into).collect();
        if segments.len() > CATEGORY_DEPTH_MAX {
            return Err(Error::invalid(
                "category",
                format!("deeper than {CATEGORY_DEPTH_MAX}"),
            ));
        }
        for s in &segments {
            if s.trim().is_empty() {
                return Err(Error::invalid("category", "empty segment"));
            }
            if s.contains('/') {
                return Err(Error::invalid("category", "segment contains '/'"));
            }
            if s.chars().count() > ATTRIBUTE_CHARS_MAX {
                return Err(Error::invalid("category", "segment too long"));
            }
        }
        Ok(CategoryPath(segments))
    }

    /// Parses `Home/Kitchen/Knives`; the empty string is the root.
    ///
    /// # Errors
    /// As [`CategoryPath::new`].
    pub fn parse(text: &str) -> Result<CategoryPath> {
        if text.is_empty() {
            return Ok(CategoryPath::default());
        }
        CategoryPath::new(text.split('/'))
    }

    /// The segments, root first.
    pub fn segments(&self) -> &[String] {
        &self.0
    }

    /// True if `self` is `other` or lies below it (`Home/Kitchen` is within `Home`).
    pub fn is_within(&self, other: &CategoryPath) -> bool {
        self.0.starts_with(&other.0)
    }
}

impl std::fmt::Display for CategoryPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("/"))
    }
}

impl TryFrom<Vec<String>> for CategoryPath {
    type Error = Error;
    fn try_from(v: Vec<String>) -> Result<CategoryPath> {
        CategoryPath::new(v)
    }
}

impl From<CategoryPath> for Vec<String> {
    fn from(c: CategoryPath) -> Vec<String> {
        c.0
    }
}

/// A product as the catalog stores it: one sellable SKU with its content and prices.
///
/// Fields are public for convenient construction; [`Product::validate`] checks every bound, and
/// every store validates before it writes.
///
/// `version` increases by one on every change the catalog accepts; stores use it for
/// compare-and-set, and read models (search, caches) use it to tell stale copies from fresh ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    /// The product id.
    pub id: ProductId,
    /// The SKU, unique across the catalog.
    pub sku: Sku,
    /// The title shoppers see; 1 to [`TITLE_CHARS_MAX`] characters.
    pub title: String,
    /// Long description; at most [`DESCRIPTION_CHARS_MAX`] characters.
    pub description: String,
    /// Images, the first being the primary one.
    pub images: Vec<Image>,
    /// Prices per currency and locale.
    pub prices: PriceTable,
    /// Attributes such as `size` and `colour`.
    pub attributes: BTreeMap<String, String>,
    /// The brand, if any.
    pub brand: Option<String>,
    /// Where the product sits in the category tree.
    pub category: CategoryPath,
    /// Active or retired.
    pub status: ProductStatus,
    /// The catalog version of this product (1 for the first write).
    pub version: u64,
}

impl Product {
    /// Checks every field against its bound.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the first offending field.
    pub fn validate(&self) -> Result<()> {
        let chars = |s: &str| s.chars().count();
        if self.title.trim().is_empty() {
            return Err(Error::invalid("product.title", "empty"));
        }
        if chars(&self.title) > TITLE_CHARS_MAX {
            return Err(Error::invalid("product.title", "too long"));
        }
        if chars(&self.description) > DESCRIPTION_CHARS_MAX {
            return Err(Error::invalid("product.description", "too long"));
        }
        if self.images.len() > IMAGES_MAX {
            return Err(Error::invalid("product.images", "too many"));
        }
        if self.images.iter().any(|i| i.url.trim().is_empty()) {
            return Err(Error::invalid("product.images", "empty url"));
        }
        if self.attributes.len() > ATTRIBUTES_MAX {
            return Err(Error::invalid("product.attributes", "too many"));
        }
        for (k, v) in &self.attributes {
            if k.trim().is_empty()
                || chars(k) > ATTRIBUTE_CHARS_MAX
                || chars(v) > ATTRIBUTE_CHARS_MAX
            {
                return Err(Error::invalid(
                    "product.attributes",
                    format!("bad attribute {k:?}"),
                ));
            }
        }
        if let Some(b) = &self.brand
            && (b.trim().is_empty() || chars(b) > ATTRIBUTE_CHARS_MAX)
        {
            return Err(Error::invalid("product.brand", "empty or too long"));
        }
        // A table built in code (`PriceTable::single`) has not been through `PriceTable::set`.
        if let Some((_, bad)) = self
            .prices
            .iter()
            .find(|(_, m)| m.is_negative() || !m.is_rounded())
        {
            return Err(Error::invalid(
                "product.prices",
                format!("{bad} is negative or not in minor units"),
            ));
        }
        if self.prices.is_empty() && self.status == ProductStatus::Active {
            return Err(Error::invalid(
                "product.prices",
                "an active product needs a price",
            ));
        }
        if self.version == 0 {
            return Err(Error::invalid("product.version", "versions start at 1"));
        }
        Ok(())
    }

    /// The events a write of this product causes, to commit with it
    /// ([`crate::CatalogStore::put`]): `ProductRetired` when the write retires it; otherwise
    /// `ProductUpserted` with the new projection, then one `PriceChanged` per currency whose
    /// default price differs from `previous` (the stored product this write replaces, `None`
    /// for a new one). Event ids derive from the product id and version, so a retried write
    /// commits each event once.
    ///
    /// ```
    /// use chrono::{TimeZone, Utc};
    /// use commerce_core::{Money, PriceScope, Currency};
    /// # let mut product = commerce_core::testkit::sample_product("p-1", "SKU-1");
    /// let at = Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap();
    /// let first = product.change_events(None, at)?;
    /// assert_eq!(first.iter().map(|e| e.event_type.as_str()).collect::<Vec<_>>(), ["ProductUpserted"]);
    ///
    /// let before = product.clone();
    /// product.prices.set(PriceScope::Default, Money::from_minor(1499, Currency::EUR))?;
    /// product.version = 2;
    /// let second = product.change_events(Some(&before), at)?;
    /// assert_eq!(second.iter().map(|e| e.event_id.as_str()).collect::<Vec<_>>(), ["p-1:v2", "p-1:v2:price:EUR"]);
    /// # Ok::<(), commerce_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Invalid`] if a derived event id does not fit (an id near its length limit).
    pub fn change_events(
        &self,
        previous: Option<&Product>,
        at: DateTime<Utc>,
    ) -> Result<Vec<EventEnvelope>> {
        let id = |suffix: &str| EventId::new(format!("{}:v{}{suffix}", self.id, self.version));
        if self.status == ProductStatus::Retired {
            return Ok(vec![EventEnvelope::new(
                id("")?,
                at,
                DomainEvent::ProductRetired {
                    product_id: self.id.clone(),
                    sku: self.sku.clone(),
                    version: self.version,
                },
            )]);
        }
        let mut events = vec![EventEnvelope::new(
            id("")?,
            at,
            DomainEvent::ProductUpserted {
                projection: Box::new(ProductProjection::from_product(self)),
            },
        )];
        let default_price = |p: &Product, currency| {
            p.prices
                .iter()
                .find(|(scope, m)| *scope == PriceScope::Default && m.currency() == currency)
                .map(|(_, m)| *m)
        };
        for (scope, new) in self.prices.iter() {
            if scope != PriceScope::Default {
                continue;
            }
            let old = previous.and_then(|p| default_price(p, new.currency()));
            if previous.is_some() && old != Some(*new) {
                events.push(EventEnvelope::new(
                    id(&format!(":price:{}", new.currency()))?,
                    at,
                    DomainEvent::PriceChanged {
                        product_id: self.id.clone(),
                        sku: self.sku.clone(),
                        old,
                        new: *new,
                        version: self.version,
                    },
                ));
            }
        }
        Ok(events)
    }
}

/// Signals that other engines attach to the read model (reviews, sales, merchandising).
/// Every field defaults, so a projection written before a field existed still reads.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ProductSignals {
    /// Average rating, 0 to 5.
    pub rating: Option<Decimal>,
    /// Number of reviews behind the rating.
    pub review_count: u32,
    /// Units sold in the recent window the merchant chooses.
    pub popularity: u64,
    /// Paid placement: the merchant is paid to promote this product.
    pub sponsored: bool,
    /// Gross margin in basis points of the price (2_500 is 25 %); negative for a loss leader.
    pub margin_bps: Option<i32>,
    /// How much the merchant wants to move this stock, in basis points (0 = no pressure,
    /// 10_000 = clear it): overstock, ageing or seasonal stock.
    pub stock_pressure_bps: u16,
}

/// The denormalized read model of a product: what a cache serves by SKU and what search indexes.
/// It is derived from a [`Product`] (plus signals and stock state other engines supply) and is
/// never written back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductProjection {
    /// The SKU (the cache key).
    pub sku: Sku,
    /// The product id.
    pub product_id: ProductId,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Brand.
    pub brand: Option<String>,
    /// Category path.
    pub category: CategoryPath,
    /// Attributes.
    pub attributes: BTreeMap<String, String>,
    /// Prices.
    pub prices: PriceTable,
    /// The primary image.
    pub primary_image: Option<Image>,
    /// Active or retired.
    pub status: ProductStatus,
    /// The catalog version the projection was built from.
    pub version: u64,
    /// Review and sales signals.
    pub signals: ProductSignals,
    /// Whether stock is available, when the builder knows.
    pub in_stock: Option<bool>,
}

impl ProductProjection {
    /// Projects a product; signals start empty and stock unknown.
    pub fn from_product(p: &Product) -> ProductProjection {
        ProductProjection {
            sku: p.sku.clone(),
            product_id: p.id.clone(),
            title: p.title.clone(),
            description: p.description.clone(),
            brand: p.brand.clone(),
            category: p.category.clone(),
            attributes: p.attributes.clone(),
            prices: p.prices.clone(),
            primary_image: p.images.first().cloned(),
            status: p.status,
            version: p.version,
            signals: ProductSignals::default(),
            in_stock: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Currency, Money};

    pub(crate) fn product() -> Product {
        Product {
            id: ProductId::new("p-1").unwrap(),
            sku: Sku::new("TEE-RED-M").unwrap(),
            title: "Red tee".into(),
            description: "Cotton".into(),
            images: vec![Image {
                url: "https://img/1.jpg".into(),
                alt: "front".into(),
            }],
            prices: PriceTable::single(Money::from_minor(1999, Currency::EUR)),
            attributes: [
                ("colour".to_owned(), "red".to_owned()),
                ("size".to_owned(), "M".to_owned()),
            ]
            .into(),
            brand: Some("Acme".into()),
            category: CategoryPath::parse("Apparel/Tops/T-Shirts").unwrap(),
            status: ProductStatus::Active,
            version: 1,
        }
    }

    #[test]
    fn validation_names_the_field() {
        assert!(product().validate().is_ok());
        type Breaker = fn(&mut Product);
        let cases: Vec<(Breaker, &str)> = vec![
            (|p| p.title = "  ".into(), "product.title"),
            (
                |p| p.title = "x".repeat(TITLE_CHARS_MAX + 1),
                "product.title",
            ),
            (
                |p| p.description = "x".repeat(DESCRIPTION_CHARS_MAX + 1),
                "product.description",
            ),
            (
                |p| {
                    p.images = vec![Image {
                        url: "".into(),
                        alt: "".into(),
                    }]
                },
                "product.images",
            ),
            (
                |p| {
                    p.attributes.insert("".into(), "x".into());
                },
                "product.attributes",
            ),
            (|p| p.brand = Some(" ".into()), "product.brand"),
            (
                |p| p.prices = PriceTable::new(Currency::EUR),
                "product.prices",
            ),
            (
                |p| p.prices = PriceTable::single(Money::from_minor(-500, Currency::EUR)),
                "product.prices",
            ),
            (
                |p| {
                    p.prices =
                        PriceTable::single(Money::new(Decimal::new(12_345, 3), Currency::EUR));
                },
                "product.prices",
            ),
            (|p| p.version = 0, "product.version"),
        ];
        for (break_it, field) in cases {
            let mut p = product();
            break_it(&mut p);
            match p.validate() {
                Err(Error::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
        let mut retired = product();
        retired.status = ProductStatus::Retired;
        retired.prices = PriceTable::new(Currency::EUR);
        assert!(
            retired.validate().is_ok(),
            "a retired product may lose its prices"
        );
    }

    #[test]
    fn category_paths() {
        let c = CategoryPath::parse("Home/Kitchen/Knives").unwrap();
        assert_eq!(c.to_string(), "Home/Kitchen/Knives");
        assert!(c.is_within(&CategoryPath::parse("Home").unwrap()));
        assert!(c.is_within(&CategoryPath::parse("").unwrap()));
        assert!(!c.is_within(&CategoryPath::parse("Home/Garden").unwrap()));
        assert!(CategoryPath::parse("Home//Knives").is_err());
        assert!(CategoryPath::new(vec!["a"; CATEGORY_DEPTH_MAX + 1]).is_err());
        assert!(serde_json::from_str::<CategoryPath>(r#"["a/b"]"#).is_err());
    }

    #[test]
    fn projection_carries_the_product_and_its_version() {
        let p = product();
        let v = ProductProjection::from_product(&p);
        assert_eq!(v.sku, p.sku);
        assert_eq!(v.version, 1);
        assert_eq!(v.primary_image, p.images.first().cloned());
        assert_eq!(v.in_stock, None);
    }
}
