//! What a shopper asks and what comes back.

use std::collections::BTreeMap;

use commerce_core::{CategoryPath, Currency, Money, ProductId, Sku};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::rank::Features;
use crate::{Error, Result};

/// Most hits one page may hold.
pub const PAGE_LIMIT_MAX: usize = 100;
/// Deepest result a query can reach (`offset + limit`). Past this, a shopper should refine the
/// query or filters; serving it would mean ranking thousands of candidates per request.
pub const RESULT_WINDOW_MAX: usize = 1_000;
/// Longest query text accepted, in characters.
pub const QUERY_CHARS_MAX: usize = 256;
/// Most query words used; the rest are ignored.
pub const QUERY_TOKENS_MAX: usize = 8;
/// Most attribute keys one request may filter on.
pub const ATTRIBUTE_FILTERS_MAX: usize = 16;
/// Most price-bucket boundaries one request may ask for.
pub const PRICE_BUCKETS_MAX: usize = 32;

/// A price range in the shopper's currency: `min` inclusive, `max` exclusive.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PriceRange {
    /// Lowest price included.
    pub min: Option<Money>,
    /// First price excluded.
    pub max: Option<Money>,
}

/// Filters. Within one dimension the selected values are OR-ed; dimensions are AND-ed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Filters {
    /// Any of these brands.
    pub brands: Vec<String>,
    /// This category or anything below it.
    pub category: Option<CategoryPath>,
    /// Price in the request's currency.
    pub price: Option<PriceRange>,
    /// Rating at least this (0 to 5).
    pub min_rating: Option<Decimal>,
    /// Per attribute key, any of these values.
    pub attributes: BTreeMap<String, Vec<String>>,
    /// Only products known to be in stock.
    pub in_stock_only: bool,
}

/// Which facets to count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FacetRequest {
    /// Brand counts.
    pub brand: bool,
    /// Counts of the children of the selected category (or of the top level).
    pub category: bool,
    /// Attribute keys to count values of.
    pub attributes: Vec<String>,
    /// Price bucket boundaries in the request's currency, ascending; `None` for no price facet.
    /// Boundaries `[10, 50]` give buckets `< 10`, `10 – 50`, `≥ 50`.
    pub price_buckets: Option<Vec<Money>>,
    /// Rating buckets: `1+` to `4+` stars.
    pub rating: bool,
    /// Most values returned per facet (brand, category, each attribute).
    pub top_k: usize,
}

impl Default for FacetRequest {
    fn default() -> Self {
        FacetRequest {
            brand: false,
            category: false,
            attributes: Vec::new(),
            price_buckets: None,
            rating: false,
            top_k: 10,
        }
    }
}

/// How many of the query's words a product must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Matching {
    /// Every word (exactly, through a typo, a synonym or as the prefix being typed). When fewer
    /// products than the page needs hold every word, products holding some of them fill the
    /// page below those (marked [`Hit::partial`], and the results say so:
    /// [`SearchResults::relaxed`]), ranked by how much of the query they hold, each word
    /// weighted by how rare it is, so that a rare, decisive word is not outvoted by common
    /// ones; a partial match holds at least one of the query's rarer words. The storefront
    /// default: counts and facets stay tight whenever a page of products holds every word.
    #[default]
    All,
    /// Any word; products matching more of the query rank first (each word's tiers weighted by
    /// how rare it is). Wider recall for long or conversational queries, at the price of
    /// looser counts.
    Any,
}

/// Whether meaning, not only words, ranks the results. Needs an index with an embedder
/// ([`crate::TenantConfig::embedder`]); an index without one refuses the request as invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Semantic {
    /// Words only: the keyword ranking (BM25F, tiers, business signals).
    #[default]
    Off,
    /// The keyword ranking and the products nearest the query's vector, fused by reciprocal
    /// rank (k = 60, equal weights): a product both rank well comes first, and products that
    /// hold none of the words but mean the same (`couch` for `sofa`) join the page. Filters
    /// apply to both; `total` and the facets count the keyword matches.
    Hybrid,
    /// Only the products nearest the query's vector, most similar first, filters honoured.
    Vector,
}

/// A search.
///
/// ```
/// use commerce_core::Currency;
/// use search::SearchRequest;
/// let mut req = SearchRequest::new("red tee", Currency::EUR);
/// req.filters.brands.push("Acme".into());
/// req.facets.brand = true;
/// assert_eq!(req.limit, 10);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchRequest {
    /// What the shopper typed. Empty browses (everything that passes the filters).
    pub text: String,
    /// The shopper's currency: prices, price filters and buckets use it.
    pub currency: Currency,
    /// Filters.
    pub filters: Filters,
    /// Facets to count.
    pub facets: FacetRequest,
    /// Hits to skip.
    pub offset: usize,
    /// Hits to return.
    pub limit: usize,
    /// Return highlighted snippets of title and description.
    pub highlight: bool,
    /// Every word or any word.
    #[serde(default)]
    pub matching: Matching,
    /// Words only, or fused with the nearest products by meaning.
    #[serde(default)]
    pub semantic: Semantic,
}

impl SearchRequest {
    /// A first page of 10 hits, no filters, no facets, no highlighting.
    pub fn new(text: &str, currency: Currency) -> SearchRequest {
        SearchRequest {
            text: text.to_owned(),
            currency,
            filters: Filters::default(),
            facets: FacetRequest::default(),
            offset: 0,
            limit: 10,
            highlight: false,
            matching: Matching::All,
            semantic: Semantic::Off,
        }
    }

    /// Checks the request's bounds.
    pub(crate) fn validate(&self) -> Result<()> {
        if self.limit == 0 || self.limit > PAGE_LIMIT_MAX {
            return Err(Error::invalid(
                "limit",
                format!("1 to {PAGE_LIMIT_MAX}, got {}", self.limit),
            ));
        }
        if self.offset.saturating_add(self.limit) > RESULT_WINDOW_MAX {
            return Err(Error::invalid(
                "offset",
                format!("offset + limit may not pass {RESULT_WINDOW_MAX}; refine the query"),
            ));
        }
        if self.text.chars().count() > QUERY_CHARS_MAX {
            return Err(Error::invalid(
                "text",
                format!("longer than {QUERY_CHARS_MAX} characters"),
            ));
        }
        if self.filters.attributes.len() > ATTRIBUTE_FILTERS_MAX {
            return Err(Error::invalid(
                "filters.attributes",
                format!("more than {ATTRIBUTE_FILTERS_MAX} keys"),
            ));
        }
        if let Some(r) = self.filters.min_rating
            && (r < Decimal::ZERO || r > Decimal::from(5))
        {
            return Err(Error::invalid("filters.min_rating", "0 to 5"));
        }
        let check_currency = |m: &Money, field| {
            if m.currency() == self.currency {
                Ok(())
            } else {
                Err(Error::invalid(
                    field,
                    format!("{m} is not in the request's currency {}", self.currency),
                ))
            }
        };
        if let Some(p) = &self.filters.price {
            for m in p.min.iter().chain(p.max.iter()) {
                check_currency(m, "filters.price")?;
                if m.is_negative() {
                    return Err(Error::invalid("filters.price", "negative"));
                }
            }
        }
        if let Some(bounds) = &self.facets.price_buckets {
            if bounds.len() > PRICE_BUCKETS_MAX {
                return Err(Error::invalid(
                    "facets.price_buckets",
                    format!("more than {PRICE_BUCKETS_MAX} boundaries"),
                ));
            }
            for m in bounds {
                check_currency(m, "facets.price_buckets")?;
                if m.is_negative() {
                    return Err(Error::invalid("facets.price_buckets", "negative"));
                }
            }
            if bounds.windows(2).any(|w| w[0].amount() >= w[1].amount()) {
                return Err(Error::invalid(
                    "facets.price_buckets",
                    "boundaries must strictly ascend",
                ));
            }
        }
        if self.facets.top_k == 0 || self.facets.top_k > 1_000 {
            return Err(Error::invalid("facets.top_k", "1 to 1000"));
        }
        Ok(())
    }
}

/// One value of a facet and how many results have it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FacetCount {
    /// The value (a brand, a category path `Home/Kitchen`, an attribute value).
    pub value: String,
    /// Results with it, counting the other active filters but not this facet's own selection.
    pub count: u64,
}

/// A price bucket's count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceBucket {
    /// Lowest price in the bucket (none for the first).
    pub min: Option<Money>,
    /// First price past the bucket (none for the last).
    pub max: Option<Money>,
    /// Results priced in the bucket.
    pub count: u64,
}

/// A rating bucket's count: results rated at least `at_least` stars.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RatingBucket {
    /// Stars, 1 to 4.
    pub at_least: u8,
    /// Results rated at least that.
    pub count: u64,
}

/// Facet counts, each disjunctive: a facet's own selection does not shrink its counts.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Facets {
    /// Brands, most frequent first (ties by name).
    pub brand: Vec<FacetCount>,
    /// Children of the selected category (or top-level categories), most frequent first.
    pub category: Vec<FacetCount>,
    /// Per requested attribute key, its values, most frequent first.
    pub attributes: BTreeMap<String, Vec<FacetCount>>,
    /// Price buckets in ascending order.
    pub price: Vec<PriceBucket>,
    /// Rating buckets `4+` down to `1+`.
    pub rating: Vec<RatingBucket>,
}

/// Why a hit is where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    /// Ranked.
    Ranked,
    /// Pinned by a merchandising rule.
    Pinned,
}

/// One product in the results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    /// The product.
    pub product_id: ProductId,
    /// Its SKU.
    pub sku: Sku,
    /// Its title.
    pub title: String,
    /// Its brand.
    pub brand: Option<String>,
    /// Its price in the request's currency, if it has one.
    pub price: Option<Money>,
    /// The catalog version the indexed copy was built from; compare with the catalog to tell a
    /// stale hit ([`crate::validate_hits`]).
    pub catalog_version: u64,
    /// The text relevance (BM25) before business signals; 0 when browsing.
    pub relevance: f32,
    /// Ranked or pinned.
    pub placement: Placement,
    /// The product misses some of the query's words: too few products held every word, and
    /// partial matches fill the page below those that do (see [`Matching::All`]).
    #[serde(default)]
    pub partial: bool,
    /// Cosine similarity of the product's vector to the query's (−1 to 1), for semantic
    /// requests when the product was among the nearest ([`Semantic`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub similarity: Option<f32>,
    /// The title with query words in `<b>`, HTML-escaped, when highlighting was asked for.
    pub title_snippet: Option<String>,
    /// A fragment of the description with query words in `<b>`, when highlighting was asked for.
    pub description_snippet: Option<String>,
    /// What the re-rankers saw of this hit (for hits within the re-rank depth): log it with the
    /// impression so that [`crate::train_linear`] can learn from later clicks and purchases.
    pub features: Option<Features>,
}

/// A page of results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchResults {
    /// The page.
    pub hits: Vec<Hit>,
    /// Every product matching the text and all filters (pins excluded).
    pub total: u64,
    /// Facet counts.
    pub facets: Facets,
    /// True when too few products held every word and products holding some of them fill
    /// the results (each marked [`Hit::partial`]); `total` and the facets then count both.
    pub relaxed: bool,
}
