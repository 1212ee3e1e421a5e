//! The demo shop: a few thousand real products and baskets derived from UCI Online Retail
//! (Chen, D. (2015), *Online Retail*, UCI Machine Learning Repository, CC BY 4.0), committed
//! in `data/` with the script that derived them.

use chrono::{DateTime, Utc};
use commerce_core::{CategoryPath, Money, PriceTable, Product, ProductId, ProductStatus, Sku};

/// The products, one per line after a header: sku, title, price (GBP), category, collection,
/// units sold in 2011.
pub const PRODUCTS_TSV: &str = include_str!("../data/products.tsv");
/// Invoices of two or more of those products: invoice, SKUs separated by spaces.
pub const BASKETS_TSV: &str = include_str!("../data/baskets.tsv");

/// A product of the demo shop and the units it starts with.
#[derive(Debug, Clone)]
pub struct DemoProduct {
    /// The product, version 1.
    pub product: Product,
    /// Units on hand at the first start.
    pub units: i64,
}

/// Parses [`PRODUCTS_TSV`].
///
/// # Errors
/// A message naming the line that does not parse.
pub fn products() -> Result<Vec<DemoProduct>, String> {
    let mut out = Vec::new();
    for (n, line) in PRODUCTS_TSV.lines().enumerate().skip(1) {
        let bad = |why: String| format!("products.tsv line {}: {why}", n + 1);
        let f: Vec<&str> = line.split('\t').collect();
        let [sku, title, price, category, collection, sold] = f[..] else {
            return Err(bad(format!("{} fields, want 6", f.len())));
        };
        let price: Money = format!("{price} GBP")
            .parse()
            .map_err(|e| bad(format!("price: {e}")))?;
        let sold: i64 = sold.parse().map_err(|e| bad(format!("units: {e}")))?;
        let sku = Sku::new(sku).map_err(|e| bad(e.to_string()))?;
        let product = Product {
            id: ProductId::new(format!("p-{sku}")).map_err(|e| bad(e.to_string()))?,
            sku,
            title: title.to_owned(),
            description: format!(
                "{title}, from the {collection} range of our {} department.",
                category.replace('/', " / ").to_lowercase()
            ),
            images: Vec::new(),
            prices: PriceTable::single(price),
            attributes: Default::default(),
            brand: Some(collection.to_owned()),
            category: CategoryPath::parse(category).map_err(|e| bad(e.to_string()))?,
            status: ProductStatus::Active,
            version: 1,
        };
        product.validate().map_err(|e| bad(e.to_string()))?;
        // A shelf that sells a year's best seller out in about a week, and at least a few.
        let units = (sold / 50).clamp(3, 500);
        out.push(DemoProduct { product, units });
    }
    Ok(out)
}

/// Parses [`BASKETS_TSV`] into co-purchase baskets dated `at`.
///
/// # Errors
/// A message naming the line that does not parse.
pub fn baskets(at: DateTime<Utc>) -> Result<Vec<recs::copurchase::Basket>, String> {
    let mut out = Vec::new();
    for (n, line) in BASKETS_TSV.lines().enumerate().skip(1) {
        let bad = |why: String| format!("baskets.tsv line {}: {why}", n + 1);
        let (_, skus) = line.split_once('\t').ok_or_else(|| bad("no tab".into()))?;
        let items = skus
            .split(' ')
            .map(Sku::new)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(e.to_string()))?;
        out.push(recs::copurchase::Basket::new(at, items).map_err(|e| bad(e.to_string()))?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_demo_product_and_basket_parses() {
        let products = products().unwrap();
        assert!(products.len() >= 2_000, "{} products", products.len());
        let skus: std::collections::HashSet<_> =
            products.iter().map(|p| p.product.sku.clone()).collect();
        assert_eq!(skus.len(), products.len(), "SKUs are unique");
        let baskets = baskets(commerce_core::testkit::t0()).unwrap();
        assert!(baskets.len() >= 1_000);
    }
}
