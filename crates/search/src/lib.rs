//! Product search: a projection of the catalog into [tantivy], per tenant.
//!
//! - **Indexing**: [`SearchIndex`] holds one tenant's products (in RAM or a directory). The
//!   [`Indexer`] reads the shared domain event log ([`commerce_core::EventLog`], which the
//!   catalog's outbox feeds), applies the catalog changes and the reviews engine's rating
//!   changes in batches and commits each with its log offset, so a restart resumes exactly
//!   where it stopped; [`Indexer::lag`] tells how far behind the index is.
//! - **Querying**: [`SearchIndex::search`] runs BM25F over title (weight 2), keywords (brand,
//!   category, attribute values; weight 1) and description (weight 1), with typo tolerance
//!   scaled by word length (exact always above typo), prefix
//!   matching on the last word, per-tenant synonyms and exact SKU lookup; filters on brand,
//!   category subtree, price in the shopper's currency, rating, attributes and stock; and
//!   disjunctive facet counts, all in one pass over the matches.
//! - **Ranking**: the best [`BusinessWeights::rerank_depth`] matches are re-ranked with bounded
//!   business signals, then an optional learned [`Reranker`] ([`LinearModel`], trained offline
//!   by [`train_linear`]); merchandising rules pin and hide products per query.
//! - **Staleness**: every hit carries its catalog version; [`validate_hits`] checks a page
//!   against the catalog port and [`reconcile`] repairs divergence.
//! - **Tenants**: [`SearchRegistry`] keeps one index per tenant; a query names its tenant and
//!   reads only that index.
//! - **Relevance**: [`LabelledSet`] measures nDCG@10, MRR and recall@100 on graded judgements.
//!
//! See [`SearchIndex`] for a runnable example.

mod collect;
mod config;
mod error;
mod index;
#[cfg(feature = "minilm")]
mod minilm;
mod pipeline;
mod query;
mod rank;
mod registry;
mod relevance;
mod request;
mod schema;
mod semantic;
mod stale;
mod stem;
mod tokens;
mod vocab;

/// Locks a mutex, taking over its data if a thread panicked while holding it (every critical
/// section here leaves the data consistent at each step).
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub use config::{Locale, MerchRule, MerchRules, Synonyms, TenantConfig, TenantId};
pub use error::{Error, Result};
pub use index::{IndexWriterGuard, SearchIndex, Storage};
#[cfg(feature = "minilm")]
pub use minilm::MiniLm;
pub use pipeline::{BatchReport, Indexer, PartitionsReport, SKIPPED_COMMIT_EVERY};
pub use rank::{
    BusinessWeights, Features, Interaction, LinearModel, LogEvent, Reranker, Signals, TrainConfig,
    train_linear,
};
pub use registry::SearchRegistry;
pub use relevance::{
    LabelledProduct, LabelledQuery, LabelledSet, PatternScore, QueryScore, RelevanceReport,
    ndcg_at, recall_at, reciprocal_rank,
};
pub use request::{
    ATTRIBUTE_FILTERS_MAX, FacetCount, FacetRequest, Facets, Filters, Hit, Matching,
    PAGE_LIMIT_MAX, PRICE_BUCKETS_MAX, Placement, PriceBucket, PriceRange, QUERY_CHARS_MAX,
    QUERY_TOKENS_MAX, RESULT_WINDOW_MAX, RatingBucket, SearchRequest, SearchResults, Semantic,
};
pub use semantic::{
    AnnConfig, DIMS_RANGE, Embedder, HashingEmbedder, Neighbour, VectorIndex, conformance, cosine,
    reciprocal_rank_fusion,
};
pub use stale::{Freshness, ReconcileReport, ValidatedHits, reconcile, validate_hits};

/// The version of the text analysis (tokenizer and filters) documents are indexed with. An
/// index on disk records the version it was built with; opening one built with another fails
/// with [`Error::AnalysisChanged`] rather than answering queries whose words no longer meet its
/// own. Version 1: number-and-unit and dimension tokens (`6 inch` → `6in`, `2 x 4` → `2x4`).
/// Version 2: keywords (brand, category, attribute values) weigh as the description, not as the
/// title.
pub const ANALYSIS_VERSION: u32 = 2;
