//! Per-tenant configuration: currencies, analysis, synonyms, merchandising and ranking.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use commerce_core::{Currency, Sku};

use crate::rank::{BusinessWeights, Reranker};
use crate::semantic::{AnnConfig, Embedder};
use crate::{Error, Result};

/// A tenant of the search engine: one merchant, or one merchant's locale. Each tenant has its
/// own index, so a query can never see another tenant's products, and BM25 statistics of one
/// tenant never skew another's ranking.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(String);

impl TenantId {
    /// Longest tenant id accepted.
    pub const LEN_MAX: usize = 64;

    /// A tenant id: 1 to 64 characters of `a-z`, `0-9`, `-` and `_` (it names a directory).
    ///
    /// # Errors
    /// [`Error::Invalid`] for anything else.
    pub fn new(text: &str) -> Result<TenantId> {
        let ok = !text.is_empty()
            && text.len() <= Self::LEN_MAX
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if ok {
            Ok(TenantId(text.to_owned()))
        } else {
            Err(Error::invalid(
                "tenant",
                format!("{text:?} is not 1-64 of a-z 0-9 - _"),
            ))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Query-time synonyms of one tenant. A query word also matches its synonyms' documents;
/// a synonym may be several words (`tee` → `t shirt`), which must then all match.
///
/// ```
/// use search::Synonyms;
/// let mut s = Synonyms::default();
/// s.equivalent(&["sofa", "couch", "settee"]);
/// s.one_way("tv", &["television"]);
/// assert_eq!(s.len(), 4);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Synonyms {
    pub(crate) map: BTreeMap<String, Vec<String>>,
}

impl Synonyms {
    /// Every word of `words` matches every other.
    pub fn equivalent(&mut self, words: &[&str]) -> &mut Self {
        for w in words {
            let others: Vec<&str> = words.iter().copied().filter(|o| o != w).collect();
            self.one_way(w, &others);
        }
        self
    }

    /// The single word `word` also matches each of `alternatives` (not the other way round).
    pub fn one_way(&mut self, word: &str, alternatives: &[&str]) -> &mut Self {
        let entry = self.map.entry(word.trim().to_lowercase()).or_default();
        for a in alternatives {
            let a = a.trim().to_lowercase();
            if !a.is_empty() && !entry.contains(&a) {
                entry.push(a);
            }
        }
        self
    }

    /// Number of words that have synonyms.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no word has synonyms.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// Merchandising for one query: pin products at positions, hide others.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MerchRule {
    /// `(sku, position)`: the product is shown at this 0-based position of the result list
    /// when it passes the request's filters, whether or not it matches the text.
    pub pins: Vec<(Sku, usize)>,
    /// Products never shown for this query.
    pub hides: Vec<Sku>,
}

/// Merchandising rules keyed by query. A rule applies when the shopper's query, lowercased and
/// with whitespace collapsed, equals its key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MerchRules {
    pub(crate) rules: BTreeMap<String, MerchRule>,
}

impl MerchRules {
    /// Sets the rule for `query`.
    pub fn set(&mut self, query: &str, rule: MerchRule) -> &mut Self {
        self.rules.insert(normalize_query(query), rule);
        self
    }

    /// The rule for `query`, if any.
    pub fn get(&self, query: &str) -> Option<&MerchRule> {
        self.rules.get(&normalize_query(query))
    }
}

/// A query as rule keys see it: lowercase, words separated by one space.
pub(crate) fn normalize_query(q: &str) -> String {
    q.split_whitespace()
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The language of an index's text: its stemmer, its stop words and whether its words
/// compound. One index per merchant and locale; a query is analyzed as its index is.
///
/// ```
/// use search::Locale;
///
/// assert_eq!(Locale::from_code("de-DE"), Some(Locale::German));
/// assert_eq!(Locale::German.code(), "de");
/// assert!(Locale::Dutch.compounds() && !Locale::French.compounds());
/// assert_eq!(Locale::from_code("xx"), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Locale {
    /// English (the default).
    #[default]
    English,
    /// German: words compound (`Kinderschreibtisch`), see [`Locale::compounds`].
    German,
    /// French.
    French,
    /// Spanish.
    Spanish,
    /// Italian.
    Italian,
    /// Dutch: words compound (`bureaustoel`).
    Dutch,
}

impl Locale {
    /// Every locale.
    pub const ALL: [Locale; 6] = [
        Locale::English,
        Locale::German,
        Locale::French,
        Locale::Spanish,
        Locale::Italian,
        Locale::Dutch,
    ];

    /// The ISO 639-1 code.
    pub fn code(self) -> &'static str {
        match self {
            Locale::English => "en",
            Locale::German => "de",
            Locale::French => "fr",
            Locale::Spanish => "es",
            Locale::Italian => "it",
            Locale::Dutch => "nl",
        }
    }

    /// The locale of a language tag (`de`, `de-DE`, `fr_CA`), by its language.
    pub fn from_code(tag: &str) -> Option<Locale> {
        let lang = tag.split(['-', '_']).next()?.to_ascii_lowercase();
        Locale::ALL.into_iter().find(|l| l.code() == lang)
    }

    /// Whether the language writes compounds as one word. A query word then also matches
    /// the compounds it ends (`stuhl` finds `Bürostuhl`: the head of a compound is its last
    /// part), and a query compound the index lacks is split into words it holds, across a
    /// linking `s`, `e`, `n` or `en` (`Arbeitszimmer` → `Arbeit` `Zimmer`).
    pub fn compounds(self) -> bool {
        matches!(self, Locale::German | Locale::Dutch)
    }

    pub(crate) fn language(self) -> tantivy::tokenizer::Language {
        use tantivy::tokenizer::Language;
        match self {
            Locale::English => Language::English,
            Locale::German => Language::German,
            Locale::French => Language::French,
            Locale::Spanish => Language::Spanish,
            Locale::Italian => Language::Italian,
            Locale::Dutch => Language::Dutch,
        }
    }
}

/// Everything that makes one tenant's index and ranking its own.
#[derive(Clone)]
pub struct TenantConfig {
    /// Currencies whose prices are indexed; a query in another currency is refused.
    pub currencies: Vec<Currency>,
    /// The language of the index's text (English by default): stemmer, stop words, compounds.
    /// An index on disk keeps the locale it was built with.
    pub locale: Locale,
    /// Stemming in the locale's language (`chairs` finds `chair`). Off for SKU-heavy catalogs.
    pub stemming: bool,
    /// Drop the locale's stop words (`for`, `and`, `with`; `für`, `und`) from queries, unless a
    /// query has nothing else. Products still index them.
    pub stop_words: bool,
    /// Query-time synonyms.
    pub synonyms: Synonyms,
    /// Pins and hides per query.
    pub merch: MerchRules,
    /// Business-signal weights and their cap.
    pub business: BusinessWeights,
    /// An optional learned re-ranker applied after the business blend.
    pub reranker: Option<Arc<dyn Reranker>>,
    /// The embedder that gives each product (at commit) and each semantic query a vector:
    /// with one, [`crate::Semantic`] requests and [`crate::SearchIndex::similar`] work; without,
    /// they are refused. Vectors are stored with their documents and survive a reopen; an
    /// index opened with another model (or with products indexed before it had one) embeds
    /// those products again as it opens.
    pub embedder: Option<Arc<dyn Embedder>>,
    /// Least cosine similarity a product found by its vector must have to the query (or, for
    /// [`crate::SearchIndex::similar`], to the product): nearest is not near enough when it
    /// is unrelated. 0 by default (anything pointing the query's way); a language model
    /// such as all-MiniLM-L6-v2 puts unrelated texts at 0.0–0.2 and paraphrases above 0.5.
    pub min_similarity: f32,
    /// When the vectors get an approximate graph ([`AnnConfig`]; by default from 20,000
    /// products); `None` keeps every vector search an exact scan.
    pub ann: Option<AnnConfig>,
    /// A query word found (as typed) in at least this many products' titles and keywords is
    /// taken as typed correctly: it matches exactly only. Rarer words, and words the catalog
    /// lacks, also match through typos and, for the last word, as a prefix. Common words then
    /// skip the costly typo expansion, which for them would mostly add noise (`chair` would
    /// also find `chain`). 0 turns typos and prefixes off; `u64::MAX` applies them always.
    pub loose_match_below: u64,
    /// Threads one query may use, searching segments in parallel (1: the calling thread only).
    /// More lowers the latency of queries matching much of a large catalog; it does not raise
    /// the throughput of a machine already busy with concurrent queries.
    pub query_threads: usize,
    /// Indexing threads (1 or 2 on a small machine; each holds its own arena).
    pub writer_threads: usize,
    /// Total indexing memory in bytes, split across threads (at least 15 MB per thread).
    pub writer_memory_bytes: usize,
}

impl fmt::Debug for TenantConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantConfig")
            .field("currencies", &self.currencies)
            .field("locale", &self.locale)
            .field("stemming", &self.stemming)
            .field("stop_words", &self.stop_words)
            .field("synonyms", &self.synonyms.len())
            .field("merch_rules", &self.merch.rules.len())
            .field("business", &self.business)
            .field("reranker", &self.reranker.is_some())
            .field(
                "embedder",
                &self.embedder.as_ref().map(|e| e.model().to_owned()),
            )
            .field("min_similarity", &self.min_similarity)
            .field("ann", &self.ann)
            .field("loose_match_below", &self.loose_match_below)
            .field("query_threads", &self.query_threads)
            .field("writer_threads", &self.writer_threads)
            .field("writer_memory_bytes", &self.writer_memory_bytes)
            .finish()
    }
}

impl TenantConfig {
    /// A config for an index priced in `currencies`, with stemming and stop words on, no
    /// synonyms or rules,
    /// default business weights, no learned re-ranker, typos and prefixes for words found in
    /// fewer than 20 products, one thread per query and a one-thread 64 MB writer.
    pub fn new(currencies: &[Currency]) -> TenantConfig {
        TenantConfig {
            currencies: currencies.to_vec(),
            locale: Locale::English,
            stemming: true,
            stop_words: true,
            synonyms: Synonyms::default(),
            merch: MerchRules::default(),
            business: BusinessWeights::default(),
            reranker: None,
            embedder: None,
            min_similarity: 0.0,
            ann: Some(AnnConfig::default()),
            loose_match_below: 20,
            query_threads: 1,
            writer_threads: 1,
            writer_memory_bytes: 64_000_000,
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.currencies.is_empty() {
            return Err(Error::invalid("config.currencies", "at least one"));
        }
        if self.query_threads == 0 || self.query_threads > 64 {
            return Err(Error::invalid("config.query_threads", "1 to 64"));
        }
        if self.writer_threads == 0 || self.writer_threads > 8 {
            return Err(Error::invalid("config.writer_threads", "1 to 8"));
        }
        if self.writer_memory_bytes < self.writer_threads * 15_000_000 {
            return Err(Error::invalid(
                "config.writer_memory_bytes",
                "at least 15 MB per thread",
            ));
        }
        if !(-1.0..1.0).contains(&self.min_similarity) {
            return Err(Error::invalid("config.min_similarity", "-1 to below 1"));
        }
        self.business.validate()
    }
}
