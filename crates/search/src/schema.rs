//! The index schema: how a [`ProductProjection`] becomes a tantivy document.
//!
//! Text goes through one analyzer (split on non-alphanumerics, lowercase, fold accents,
//! optionally stem) so that query tokens and indexed tokens meet. Two text fields are indexed:
//!
//! - `text`, for exact matching and BM25: title, keywords (brand, category segments, attribute
//!   values) and description in one field, the title and the keywords twice each. That is
//!   BM25F with field weights 2, 2 and 1 (the weights scale term frequencies inside one length
//!   normalization, as Lucene's combined-field query does), and each query word reads a single
//!   posting list instead of a union of three.
//! - `loose`, for typo and prefix matching: title and keywords only (a typo in a description
//!   word is noise), not stemmed (a typo is a distance from what the shopper typed).
//!
//! Title and description are stored for rendering hits and snippets. Everything filters, facets and ranking read is a fast (columnar) field, so a
//! query never opens the document store except to render the page it returns.

use std::collections::BTreeMap;

use commerce_core::{
    CategoryPath, Currency, Image, PriceTable, ProductId, ProductProjection, ProductSignals,
    ProductStatus, Sku,
};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use tantivy::TantivyDocument;
use tantivy::schema::Value;
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::{
    AsciiFoldingFilter, LowerCaser, RemoveLongFilter, StopWordFilter, TextAnalyzer,
};

use crate::config::Locale;
use crate::stem::CachedStemmer;
use crate::{Error, Result};

/// The name under which the product analyzer is registered on every index.
pub(crate) const TEXT_ANALYZER: &str = "product_text";
/// The same without stemming: typos and prefixes are about what the shopper typed.
pub(crate) const PLAIN_ANALYZER: &str = "product_plain";
/// Separates an attribute's key from its value in the `attrs` column.
pub(crate) const ATTR_SEP: char = '\u{1f}';
/// Stock state stored in the `in_stock` column.
pub(crate) const STOCK_OUT: u64 = 0;
pub(crate) const STOCK_IN: u64 = 1;
pub(crate) const STOCK_UNKNOWN: u64 = 2;

/// Values of the `status` field.
pub(crate) const STATUS_ACTIVE: &str = "active";
pub(crate) const STATUS_RETIRED: &str = "retired";
/// A product the index knows only by its rating: a `ProductRatingChanged` arrived before the
/// product's first upsert (two outboxes relayed apart). Like a tombstone, it matches no query.
pub(crate) const STATUS_AWAITING: &str = "awaiting";

/// BM25F field weights of the `text` field, applied by repeating the field's text: the title
/// counts twice, keywords (brand, category, attribute values) and description once. Keywords
/// weighed as the title until analysis version 2: a word of a brand then matched as strongly as
/// the title's own words ("mason jars" put a cookie jar by Mason Cash, with its short title,
/// above the mason jars).
const TITLE_WEIGHT: usize = 2;
const KEYWORDS_WEIGHT: usize = 1;

/// Tokens longer than this are dropped by the analyzer (they are noise, not words).
const TOKEN_CHARS_MAX: usize = 40;

/// The analyzer for product text and queries.
pub(crate) fn analyzer(locale: Locale, stemming: bool) -> TextAnalyzer {
    query_analyzer(locale, stemming, false)
}

/// The analyzer, optionally dropping English stop words (`for`, `and`, `with`, ...): queries use
/// it so that `desk for kids` does not require, or rank by, `for`. Stop words are dropped
/// before stemming, so the stemmed and unstemmed analyses stay word for word aligned.
///
/// English folds accents before stemming (as it always has: its indexes stay valid); the other
/// languages after, so that their stemmers see `ü`, `é`, `ñ`. Stop words are matched before
/// folding (the lists are written with their accents).
pub(crate) fn query_analyzer(locale: Locale, stemming: bool, stop_words: bool) -> TextAnalyzer {
    let english = locale == Locale::English;
    let mut builder = TextAnalyzer::builder(crate::tokens::ShopTokenizer::default())
        .filter(RemoveLongFilter::limit(TOKEN_CHARS_MAX))
        .filter(LowerCaser)
        .dynamic();
    if english {
        builder = builder.filter_dynamic(AsciiFoldingFilter);
    }
    if stop_words && let Some(stop) = StopWordFilter::new(locale.language()) {
        builder = builder.filter_dynamic(stop);
    }
    if stemming {
        builder = builder.filter_dynamic(CachedStemmer(locale.language()));
    }
    if !english {
        builder = builder.filter_dynamic(AsciiFoldingFilter);
    }
    builder.build()
}

/// What the document stores of a projection besides title and description (which are stored
/// fields of their own, for rendering hits).
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredRest {
    sku: Sku,
    product_id: ProductId,
    brand: Option<String>,
    category: CategoryPath,
    attributes: BTreeMap<String, String>,
    prices: PriceTable,
    primary_image: Option<Image>,
    status: ProductStatus,
    version: u64,
    signals: ProductSignals,
    in_stock: Option<bool>,
}

/// Handles on every field of a tenant's schema.
#[derive(Debug, Clone)]
pub(crate) struct Fields {
    pub(crate) product_id: Field,
    pub(crate) sku: Field,
    pub(crate) sku_key: Field,
    pub(crate) text: Field,
    pub(crate) loose: Field,
    pub(crate) title: Field,
    pub(crate) description: Field,
    pub(crate) brand: Field,
    pub(crate) category: Field,
    pub(crate) attrs: Field,
    pub(crate) rating: Field,
    pub(crate) reviews: Field,
    pub(crate) rating_seq: Field,
    pub(crate) popularity: Field,
    pub(crate) sponsored: Field,
    pub(crate) margin: Field,
    pub(crate) pressure: Field,
    pub(crate) in_stock: Field,
    pub(crate) status: Field,
    pub(crate) version: Field,
    pub(crate) projection: Field,
    /// The product's vector (little-endian `f32`s) when the index has an embedder; absent from
    /// indexes created before vectors were stored.
    pub(crate) embedding: Option<Field>,
    pub(crate) prices: BTreeMap<Currency, Field>,
}

/// Column (fast field) names, read by the collector and the re-ranker.
pub(crate) mod col {
    pub(crate) const PRODUCT_ID: &str = "product_id";
    pub(crate) const BRAND: &str = "brand";
    pub(crate) const CATEGORY: &str = "category";
    pub(crate) const ATTRS: &str = "attrs";
    pub(crate) const RATING: &str = "rating";
    pub(crate) const REVIEWS: &str = "review_count";
    pub(crate) const RATING_SEQ: &str = "rating_seq";
    pub(crate) const POPULARITY: &str = "popularity";
    pub(crate) const SPONSORED: &str = "sponsored";
    pub(crate) const MARGIN: &str = "margin_bps";
    pub(crate) const PRESSURE: &str = "stock_pressure_bps";
    pub(crate) const IN_STOCK: &str = "in_stock";
    pub(crate) const VERSION: &str = "version";
    pub(crate) const STATUS: &str = "status";
}

/// The stored field holding a product's vector.
pub(crate) const EMBEDDING: &str = "embedding";

/// A vector as stored: its numbers as little-endian bytes.
pub(crate) fn vector_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A stored vector back to numbers; `None` when the bytes are not whole numbers.
pub(crate) fn vector_from_bytes(bytes: &[u8]) -> Option<Vec<f32>> {
    let chunks = bytes.chunks_exact(4);
    if !chunks.remainder().is_empty() {
        return None;
    }
    Some(
        chunks
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

/// The text a product's vector is made from: title, brand, category and the start of the
/// description (embedding models read a few hundred words at most).
pub(crate) fn embedding_text(p: &ProductProjection) -> String {
    let mut text = p.title.clone();
    if let Some(brand) = &p.brand {
        text.push_str(". ");
        text.push_str(brand);
    }
    let category = p.category.segments().join(" ");
    if !category.is_empty() {
        text.push_str(". ");
        text.push_str(&category);
    }
    if !p.description.is_empty() {
        text.push_str(". ");
        text.extend(p.description.chars().take(EMBEDDING_DESCRIPTION_CHARS));
    }
    text
}

/// Characters of the description a product's vector reads.
const EMBEDDING_DESCRIPTION_CHARS: usize = 600;

/// The name of the price column for a currency.
pub(crate) fn price_column(currency: Currency) -> String {
    format!("price_{}", currency.code().to_ascii_lowercase())
}

/// The schema for an index carrying prices in `currencies`.
pub(crate) fn build_schema(currencies: &[Currency]) -> Schema {
    let mut b = Schema::builder();
    let text = |analyzer: &str, record: IndexRecordOption| {
        let idx = TextFieldIndexing::default()
            .set_tokenizer(analyzer)
            .set_index_option(record);
        TextOptions::default().set_indexing_options(idx)
    };
    b.add_text_field(col::PRODUCT_ID, STRING | STORED | FAST);
    b.add_text_field("sku", STRING | STORED);
    b.add_text_field("sku_key", STRING);
    b.add_text_field("text", text(TEXT_ANALYZER, IndexRecordOption::WithFreqs));
    b.add_text_field("loose", text(PLAIN_ANALYZER, IndexRecordOption::Basic));
    b.add_text_field("title", STORED);
    b.add_text_field("description", STORED);
    b.add_text_field(col::BRAND, STRING | STORED | FAST);
    b.add_text_field(col::CATEGORY, STRING | FAST);
    b.add_text_field(col::ATTRS, STRING | FAST);
    b.add_text_field(col::STATUS, STRING | STORED | FAST);
    b.add_u64_field(col::VERSION, INDEXED | FAST | STORED);
    b.add_u64_field(col::RATING, FAST);
    b.add_u64_field(col::REVIEWS, FAST);
    b.add_u64_field(col::RATING_SEQ, FAST);
    b.add_u64_field(col::POPULARITY, FAST);
    b.add_bool_field(col::SPONSORED, FAST);
    b.add_i64_field(col::MARGIN, FAST);
    b.add_u64_field(col::PRESSURE, FAST);
    b.add_u64_field(col::IN_STOCK, FAST);
    b.add_bytes_field("projection", STORED);
    b.add_bytes_field(EMBEDDING, STORED);
    for c in currencies {
        b.add_u64_field(&price_column(*c), FAST);
    }
    b.build()
}

impl Fields {
    /// Resolves every field of `schema` (one this crate built).
    pub(crate) fn resolve(schema: &Schema) -> Result<Fields> {
        let f = |name: &str| {
            schema
                .get_field(name)
                .map_err(|_| Error::invalid("schema", format!("no field {name:?}")))
        };
        let mut prices = BTreeMap::new();
        for (field, entry) in schema.fields() {
            if let Some(code) = entry.name().strip_prefix("price_") {
                let currency = Currency::from_code(&code.to_ascii_uppercase())
                    .map_err(|_| Error::invalid("schema", format!("price field {code:?}")))?;
                prices.insert(currency, field);
            }
        }
        Ok(Fields {
            product_id: f(col::PRODUCT_ID)?,
            sku: f("sku")?,
            sku_key: f("sku_key")?,
            text: f("text")?,
            loose: f("loose")?,
            title: f("title")?,
            description: f("description")?,
            brand: f(col::BRAND)?,
            category: f(col::CATEGORY)?,
            attrs: f(col::ATTRS)?,
            rating: f(col::RATING)?,
            reviews: f(col::REVIEWS)?,
            rating_seq: f(col::RATING_SEQ)?,
            popularity: f(col::POPULARITY)?,
            sponsored: f(col::SPONSORED)?,
            margin: f(col::MARGIN)?,
            pressure: f(col::PRESSURE)?,
            in_stock: f(col::IN_STOCK)?,
            status: f(col::STATUS)?,
            version: f(col::VERSION)?,
            projection: f("projection")?,
            embedding: schema.get_field(EMBEDDING).ok(),
            prices,
        })
    }

    /// The tombstone of a retired product: its id, version, status and rating only. It matches
    /// no query (no text, no SKU) and keeps the version, so a late change older than the
    /// retirement cannot bring the product back, and the rating, so a product that comes
    /// back has it and a stale rating event is still dropped.
    pub(crate) fn tombstone(
        &self,
        id: &str,
        version: u64,
        rating: &RatingState,
    ) -> TantivyDocument {
        let mut doc = TantivyDocument::default();
        doc.add_text(self.product_id, id);
        doc.add_text(self.status, STATUS_RETIRED);
        doc.add_u64(self.version, version);
        self.add_rating(&mut doc, rating);
        doc
    }

    /// The document of a product known only by its rating ([`STATUS_AWAITING`]): id, status
    /// and rating, no version. It matches no query; the product's first upsert takes the
    /// rating over.
    pub(crate) fn awaiting(&self, id: &str, rating: &RatingState) -> TantivyDocument {
        let mut doc = TantivyDocument::default();
        doc.add_text(self.product_id, id);
        doc.add_text(self.status, STATUS_AWAITING);
        self.add_rating(&mut doc, rating);
        doc
    }

    fn add_rating(&self, doc: &mut TantivyDocument, r: &RatingState) {
        if let Some(rating) = r.rating {
            doc.add_u64(self.rating, rating_centi(rating));
        }
        doc.add_u64(self.reviews, u64::from(r.review_count));
        doc.add_u64(self.rating_seq, r.seq);
    }

    /// The document for an active product whose rating came from the rating event numbered
    /// `rating_seq` (0: not from a rating event).
    pub(crate) fn document(
        &self,
        p: &ProductProjection,
        rating_seq: u64,
    ) -> Result<TantivyDocument> {
        let unindexable = |reason: String| Error::Unindexable {
            product: p.product_id.as_str().to_owned(),
            reason,
        };
        let mut doc = TantivyDocument::default();
        doc.add_text(self.product_id, p.product_id.as_str());
        doc.add_text(self.sku, p.sku.as_str());
        doc.add_text(self.sku_key, sku_key(p.sku.as_str()));
        doc.add_text(self.title, &p.title);
        doc.add_text(self.description, &p.description);
        let mut keywords = String::new();
        if let Some(brand) = &p.brand {
            doc.add_text(self.brand, brand);
            keywords.push_str(brand);
        }
        if !p.category.segments().is_empty() {
            doc.add_text(self.category, p.category.to_string());
        }
        for segment in p.category.segments() {
            keywords.push(' ');
            keywords.push_str(segment);
        }
        for (k, v) in &p.attributes {
            if k.contains(ATTR_SEP) {
                return Err(unindexable(format!("attribute key {k:?} holds U+001F")));
            }
            doc.add_text(self.attrs, format!("{k}{ATTR_SEP}{v}"));
            keywords.push(' ');
            keywords.push_str(v);
        }
        // BM25F weights by repetition: title 2, keywords 1, description 1.
        for _ in 0..TITLE_WEIGHT {
            doc.add_text(self.text, &p.title);
        }
        for _ in 0..KEYWORDS_WEIGHT {
            doc.add_text(self.text, &keywords);
        }
        doc.add_text(self.text, &p.description);
        doc.add_text(self.loose, &p.title);
        doc.add_text(self.loose, &keywords);
        if p.status == ProductStatus::Retired {
            return Err(unindexable(
                "a retired product is indexed as a tombstone".into(),
            ));
        }
        doc.add_text(self.status, STATUS_ACTIVE);
        doc.add_u64(self.version, p.version);
        self.add_rating(
            &mut doc,
            &RatingState {
                rating: p.signals.rating,
                review_count: p.signals.review_count,
                seq: rating_seq,
            },
        );
        doc.add_u64(self.popularity, p.signals.popularity);
        doc.add_bool(self.sponsored, p.signals.sponsored);
        doc.add_i64(self.margin, i64::from(p.signals.margin_bps.unwrap_or(0)));
        doc.add_u64(
            self.pressure,
            u64::from(p.signals.stock_pressure_bps.min(10_000)),
        );
        doc.add_u64(
            self.in_stock,
            match p.in_stock {
                Some(true) => STOCK_IN,
                Some(false) => STOCK_OUT,
                None => STOCK_UNKNOWN,
            },
        );
        for (currency, field) in &self.prices {
            if let Ok(price) = p.prices.resolve(*currency, None, None) {
                let minor = price
                    .to_minor()
                    .ok()
                    .and_then(|m| u64::try_from(m).ok())
                    .ok_or_else(|| unindexable(format!("price {price} out of range")))?;
                doc.add_u64(*field, minor);
            }
        }
        let rest = StoredRest {
            sku: p.sku.clone(),
            product_id: p.product_id.clone(),
            brand: p.brand.clone(),
            category: p.category.clone(),
            attributes: p.attributes.clone(),
            prices: p.prices.clone(),
            primary_image: p.primary_image.clone(),
            status: p.status,
            version: p.version,
            signals: p.signals.clone(),
            in_stock: p.in_stock,
        };
        let json = serde_json::to_vec(&rest).map_err(|e| unindexable(e.to_string()))?;
        doc.add_bytes(self.projection, &json);
        Ok(doc)
    }

    /// The projection a stored document was built from; `None` for a tombstone or a product
    /// known only by its rating.
    pub(crate) fn stored_projection(
        &self,
        doc: &TantivyDocument,
    ) -> Result<Option<ProductProjection>> {
        let text = |field| {
            doc.get_first(field)
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        };
        if text(self.status).as_deref() != Some(STATUS_ACTIVE) {
            return Ok(None);
        }
        let bytes = doc
            .get_first(self.projection)
            .and_then(|v| v.as_bytes())
            .ok_or_else(|| Error::Payload("document without projection".into()))?;
        let rest: StoredRest =
            serde_json::from_slice(bytes).map_err(|e| Error::Payload(e.to_string()))?;
        Ok(Some(ProductProjection {
            sku: rest.sku,
            product_id: rest.product_id,
            title: text(self.title).unwrap_or_default(),
            description: text(self.description).unwrap_or_default(),
            brand: rest.brand,
            category: rest.category,
            attributes: rest.attributes,
            prices: rest.prices,
            primary_image: rest.primary_image,
            status: rest.status,
            version: rest.version,
            signals: rest.signals,
            in_stock: rest.in_stock,
        }))
    }
}

/// A product's rating as the index holds it: the signal and the `seq` of the
/// `ProductRatingChanged` that set it (0 when no rating event did).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct RatingState {
    pub(crate) rating: Option<Decimal>,
    pub(crate) review_count: u32,
    pub(crate) seq: u64,
}

/// A SKU as the `sku_key` field holds it: trimmed and lowercased, so `tee-red-m` finds `TEE-RED-M`.
pub(crate) fn sku_key(text: &str) -> String {
    text.trim().to_lowercase()
}

/// A rating of 0 to 5 stars as hundredths of a star, the unit of the `rating` column.
pub(crate) fn rating_centi(rating: Decimal) -> u64 {
    (rating * Decimal::ONE_HUNDRED)
        .round()
        .to_u64()
        .unwrap_or(0)
        .min(500)
}
