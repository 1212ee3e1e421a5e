//! A tenant's index: [`SearchIndex`], its lifecycle (opening a RAM or directory index,
//! resuming from the offset in the last commit, waiting for merges on drop) and point reads.
//!
//! The writer lives in `writer`, the query path in `search` (facet counts in `facets`).

mod facets;
mod search;
mod writer;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use commerce_core::{Currency, ProductId, ProductProjection};
use tantivy::collector::DocSetCollector;
use tantivy::columnar::Column;
use tantivy::indexer::LogMergePolicy;
use tantivy::query::TermQuery;
use tantivy::schema::{IndexRecordOption, Value};
use tantivy::tokenizer::TextAnalyzer;
use tantivy::{
    DocAddress, Index, IndexReader, IndexSettings, IndexWriter, ReloadPolicy, Searcher,
    TantivyDocument, Term,
};

pub use writer::IndexWriterGuard;

use crate::config::{Locale, TenantConfig, TenantId};
use crate::query::{self, AnalyzedSynonyms};
use crate::schema::{self, Fields, RatingState, TEXT_ANALYZER, col};
use crate::semantic::VectorIndex;
use crate::vocab::Vocab;
use crate::{Error, Result, lock};

/// Where an index lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// In memory: gone with the process; rebuilt from the catalog (or the change log) on start.
    Ram,
    /// In a directory: reopened where it was, resuming from its committed offset.
    Dir(PathBuf),
}

/// What the index holds of a product, as the pipeline and reconciliation read it.
#[derive(Debug, Clone)]
pub(crate) enum Indexed {
    /// Searchable, with the `seq` of the rating event that set its rating (0: none did).
    Live {
        projection: Box<ProductProjection>,
        rating_seq: u64,
    },
    /// Retired at `version`: a tombstone keeping the rating it had.
    Retired { version: u64, rating: RatingState },
    /// Known only by its rating: a rating event came before the product's first upsert.
    Awaiting(RatingState),
}

impl Indexed {
    /// The catalog version held, `None` for a product not yet upserted.
    pub(crate) fn version(&self) -> Option<u64> {
        match self {
            Indexed::Live { projection, .. } => Some(projection.version),
            Indexed::Retired { version, .. } => Some(*version),
            Indexed::Awaiting(_) => None,
        }
    }

    /// The rating held.
    pub(crate) fn rating(&self) -> RatingState {
        match self {
            Indexed::Live {
                projection,
                rating_seq,
            } => RatingState {
                rating: projection.signals.rating,
                review_count: projection.signals.review_count,
                seq: *rating_seq,
            },
            Indexed::Retired { rating, .. } | Indexed::Awaiting(rating) => *rating,
        }
    }
}

/// The commit payload: where the change log stands for this index. `partitions` is used by
/// an index fed from a partitioned log (a broker topic), one offset per partition; older
/// payloads have no such field.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Payload {
    pub(crate) next_offset: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) partitions: BTreeMap<u32, u64>,
    /// The text analysis the documents were indexed with ([`crate::ANALYSIS_VERSION`]; 0 for
    /// indexes from before it was recorded).
    #[serde(default)]
    pub(crate) analysis: u32,
    /// The locale the documents were analyzed in (its code; empty before it was recorded, when
    /// every index was English).
    #[serde(default)]
    pub(crate) locale: String,
    /// The model the stored vectors come from ([`crate::Embedder::model`]); empty when the
    /// index has stored none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) embedding_model: String,
}

/// One tenant's product index.
///
/// ```
/// use commerce_core::{CategoryPath, Currency, Money, PriceTable, ProductId, ProductProjection,
///     ProductSignals, ProductStatus, Sku};
/// use search::{SearchIndex, SearchRequest, Storage, TenantConfig, TenantId};
///
/// let index = SearchIndex::create(TenantId::new("shop-1")?, TenantConfig::new(&[Currency::EUR]), Storage::Ram)?;
/// let product = ProductProjection {
///     sku: Sku::new("MUG-1").unwrap(),
///     product_id: ProductId::new("p-1").unwrap(),
///     title: "Blue enamel mug".into(),
///     description: "Holds 350 ml of coffee.".into(),
///     brand: Some("Acme".into()),
///     category: CategoryPath::parse("Kitchen/Mugs").unwrap(),
///     attributes: Default::default(),
///     prices: PriceTable::single(Money::from_minor(1200, Currency::EUR)),
///     primary_image: None,
///     status: ProductStatus::Active,
///     version: 1,
///     signals: ProductSignals::default(),
///     in_stock: Some(true),
/// };
/// let mut writer = index.writer();
/// writer.upsert(&product)?;
/// writer.commit(None)?;
///
/// let results = index.search(&SearchRequest::new("enamel mugs", Currency::EUR))?;
/// assert_eq!(results.hits[0].sku.as_str(), "MUG-1");
/// assert_eq!(results.hits[0].price.unwrap().to_string(), "12.00 EUR");
/// // A typo still finds it.
/// assert_eq!(index.search(&SearchRequest::new("enamle", Currency::EUR))?.total, 1);
/// # Ok::<(), search::Error>(())
/// ```
pub struct SearchIndex {
    tenant: TenantId,
    config: TenantConfig,
    fields: Fields,
    reader: IndexReader,
    /// `None` only while the index is being dropped.
    writer: Mutex<Option<IndexWriter>>,
    analyzer: TextAnalyzer,
    plain: TextAnalyzer,
    query_analyzer: TextAnalyzer,
    query_plain: TextAnalyzer,
    synonyms: AnalyzedSynonyms,
    position: Mutex<Payload>,
    /// Where the log was read up to beyond the committed offset, through events that held
    /// nothing for this index (not durable: a restart reads them again, harmlessly).
    read_through: std::sync::atomic::AtomicU64,
    vocab: Mutex<Option<Arc<Vocab>>>,
    /// The products' vectors, when the config has an embedder: as of the last commit.
    vectors: Option<RwLock<Vectors>>,
}

/// The products' vectors and, for each product embedded, a hash of the text its vector was
/// made from: an upsert whose text is unchanged (a price, stock or rating change: most of a
/// catalog's churn) keeps its vector instead of running the model again.
#[derive(Debug)]
pub(crate) struct Vectors {
    pub(crate) index: VectorIndex,
    pub(crate) texts: HashMap<ProductId, u64>,
}

impl std::ops::Deref for Vectors {
    type Target = VectorIndex;
    fn deref(&self) -> &VectorIndex {
        &self.index
    }
}

impl Vectors {
    /// Forgets `id`.
    pub(crate) fn forget(&mut self, id: &ProductId) {
        self.index.remove(id);
        self.texts.remove(id);
    }

    /// Holds each product's vector (`None`: its text has no direction) with the hash of the
    /// text it was made from. The vectors were checked before they get here; one the index
    /// refuses all the same is not held.
    pub(crate) fn hold(&mut self, batch: Vec<Embedded>) {
        let mut vectors: Vec<(ProductId, &[f32])> = Vec::with_capacity(batch.len());
        for (id, hash, v) in &batch {
            self.texts.insert(id.clone(), *hash);
            match v {
                Some(v) => vectors.push((id.clone(), v)),
                None => {
                    self.index.remove(id);
                }
            }
        }
        if self.index.upsert_many(vectors).is_err() {
            for (id, _, v) in &batch {
                if let Some(v) = v
                    && self.index.upsert(id.clone(), v).is_err()
                {
                    self.index.remove(id);
                }
            }
        }
    }
    /// The vector `id` keeps if its text still hashes to `text`: `Some(None)` for a text with
    /// no direction, `None` when it must be embedded.
    pub(crate) fn reusable(&self, id: &ProductId, text: u64) -> Option<Option<Vec<f32>>> {
        (self.texts.get(id) == Some(&text)).then(|| self.index.get(id).map(<[f32]>::to_vec))
    }
}

/// A product's vector as committed: its id, its text's hash ([`text_hash`]) and the vector
/// (`None`: the text has no direction).
pub(crate) type Embedded = (ProductId, u64, Option<Vec<f32>>);

/// A hash of the text a vector is made from (in this process only: it is never stored).
pub(crate) fn text_hash(text: &str) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault};
    BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(text)
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchIndex")
            .field("tenant", &self.tenant)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Bytes of stored documents compressed together. A hit decompresses its whole block, and a
/// page's hits are scattered over the catalog: tantivy's 16 KiB default made reading a page of
/// 24 hits a quarter of a query's time on the 1 M-product benchmark.
const DOCSTORE_BLOCK_BYTES: usize = 4_096;

fn index_settings() -> IndexSettings {
    IndexSettings {
        docstore_blocksize: DOCSTORE_BLOCK_BYTES,
        ..IndexSettings::default()
    }
}

impl SearchIndex {
    /// Creates (or, for a directory that holds one, reopens) a tenant's index.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad config or a directory index whose currencies differ from
    /// the config's; [`Error::Index`] when the directory cannot be opened or another writer
    /// holds it.
    pub fn create(tenant: TenantId, config: TenantConfig, storage: Storage) -> Result<SearchIndex> {
        config.validate()?;
        let schema = schema::build_schema(&config.currencies);
        let index = match &storage {
            Storage::Ram => Index::builder()
                .schema(schema)
                .settings(index_settings())
                .create_in_ram()?,
            Storage::Dir(path) => {
                std::fs::create_dir_all(path)?;
                if path.join("meta.json").exists() {
                    let index = Index::open_in_dir(path)?;
                    let on_disk: Vec<Currency> = Fields::resolve(&index.schema())?
                        .prices
                        .keys()
                        .copied()
                        .collect();
                    let mut wanted = config.currencies.clone();
                    wanted.sort();
                    wanted.dedup();
                    if on_disk != wanted {
                        return Err(Error::invalid(
                            "config.currencies",
                            format!("the index at {} carries {on_disk:?}", path.display()),
                        ));
                    }
                    index
                } else {
                    Index::builder()
                        .schema(schema)
                        .settings(index_settings())
                        .create_in_dir(path)?
                }
            }
        };
        let mut index = index;
        if config.query_threads > 1 {
            index.set_multithread_executor(config.query_threads)?;
        }
        let analyzer = schema::analyzer(config.locale, config.stemming);
        index.tokenizers().register(TEXT_ANALYZER, analyzer.clone());
        index.tokenizers().register(
            schema::PLAIN_ANALYZER,
            schema::analyzer(config.locale, false),
        );
        let fields = Fields::resolve(&index.schema())?;
        let writer = open_writer(&index, &config)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let mut position = match index.load_metas()?.payload {
            None => Payload::default(),
            Some(text) => {
                serde_json::from_str::<Payload>(&text).map_err(|_| Error::Payload(text.clone()))?
            }
        };
        let indexed_locale = match position.locale.as_str() {
            "" => Locale::English.code(),
            code => code,
        };
        let has_docs = reader.searcher().num_docs() > 0;
        if has_docs && indexed_locale != config.locale.code() {
            return Err(Error::invalid(
                "config.locale",
                format!(
                    "the index holds text analyzed as {indexed_locale}, not {}",
                    config.locale.code()
                ),
            ));
        }
        if position.analysis != crate::ANALYSIS_VERSION {
            if has_docs {
                return Err(Error::AnalysisChanged {
                    found: position.analysis,
                    expected: crate::ANALYSIS_VERSION,
                });
            }
            position.analysis = crate::ANALYSIS_VERSION;
        }
        config.locale.code().clone_into(&mut position.locale);
        let query_analyzer =
            schema::query_analyzer(config.locale, config.stemming, config.stop_words);
        let query_plain = schema::query_analyzer(config.locale, false, config.stop_words);
        let plain = schema::analyzer(config.locale, false);
        let mut syn_analyzer = analyzer.clone();
        let mut synonyms = AnalyzedSynonyms::new();
        for (word, alts) in &config.synonyms.map {
            let key = query::analyze(&mut syn_analyzer, word);
            let [key] = key.as_slice() else { continue };
            let alts: Vec<Vec<String>> = alts
                .iter()
                .map(|a| query::analyze(&mut syn_analyzer, a))
                .filter(|a| !a.is_empty() && a.as_slice() != std::slice::from_ref(key))
                .collect();
            synonyms.entry(key.clone()).or_default().extend(alts);
        }
        let vectors = match &config.embedder {
            Some(e) => Some(RwLock::new(Vectors {
                index: match config.ann {
                    Some(ann) => VectorIndex::with_ann(e.dims(), ann)?,
                    None => VectorIndex::new(e.dims())?,
                },
                texts: HashMap::new(),
            })),
            None => None,
        };
        let index = SearchIndex {
            tenant,
            config,
            fields,
            reader,
            writer: Mutex::new(Some(writer)),
            analyzer,
            plain,
            query_analyzer,
            query_plain,
            synonyms,
            position: Mutex::new(position),
            read_through: std::sync::atomic::AtomicU64::new(0),
            vocab: Mutex::new(None),
            vectors,
        };
        index.load_vectors()?;
        Ok(index)
    }

    /// Loads the stored vectors of the live products into memory, and embeds again (in one
    /// commit) the products stored without a vector of the embedder's model: indexed before
    /// the index had an embedder, or by another model.
    fn load_vectors(&self) -> Result<()> {
        let (Some(embedder), Some(vectors)) = (&self.config.embedder, &self.vectors) else {
            return Ok(());
        };
        if self.fields.embedding.is_none() {
            return Err(Error::invalid(
                "config.embedder",
                "this index was created before vectors were stored; rebuild it to search by meaning",
            ));
        }
        let same_model = self.position().embedding_model == embedder.model();
        let searcher = self.reader.searcher();
        let mut stale: Vec<(ProductProjection, u64)> = Vec::new();
        let mut loaded: Vec<Embedded> = Vec::new();
        {
            let mut held = vectors
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for (ord, seg) in searcher.segment_readers().iter().enumerate() {
                let status = seg.fast_fields().str(col::STATUS)?;
                let active = match &status {
                    Some(c) => c.dictionary().term_ord(schema::STATUS_ACTIVE.as_bytes())?,
                    None => None,
                };
                let rating_seq = seg.fast_fields().u64(col::RATING_SEQ)?;
                for doc in seg.doc_ids_alive() {
                    if active.is_none()
                        || status.as_ref().and_then(|c| c.ords().first(doc)) != active
                    {
                        continue;
                    }
                    let addr = DocAddress::new(u32::try_from(ord).unwrap_or(u32::MAX), doc);
                    let stored: TantivyDocument = searcher.doc(addr)?;
                    let Some(p) = self.fields.stored_projection(&stored)? else {
                        continue;
                    };
                    let vector = self
                        .fields
                        .embedding
                        .and_then(|f| stored.get_first(f))
                        .and_then(|v| v.as_bytes())
                        .and_then(schema::vector_from_bytes);
                    let text = text_hash(&schema::embedding_text(&p));
                    match vector {
                        // Embedded, and its text had no direction: it keeps no vector.
                        Some(v) if same_model && v.is_empty() => {
                            loaded.push((p.product_id, text, None));
                        }
                        Some(v) if same_model && v.len() == embedder.dims() => {
                            loaded.push((p.product_id, text, Some(v)));
                        }
                        _ => stale.push((p, rating_seq.first(doc).unwrap_or(0))),
                    }
                }
            }
            held.hold(loaded);
        }
        if stale.is_empty() {
            return Ok(());
        }
        let mut writer = self.writer();
        for (p, seq) in &stale {
            writer.upsert_rated(p, *seq)?;
        }
        writer.commit(None)
    }

    /// The vectors, read-locked; `None` without an embedder.
    pub(crate) fn vectors(&self) -> Option<std::sync::RwLockReadGuard<'_, Vectors>> {
        self.vectors
            .as_ref()
            .map(|v| v.read().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// The vectors, write-locked; `None` without an embedder.
    pub(crate) fn vectors_mut(&self) -> Option<std::sync::RwLockWriteGuard<'_, Vectors>> {
        self.vectors
            .as_ref()
            .map(|v| v.write().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// The tenant.
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// The tenant's config.
    pub fn config(&self) -> &TenantConfig {
        &self.config
    }

    /// Products searchable now (retired products' tombstones excluded).
    ///
    /// # Errors
    /// [`Error::Index`] on a read failure.
    pub fn num_docs(&self) -> Result<u64> {
        let searcher = self.reader.searcher();
        let n = searcher.search(&self.active_query(), &tantivy::collector::Count)?;
        Ok(n as u64)
    }

    /// Segments searched now: an operational gauge (each commit adds segments, merges in the
    /// background fold them; queries slow down as they multiply).
    pub fn segment_count(&self) -> usize {
        self.reader.searcher().segment_readers().len()
    }

    /// Every active product: what browsing starts from.
    fn active_query(&self) -> TermQuery {
        TermQuery::new(
            Term::from_field_text(self.fields.status, schema::STATUS_ACTIVE),
            IndexRecordOption::Basic,
        )
    }

    /// The next change-log offset to read: every change before it is in the index, or held
    /// nothing for it. At least [`SearchIndex::committed_offset`]: the indexer does not commit
    /// a batch that changed nothing (a shop's log is mostly orders and stock) until enough of
    /// them have passed, so a restart may read those again.
    pub fn next_offset(&self) -> u64 {
        let committed = lock(&self.position).next_offset;
        committed.max(self.read_through.load(std::sync::atomic::Ordering::Acquire))
    }

    /// The change-log offset the index has committed up to (durably, on a directory).
    pub fn committed_offset(&self) -> u64 {
        lock(&self.position).next_offset
    }

    /// Notes that the log was read up to `offset` and held nothing for the index since the
    /// committed offset.
    pub(crate) fn read_through(&self, offset: u64) {
        let _ = self
            .read_through
            .fetch_max(offset, std::sync::atomic::Ordering::AcqRel);
    }

    /// For an index fed from a partitioned log ([`crate::Indexer::run_once_partitions`]): the
    /// committed offset of each partition, the next change to read there (a partition not
    /// listed starts at 0).
    pub fn partition_offsets(&self) -> BTreeMap<u32, u64> {
        lock(&self.position).partitions.clone()
    }

    pub(crate) fn position(&self) -> Payload {
        lock(&self.position).clone()
    }

    /// The words `text` becomes after analysis (lowercased, accents folded, stemmed if on).
    pub fn analyze(&self, text: &str) -> Vec<String> {
        query::analyze(&mut self.analyzer.clone(), text)
    }

    /// The indexed copy of a product, as last committed.
    ///
    /// # Errors
    /// [`Error::Index`] on a read failure.
    pub fn projection(&self, id: &ProductId) -> Result<Option<ProductProjection>> {
        let searcher = self.reader.searcher();
        let Some(addr) = self.address_of(&searcher, self.fields.product_id, id.as_str())? else {
            return Ok(None);
        };
        let doc: TantivyDocument = searcher.doc(addr)?;
        self.fields.stored_projection(&doc)
    }

    /// What the index holds of a product, as last committed: a live copy, a tombstone or a
    /// rating awaiting its product, each with its rating and the rating's `seq`.
    pub(crate) fn indexed(&self, id: &ProductId) -> Result<Option<Indexed>> {
        let searcher = self.reader.searcher();
        let Some(addr) = self.address_of(&searcher, self.fields.product_id, id.as_str())? else {
            return Ok(None);
        };
        let fast = searcher.segment_reader(addr.segment_ord).fast_fields();
        let value = |name: &str| -> Result<Option<u64>> { Ok(fast.u64(name)?.first(addr.doc_id)) };
        let rating_seq = value(col::RATING_SEQ)?.unwrap_or(0);
        let doc: TantivyDocument = searcher.doc(addr)?;
        if let Some(projection) = self.fields.stored_projection(&doc)? {
            return Ok(Some(Indexed::Live {
                projection: Box::new(projection),
                rating_seq,
            }));
        }
        let centi = value(col::RATING)?.and_then(|c| i64::try_from(c).ok());
        let rating = RatingState {
            rating: centi.map(|c| rust_decimal::Decimal::new(c, 2)),
            review_count: value(col::REVIEWS)?
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(0),
            seq: rating_seq,
        };
        Ok(Some(match value(col::VERSION)? {
            Some(version) => Indexed::Retired { version, rating },
            None => Indexed::Awaiting(rating),
        }))
    }

    /// The indexed version of a product, as last committed, including the version that
    /// retired it (a retired product leaves a tombstone that matches no query).
    ///
    /// # Errors
    /// [`Error::Index`] on a read failure.
    pub fn indexed_version(&self, id: &ProductId) -> Result<Option<u64>> {
        let searcher = self.reader.searcher();
        let Some(addr) = self.address_of(&searcher, self.fields.product_id, id.as_str())? else {
            return Ok(None);
        };
        let column: Column<u64> = searcher
            .segment_reader(addr.segment_ord)
            .fast_fields()
            .u64(col::VERSION)?;
        Ok(column.first(addr.doc_id))
    }

    /// Every indexed active product id with its catalog version (for reconciliation).
    ///
    /// # Errors
    /// [`Error::Index`] on a read failure.
    pub fn indexed_versions(&self) -> Result<BTreeMap<ProductId, u64>> {
        let searcher = self.reader.searcher();
        let mut out = BTreeMap::new();
        let mut live: Vec<(u64, u64)> = Vec::new();
        for seg in searcher.segment_readers() {
            let Some(ids) = seg.fast_fields().str(col::PRODUCT_ID)? else {
                continue;
            };
            let versions = seg.fast_fields().u64(col::VERSION)?;
            let status = seg.fast_fields().str(col::STATUS)?;
            let retired = match &status {
                Some(c) => c.dictionary().term_ord(schema::STATUS_RETIRED.as_bytes())?,
                None => None,
            };
            for doc in seg.doc_ids_alive() {
                if retired.is_some() && status.as_ref().and_then(|c| c.ords().first(doc)) == retired
                {
                    continue;
                }
                if let (Some(ord), Some(v)) = (ids.ords().first(doc), versions.first(doc)) {
                    live.push((ord, v));
                }
            }
            // Resolve the ids in one ordered pass over the segment's dictionary.
            live.sort_unstable();
            let ords: Vec<u64> = live.iter().map(|(o, _)| *o).collect();
            let mut versions_in_order = live.iter().map(|(_, v)| *v);
            let mut bad = None;
            ids.dictionary().sorted_ords_to_term_cb(&ords, |bytes| {
                let v = versions_in_order.next().unwrap_or(0);
                match std::str::from_utf8(bytes)
                    .ok()
                    .and_then(|t| ProductId::new(t).ok())
                {
                    Some(id) => {
                        out.insert(id, v);
                    }
                    None => bad = Some(String::from_utf8_lossy(bytes).into_owned()),
                }
            })?;
            live.clear();
            if let Some(bad) = bad {
                return Err(Error::Payload(format!("indexed product id {bad:?}")));
            }
        }
        Ok(out)
    }

    /// The first document whose `field` holds `value`.
    fn address_of(
        &self,
        searcher: &Searcher,
        field: tantivy::schema::Field,
        value: &str,
    ) -> Result<Option<DocAddress>> {
        let q = TermQuery::new(
            Term::from_field_text(field, value),
            IndexRecordOption::Basic,
        );
        Ok(searcher.search(&q, &DocSetCollector)?.into_iter().min())
    }

    /// The facet vocabularies of `searcher`'s generation, built on first use.
    fn vocab(&self, searcher: &Searcher) -> Result<Arc<Vocab>> {
        let generation = searcher.generation().generation_id();
        if let Some(v) = lock(&self.vocab).as_ref()
            && v.generation == generation
        {
            return Ok(Arc::clone(v));
        }
        let mut v = Vocab::build(searcher)?;
        let mut analyzer = self.query_analyzer.clone();
        for leaf in &v.category.values {
            let name = leaf.rsplit('/').next().unwrap_or(leaf);
            if let Some(head) = crate::query::analyze(&mut analyzer, name).pop() {
                v.type_words.insert(head);
            }
        }
        let v = Arc::new(v);
        *lock(&self.vocab) = Some(Arc::clone(&v));
        Ok(v)
    }
}

/// The index's tantivy writer, with this crate's merge policy.
fn open_writer(index: &Index, config: &TenantConfig) -> tantivy::Result<IndexWriter> {
    let writer =
        index.writer_with_num_threads(config.writer_threads, config.writer_memory_bytes)?;
    writer.set_merge_policy(merge_policy());
    Ok(writer)
}

/// Price churn is delete + add: segments are merged once 30 % of their documents are dead
/// (tantivy's default waits for 100 %).
fn merge_policy() -> Box<LogMergePolicy> {
    let mut policy = LogMergePolicy::default();
    policy.set_del_docs_ratio_before_merge(0.3);
    Box::new(policy)
}

impl Drop for SearchIndex {
    /// Waits for background merges and file clean-up, so that the directory can be reopened
    /// at once (a writer's late clean-up could otherwise delete a successor's files).
    fn drop(&mut self) {
        let writer = self
            .writer
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(w) = writer {
            let _ = w.wait_merging_threads();
        }
    }
}
