//! The JSON bodies the routes answer with, as the OpenAPI document describes them. The engines'
//! types stay free of HTTP and schema concerns; these views are built from them.

use commerce_core::{Address, CountryCode, Money, Product, ProductStatus};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::problem::ApiError;

/// An exact amount: a decimal string in the currency's minor units, never a float.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MoneyView {
    /// The amount, e.g. `"12.50"`.
    #[schema(example = "12.50")]
    pub amount: String,
    /// ISO 4217 code, e.g. `"GBP"`.
    #[schema(example = "GBP")]
    pub currency: String,
}

impl From<Money> for MoneyView {
    fn from(m: Money) -> MoneyView {
        MoneyView {
            amount: m.amount().to_string(),
            currency: m.currency().to_string(),
        }
    }
}

/// A postal address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AddressView {
    /// Recipient.
    pub name: String,
    /// Street and number.
    pub line1: String,
    /// More of the street address.
    #[serde(default)]
    pub line2: Option<String>,
    /// City.
    pub city: String,
    /// Region or state.
    #[serde(default)]
    pub region: Option<String>,
    /// Postal code.
    pub postal_code: String,
    /// ISO 3166-1 alpha-2 country, e.g. `"GB"`.
    #[schema(example = "GB")]
    pub country: String,
}

impl From<&Address> for AddressView {
    fn from(a: &Address) -> AddressView {
        AddressView {
            name: a.name.clone(),
            line1: a.line1.clone(),
            line2: a.line2.clone(),
            city: a.city.clone(),
            region: a.region.clone(),
            postal_code: a.postal_code.clone(),
            country: a.country.to_string(),
        }
    }
}

impl TryFrom<AddressView> for Address {
    type Error = ApiError;
    fn try_from(v: AddressView) -> Result<Address, ApiError> {
        let address = Address {
            name: v.name,
            line1: v.line1,
            line2: v.line2,
            city: v.city,
            region: v.region,
            postal_code: v.postal_code,
            country: CountryCode::new(&v.country)
                .map_err(|e| ApiError::from(e).with_field("country"))?,
        };
        address.validate()?;
        Ok(address)
    }
}

/// A product as the storefront shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProductView {
    /// Product id.
    pub id: String,
    /// SKU.
    pub sku: String,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Brand (the demo shop's collections).
    pub brand: Option<String>,
    /// Category path, root first, joined with `/`.
    pub category: String,
    /// The price in the shop's currency, when it has one.
    pub price: Option<MoneyView>,
    /// Attributes.
    pub attributes: std::collections::BTreeMap<String, String>,
    /// False once retired.
    pub active: bool,
    /// The catalog version.
    pub version: u64,
    /// Units available to sell now, when known.
    pub available: Option<i64>,
}

impl ProductView {
    /// The view of `p`, priced in `currency`.
    pub fn of(p: &Product, currency: commerce_core::Currency, available: Option<i64>) -> Self {
        ProductView {
            id: p.id.to_string(),
            sku: p.sku.to_string(),
            title: p.title.clone(),
            description: p.description.clone(),
            brand: p.brand.clone(),
            category: p.category.segments().join("/"),
            price: p
                .prices
                .resolve(currency, None, None)
                .ok()
                .map(MoneyView::from),
            attributes: p.attributes.clone(),
            active: p.status == ProductStatus::Active,
            version: p.version,
            available,
        }
    }
}
