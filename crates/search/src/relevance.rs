//! A relevance harness: a labelled set of products, queries and graded judgements, and the
//! standard measures over what the index returns for it.
//!
//! Grades run from 0 (irrelevant) to 3 (exactly what was asked for); a product without a
//! judgement counts as 0. nDCG uses the gain `2^grade - 1` and a `log2(rank + 1)` discount;
//! MRR and recall count grade ≥ 1 as relevant.
//!
//! Queries may name the pattern they test ("product type last", "stem conflation", …); the
//! report then gives the measures per pattern ([`RelevanceReport::by_pattern`]).
//! [`LabelledSet::evaluate_bm25`] measures a plain BM25 over title and description on the same
//! set: the baseline the engine's ranking must beat.
// Measures are ratios of floats; nothing here touches money.
#![allow(clippy::float_arithmetic)]

use std::collections::BTreeMap;

use commerce_core::{
    CategoryPath, Currency, Money, PriceTable, ProductId, ProductProjection, ProductSignals,
    ProductStatus, Sku,
};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::config::Locale;
use crate::index::SearchIndex;
use crate::request::{Matching, SearchRequest};
use crate::{Error, Result};

/// A product of a labelled set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelledProduct {
    /// Product id (judgements refer to it).
    pub id: String,
    /// SKU.
    pub sku: String,
    /// Title.
    pub title: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Brand.
    #[serde(default)]
    pub brand: Option<String>,
    /// Category path, `A/B/C`.
    #[serde(default)]
    pub category: String,
    /// Attributes.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// Price in the set's currency, as a decimal (`12.50`).
    pub price: Decimal,
    /// Rating, 0 to 5.
    #[serde(default)]
    pub rating: Option<Decimal>,
    /// Units sold recently.
    #[serde(default)]
    pub popularity: u64,
}

/// A query with its judgements.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelledQuery {
    /// Query id.
    pub id: String,
    /// What the shopper typed.
    pub text: String,
    /// The pattern the query stands for, if the set groups its queries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// Grade (0 to 3) per product id.
    pub judgements: BTreeMap<String, u8>,
}

/// Products, queries and judgements.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelledSet {
    /// The currency of the products' prices.
    pub currency: Currency,
    /// The products.
    pub products: Vec<LabelledProduct>,
    /// The queries.
    pub queries: Vec<LabelledQuery>,
    /// The language of the products and queries (`en` when absent): the index and the BM25
    /// baseline analyze in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
}

/// Measures for one query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryScore {
    /// Query id.
    pub id: String,
    /// The query's pattern, if it names one.
    pub pattern: Option<String>,
    /// nDCG over the first 10 results.
    pub ndcg_10: f64,
    /// 1 / rank of the first relevant result (0 if none in the first 100).
    pub reciprocal_rank: f64,
    /// Share of the relevant products found in the first 100 results.
    pub recall_100: f64,
}

/// Measures over a labelled set: means over its queries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelevanceReport {
    /// Mean nDCG@10.
    pub ndcg_10: f64,
    /// Mean reciprocal rank.
    pub mrr: f64,
    /// Mean recall@100.
    pub recall_100: f64,
    /// Per query.
    pub queries: Vec<QueryScore>,
}

/// Means over the queries of one pattern.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatternScore {
    /// How many queries stand for the pattern.
    pub queries: usize,
    /// Mean nDCG@10.
    pub ndcg_10: f64,
    /// Mean reciprocal rank.
    pub mrr: f64,
    /// Mean recall@100.
    pub recall_100: f64,
}

impl RelevanceReport {
    fn of(queries: Vec<QueryScore>) -> RelevanceReport {
        let n = queries.len().max(1) as f64;
        let mean = |f: fn(&QueryScore) -> f64| queries.iter().map(f).sum::<f64>() / n;
        RelevanceReport {
            ndcg_10: mean(|s| s.ndcg_10),
            mrr: mean(|s| s.reciprocal_rank),
            recall_100: mean(|s| s.recall_100),
            queries,
        }
    }

    /// The measures per pattern (queries without one under `""`).
    pub fn by_pattern(&self) -> BTreeMap<String, PatternScore> {
        let mut groups: BTreeMap<String, Vec<&QueryScore>> = BTreeMap::new();
        for q in &self.queries {
            groups
                .entry(q.pattern.clone().unwrap_or_default())
                .or_default()
                .push(q);
        }
        groups
            .into_iter()
            .map(|(pattern, qs)| {
                let n = qs.len().max(1) as f64;
                let mean = |f: fn(&QueryScore) -> f64| qs.iter().map(|q| f(q)).sum::<f64>() / n;
                (
                    pattern,
                    PatternScore {
                        queries: qs.len(),
                        ndcg_10: mean(|s| s.ndcg_10),
                        mrr: mean(|s| s.reciprocal_rank),
                        recall_100: mean(|s| s.recall_100),
                    },
                )
            })
            .collect()
    }
}

impl LabelledSet {
    /// Reads a set from JSON, checking grades and references.
    ///
    /// # Errors
    /// [`Error::Labels`] for malformed JSON, a grade above 3 or a judgement of an unknown product.
    pub fn from_json(text: &str) -> Result<LabelledSet> {
        let set: LabelledSet =
            serde_json::from_str(text).map_err(|e| Error::Labels(e.to_string()))?;
        let ids: std::collections::BTreeSet<&str> =
            set.products.iter().map(|p| p.id.as_str()).collect();
        for q in &set.queries {
            for (id, grade) in &q.judgements {
                if *grade > 3 {
                    return Err(Error::Labels(format!("{}: grade {grade} of {id}", q.id)));
                }
                if !ids.contains(id.as_str()) {
                    return Err(Error::Labels(format!("{}: unknown product {id}", q.id)));
                }
            }
        }
        Ok(set)
    }

    /// The products as projections to index.
    ///
    /// # Errors
    /// [`Error::Labels`] for an invalid id, SKU, category or price.
    pub fn projections(&self) -> Result<Vec<ProductProjection>> {
        let bad = |e: commerce_core::Error| Error::Labels(e.to_string());
        self.products
            .iter()
            .map(|p| {
                Ok(ProductProjection {
                    sku: Sku::new(&p.sku).map_err(bad)?,
                    product_id: ProductId::new(&p.id).map_err(bad)?,
                    title: p.title.clone(),
                    description: p.description.clone(),
                    brand: p.brand.clone(),
                    category: CategoryPath::parse(&p.category).map_err(bad)?,
                    attributes: p.attributes.clone(),
                    prices: PriceTable::single(Money::new(p.price, self.currency)),
                    primary_image: None,
                    status: ProductStatus::Active,
                    version: 1,
                    signals: ProductSignals {
                        rating: p.rating,
                        popularity: p.popularity,
                        ..ProductSignals::default()
                    },
                    in_stock: Some(true),
                })
            })
            .collect()
    }

    /// The set's language: its `locale`, English when absent.
    ///
    /// # Errors
    /// [`Error::Labels`] for a locale this crate does not analyze.
    pub fn language(&self) -> Result<Locale> {
        match &self.locale {
            None => Ok(Locale::English),
            Some(code) => Locale::from_code(code)
                .ok_or_else(|| Error::Labels(format!("unknown locale {code:?}"))),
        }
    }

    /// The default tenant config for the set: its currency and language.
    ///
    /// # Errors
    /// As [`LabelledSet::language`].
    pub fn config(&self) -> Result<crate::TenantConfig> {
        let mut config = crate::TenantConfig::new(&[self.currency]);
        config.locale = self.language()?;
        Ok(config)
    }

    /// A RAM index of the set's products, under `config` (the tenant `labelled`).
    ///
    /// # Errors
    /// [`Error::Labels`] for a product that is not valid, as [`SearchIndex::create`] and
    /// the writer otherwise.
    pub fn index(&self, config: crate::TenantConfig) -> Result<SearchIndex> {
        let index = SearchIndex::create(
            crate::TenantId::new("labelled")?,
            config,
            crate::Storage::Ram,
        )?;
        let mut w = index.writer();
        for p in self.projections()? {
            w.upsert(&p)?;
        }
        w.commit(None)?;
        Ok(index)
    }

    /// Runs every query against `index` with `matching` and measures the first 100 results.
    ///
    /// # Errors
    /// As [`SearchIndex::search`].
    pub fn evaluate(&self, index: &SearchIndex, matching: Matching) -> Result<RelevanceReport> {
        self.evaluate_with(index, |req| req.matching = matching)
    }

    /// Runs every query against `index` as `shape` makes its request (from a first page of
    /// 100 with the defaults) and measures the results, as [`LabelledSet::evaluate`].
    ///
    /// # Errors
    /// As [`SearchIndex::search`].
    pub fn evaluate_with(
        &self,
        index: &SearchIndex,
        shape: impl Fn(&mut SearchRequest),
    ) -> Result<RelevanceReport> {
        let mut scores = Vec::new();
        for q in &self.queries {
            let mut req = SearchRequest::new(&q.text, self.currency);
            req.limit = 100;
            shape(&mut req);
            let ranked: Vec<String> = index
                .search(&req)?
                .hits
                .into_iter()
                .map(|h| h.product_id.as_str().to_owned())
                .collect();
            scores.push(q.score(&ranked));
        }
        Ok(RelevanceReport::of(scores))
    }

    /// Runs every query through a plain BM25 over each product's title and description (a
    /// tantivy index of its own: stemming in the set's language, any word, tantivy's BM25 with k1 = 1.2 and
    /// b = 0.75, no typos, no business signals) and measures the first 100 results. The
    /// baseline a ranking must beat.
    ///
    /// ```
    /// use search::{LabelledSet, Matching, TenantConfig};
    ///
    /// let set = LabelledSet::from_json(r#"{"currency": "EUR",
    ///   "products": [
    ///     {"id": "lamp", "sku": "LAMP", "title": "Brass desk lamp", "price": "40.00"},
    ///     {"id": "kettel", "sku": "KETTLE", "title": "Glass kettle", "price": "30.00"}],
    ///   "queries": [{"id": "q", "text": "lamp", "pattern": "one word",
    ///     "judgements": {"lamp": 3}}]}"#)?;
    /// let ours = set.evaluate(&set.index(TenantConfig::new(&[set.currency]))?, Matching::All)?;
    /// let bm25 = set.evaluate_bm25()?;
    /// assert_eq!((ours.mrr, bm25.mrr), (1.0, 1.0));
    /// assert_eq!(bm25.by_pattern()["one word"].queries, 1);
    /// # Ok::<(), search::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Index`] when the baseline index cannot be built or read.
    pub fn evaluate_bm25(&self) -> Result<RelevanceReport> {
        use tantivy::collector::TopDocs;
        use tantivy::query::QueryParser;
        use tantivy::schema::{STORED, STRING, Schema, TextFieldIndexing, TextOptions, Value};
        use tantivy::tokenizer::{
            LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, TextAnalyzer,
        };
        use tantivy::{Index, TantivyDocument, doc};

        const BASELINE: &str = "baseline_stem";

        let mut schema = Schema::builder();
        let id = schema.add_text_field("id", STRING | STORED);
        let text = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(BASELINE)
                .set_index_option(tantivy::schema::IndexRecordOption::WithFreqsAndPositions),
        );
        let title = schema.add_text_field("title", text.clone());
        let description = schema.add_text_field("description", text);
        let index = Index::create_in_ram(schema.build());
        // tantivy's `en_stem`, in the set's language.
        index.tokenizers().register(
            BASELINE,
            TextAnalyzer::builder(SimpleTokenizer::default())
                .filter(RemoveLongFilter::limit(40))
                .filter(LowerCaser)
                .filter(Stemmer::new(self.language()?.language()))
                .build(),
        );
        let mut writer: tantivy::IndexWriter<TantivyDocument> = index.writer(15_000_000)?;
        for p in &self.products {
            writer.add_document(doc!(
                id => p.id.clone(),
                title => p.title.clone(),
                description => p.description.clone(),
            ))?;
        }
        writer.commit()?;
        let searcher = index.reader()?.searcher();
        let parser = QueryParser::for_index(&index, vec![title, description]);
        let mut scores = Vec::new();
        for q in &self.queries {
            let (query, _) = parser.parse_query_lenient(&q.text);
            let mut ranked = Vec::new();
            for (_, addr) in searcher.search(&query, &TopDocs::with_limit(100).order_by_score())? {
                let d: TantivyDocument = searcher.doc(addr)?;
                if let Some(v) = d.get_first(id).and_then(|v| v.as_str()) {
                    ranked.push(v.to_owned());
                }
            }
            scores.push(q.score(&ranked));
        }
        Ok(RelevanceReport::of(scores))
    }
}

impl LabelledQuery {
    /// The measures of `ranked` (product ids, best first) for this query.
    fn score(&self, ranked: &[String]) -> QueryScore {
        QueryScore {
            id: self.id.clone(),
            pattern: self.pattern.clone(),
            ndcg_10: ndcg_at(ranked, &self.judgements, 10),
            reciprocal_rank: reciprocal_rank(ranked, &self.judgements),
            recall_100: recall_at(ranked, &self.judgements, 100),
        }
    }
}

fn gain(grade: u8) -> f64 {
    f64::from((1u32 << grade.min(3)) - 1)
}

fn dcg(grades: impl Iterator<Item = u8>) -> f64 {
    grades
        .enumerate()
        .map(|(i, g)| gain(g) / ((i + 2) as f64).log2())
        .sum()
}

/// nDCG@k of a ranking against graded judgements; 0 when nothing is relevant.
pub fn ndcg_at(ranked: &[String], judgements: &BTreeMap<String, u8>, k: usize) -> f64 {
    let grade = |id: &String| judgements.get(id).copied().unwrap_or(0);
    let actual = dcg(ranked.iter().take(k).map(grade));
    let mut ideal: Vec<u8> = judgements.values().copied().collect();
    ideal.sort_unstable_by(|a, b| b.cmp(a));
    let best = dcg(ideal.into_iter().take(k));
    if best == 0.0 { 0.0 } else { actual / best }
}

/// 1 / rank of the first result graded ≥ 1; 0 when none.
pub fn reciprocal_rank(ranked: &[String], judgements: &BTreeMap<String, u8>) -> f64 {
    ranked
        .iter()
        .position(|id| judgements.get(id).copied().unwrap_or(0) >= 1)
        .map_or(0.0, |i| 1.0 / (i + 1) as f64)
}

/// Share of the products graded ≥ 1 found in the first `k`; 1 when none is relevant.
pub fn recall_at(ranked: &[String], judgements: &BTreeMap<String, u8>, k: usize) -> f64 {
    let relevant = judgements.values().filter(|g| **g >= 1).count();
    if relevant == 0 {
        return 1.0;
    }
    let found = ranked
        .iter()
        .take(k)
        .filter(|id| judgements.get(*id).copied().unwrap_or(0) >= 1)
        .count();
    found as f64 / relevant as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn j(pairs: &[(&str, u8)]) -> BTreeMap<String, u8> {
        pairs.iter().map(|(k, g)| ((*k).to_owned(), *g)).collect()
    }
    fn r(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn measures_match_hand_computed_values() {
        let judged = j(&[("a", 3), ("b", 1), ("c", 0)]);
        assert!((ndcg_at(&r(&["a", "b"]), &judged, 10) - 1.0).abs() < 1e-12);
        // b then a: (1 + 7/log2 3) / (7 + 1/log2 3)
        let expect = (1.0 + 7.0 / 3f64.log2()) / (7.0 + 1.0 / 3f64.log2());
        assert!((ndcg_at(&r(&["b", "a"]), &judged, 10) - expect).abs() < 1e-12);
        assert_eq!(reciprocal_rank(&r(&["c", "x", "b"]), &judged), 1.0 / 3.0);
        assert_eq!(reciprocal_rank(&r(&["c"]), &judged), 0.0);
        assert_eq!(recall_at(&r(&["a", "c"]), &judged, 100), 0.5);
        assert_eq!(recall_at(&r(&["c", "a"]), &judged, 1), 0.0);
    }

    #[test]
    fn a_set_judging_an_unknown_product_is_refused() {
        let text = r#"{"currency":"EUR","products":[],"queries":[{"id":"q","text":"x","judgements":{"nope":2}}]}"#;
        assert!(matches!(
            LabelledSet::from_json(text),
            Err(Error::Labels(_))
        ));
    }
}
