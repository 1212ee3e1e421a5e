//! A tenant's index: its schema, writer, reader and the query path.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use commerce_core::{Currency, Money, ProductId, ProductProjection, ProductStatus, Sku};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use tantivy::collector::DocSetCollector;
use tantivy::columnar::Column;
use tantivy::indexer::LogMergePolicy;
use tantivy::query::{Query, TermQuery};
use tantivy::schema::{IndexRecordOption, Value};
use tantivy::snippet::SnippetGenerator;
use tantivy::tokenizer::TextAnalyzer;
use tantivy::{
    DocAddress, Index, IndexReader, IndexWriter, ReloadPolicy, Searcher, TantivyDocument, Term,
};

use crate::collect::{Candidate, Fruit, Plan, PlanCollector};
use crate::config::{TenantConfig, TenantId};
use crate::query::{self, AnalyzedSynonyms, Mode};
use crate::rank::{Features, Signals};
use crate::request::{
    FacetCount, Facets, Hit, Matching, Placement, PriceBucket, RatingBucket, SearchRequest,
    SearchResults,
};
use crate::schema::{self, ATTR_SEP, Fields, STOCK_IN, TEXT_ANALYZER, col};
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

/// The commit payload: where the change log stands for this index.
#[derive(serde::Serialize, serde::Deserialize)]
struct Payload {
    next_offset: u64,
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
    next_offset: Mutex<u64>,
    vocab: Mutex<Option<Arc<Vocab>>>,
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchIndex")
            .field("tenant", &self.tenant)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// `m` in minor units, rounded up (so `price >= m` and `price < m` hold in minor units too);
/// saturates past `u64`.
fn ceil_minor(m: &Money) -> u64 {
    let scale = Decimal::from(10u64.pow(u32::from(m.currency().exponent())));
    m.amount()
        .checked_mul(scale)
        .map(|v| v.ceil())
        .and_then(|v| v.to_u64())
        .unwrap_or(if m.is_negative() { 0 } else { u64::MAX })
}

fn money(minor: u64, currency: Currency) -> Option<Money> {
    i64::try_from(minor)
        .ok()
        .map(|m| Money::from_minor(m, currency))
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
            Storage::Ram => Index::create_in_ram(schema),
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
                    Index::create_in_dir(path, schema)?
                }
            }
        };
        let mut index = index;
        if config.query_threads > 1 {
            index.set_multithread_executor(config.query_threads)?;
        }
        let analyzer = schema::analyzer(config.stemming);
        index.tokenizers().register(TEXT_ANALYZER, analyzer.clone());
        index
            .tokenizers()
            .register(schema::PLAIN_ANALYZER, schema::analyzer(false));
        let fields = Fields::resolve(&index.schema())?;
        let writer: IndexWriter =
            index.writer_with_num_threads(config.writer_threads, config.writer_memory_bytes)?;
        writer.set_merge_policy(merge_policy());
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let next_offset = match index.load_metas()?.payload {
            None => 0,
            Some(text) => {
                serde_json::from_str::<Payload>(&text)
                    .map_err(|_| Error::Payload(text.clone()))?
                    .next_offset
            }
        };
        let query_analyzer = schema::query_analyzer(config.stemming, config.stop_words);
        let query_plain = schema::query_analyzer(false, config.stop_words);
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
        Ok(SearchIndex {
            tenant,
            config,
            fields,
            reader,
            writer: Mutex::new(Some(writer)),
            analyzer,
            plain: schema::analyzer(false),
            query_analyzer,
            query_plain,
            synonyms,
            next_offset: Mutex::new(next_offset),
            vocab: Mutex::new(None),
        })
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

    /// The change-log offset the index has committed up to: the next change to apply.
    pub fn next_offset(&self) -> u64 {
        *lock(&self.next_offset)
    }

    /// The words `text` becomes after analysis (lowercased, accents folded, stemmed if on).
    pub fn analyze(&self, text: &str) -> Vec<String> {
        query::analyze(&mut self.analyzer.clone(), text)
    }

    /// The index's only writer. Changes are invisible until [`IndexWriterGuard::commit`];
    /// a guard dropped without committing rolls its changes back.
    pub fn writer(&self) -> IndexWriterGuard<'_> {
        IndexWriterGuard {
            index: self,
            writer: lock(&self.writer),
            staged: HashSet::new(),
            committed_empty: self.reader.searcher().segment_readers().is_empty(),
            committed: false,
        }
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
        let v = Arc::new(Vocab::build(searcher)?);
        *lock(&self.vocab) = Some(Arc::clone(&v));
        Ok(v)
    }

    fn plan(&self, vocab: Arc<Vocab>, req: &SearchRequest, keep: usize, browse: bool) -> Plan {
        let f = &req.filters;
        let price = f.price.as_ref().map(|r| {
            (
                r.min.as_ref().map_or(0, ceil_minor),
                r.max.as_ref().map_or(u64::MAX, ceil_minor),
            )
        });
        let brand_sel = (!f.brands.is_empty()).then(|| {
            let mut sel = vec![false; vocab.brand.values.len()];
            for b in &f.brands {
                if let Some(g) = vocab.brand.id(b) {
                    sel[g] = true;
                }
            }
            sel
        });
        let category_sel = f
            .category
            .as_ref()
            .filter(|c| !c.segments().is_empty())
            .map(|c| {
                let within = vocab
                    .path_id(&c.to_string())
                    .and_then(|p| u32::try_from(p).ok());
                vocab
                    .ancestors
                    .iter()
                    .map(|a| within.is_some_and(|p| a.contains(&p)))
                    .collect()
            });
        let n_attrs = vocab.attrs.values.len();
        let mut attr_sel_key = vec![u8::MAX; n_attrs];
        let mut attr_sel_value = vec![false; n_attrs];
        let mut attr_counted = vec![false; n_attrs];
        let selected: Vec<(&String, &Vec<String>)> = f.attributes.iter().collect();
        for (g, kv) in vocab.attrs.values.iter().enumerate() {
            let Some((key, value)) = kv.split_once(ATTR_SEP) else {
                continue;
            };
            if let Some(k) = selected.iter().position(|(sel, _)| *sel == key) {
                attr_sel_key[g] = u8::try_from(k).unwrap_or(u8::MAX);
                attr_sel_value[g] = selected[k].1.iter().any(|v| v == value);
            }
            attr_counted[g] = req.facets.attributes.iter().any(|k| k == key);
        }
        Plan {
            brand_sel,
            category_sel,
            attr_sel_key,
            attr_sel_value,
            attr_counted,
            attr_keys_selected: u32::try_from(selected.len()).unwrap_or(u32::MAX),
            price,
            price_column: schema::price_column(req.currency),
            min_rating_centi: f.min_rating.map(schema::rating_centi),
            in_stock_only: f.in_stock_only,
            count_brand: req.facets.brand,
            count_category: req.facets.category,
            price_bounds: req
                .facets
                .price_buckets
                .as_ref()
                .map(|b| b.iter().map(ceil_minor).collect()),
            count_rating: req.facets.rating,
            keep,
            browse,
            no_facets: false,
            vocab,
        }
    }

    /// Runs a search.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a request out of bounds (see [`crate::RESULT_WINDOW_MAX`]),
    /// [`Error::CurrencyNotIndexed`] for a currency the index does not carry,
    /// [`Error::Index`] on a read failure.
    pub fn search(&self, req: &SearchRequest) -> Result<SearchResults> {
        req.validate()?;
        if !self.fields.prices.contains_key(&req.currency) {
            return Err(Error::CurrencyNotIndexed(req.currency.to_string()));
        }
        let searcher = self.reader.searcher();
        let mut words = query::words(
            &mut self.query_analyzer.clone(),
            &mut self.query_plain.clone(),
            &req.text,
        );
        if words.tokens.is_empty() {
            // Only stop words (`the who`): search them as they are.
            words = query::words(
                &mut self.analyzer.clone(),
                &mut self.plain.clone(),
                &req.text,
            );
        }
        let browse = words.tokens.is_empty();
        let rule = self.config.merch.get(&req.text);
        let extra = rule.map_or(0, |r| r.hides.len() + r.pins.len());
        let keep = (req.offset + req.limit + extra).max(self.config.business.rerank_depth);
        let vocab = self.vocab(&searcher)?;
        let plan = Arc::new(self.plan(Arc::clone(&vocab), req, keep, browse));

        let mut relaxed = false;
        let threshold = self.config.loose_match_below;
        let mut loose = Vec::with_capacity(words.tokens.len());
        for typed in &words.typed {
            let known = searcher.doc_freq(&Term::from_field_text(self.fields.loose, typed))?;
            loose.push(known < threshold);
        }
        let may_be_loose = |i: usize| loose.get(i).copied().unwrap_or(false);
        let sku_exists = searcher.doc_freq(&Term::from_field_text(
            self.fields.sku_key,
            &schema::sku_key(&req.text),
        ))? > 0;
        let mode = match req.matching {
            Matching::All => Mode::All,
            Matching::Any => Mode::Any,
        };
        let build = |w: &query::Words, mode: Mode| {
            query::build(
                &self.fields,
                &self.synonyms,
                &req.text,
                w,
                mode,
                &may_be_loose,
                sku_exists,
            )
        };
        let mut text_query = build(&words, mode);
        let mut fruit = self.collect(&searcher, text_query.as_deref(), &plan)?;
        if fruit.total == 0 && mode == Mode::All && words.tokens.len() > 1 {
            // Nothing has every word: drop words from the end until something matches.
            for keep_words in (1..words.tokens.len()).rev() {
                let shorter = words.first(keep_words);
                let q = build(&shorter, Mode::All);
                let f = self.collect(&searcher, q.as_deref(), &plan)?;
                if f.total > 0 {
                    relaxed = true;
                    fruit = f;
                    text_query = q;
                    break;
                }
            }
        }

        let mut ranked = self.rerank(&searcher, &fruit.top, browse)?;
        if let Some(rule) = rule {
            let mut hidden = HashSet::new();
            for sku in &rule.hides {
                hidden.extend(self.address_of(&searcher, self.fields.sku, sku.as_str())?);
            }
            ranked.retain(|r| !hidden.contains(&r.addr));
            let mut pins: Vec<&(Sku, usize)> = rule.pins.iter().collect();
            pins.sort_by_key(|(_, pos)| *pos);
            for (sku, pos) in pins {
                let Some(addr) = self.address_of(&searcher, self.fields.sku, sku.as_str())? else {
                    continue;
                };
                if hidden.contains(&addr)
                    || !self.passes_filters(&searcher, Arc::clone(&vocab), req, sku)?
                {
                    continue;
                }
                let found = ranked.iter().position(|r| r.addr == addr);
                let entry = match found {
                    Some(i) => ranked.remove(i),
                    None => Ranked {
                        addr,
                        relevance: 0.0,
                        placement: Placement::Pinned,
                        features: None,
                    },
                };
                let at = (*pos).min(ranked.len());
                ranked.insert(
                    at,
                    Ranked {
                        placement: Placement::Pinned,
                        ..entry
                    },
                );
            }
        }

        let page: Vec<&Ranked> = ranked.iter().skip(req.offset).take(req.limit).collect();
        let snippets = match (&text_query, req.highlight) {
            (Some(q), true) => {
                // Query words live in the combined `text` field; its generator highlights them
                // in any text run through the same analyzer.
                let mut title = SnippetGenerator::create(&searcher, q.as_ref(), self.fields.text)?;
                title.set_max_num_chars(commerce_core::limits::TITLE_CHARS_MAX);
                let mut desc = SnippetGenerator::create(&searcher, q.as_ref(), self.fields.text)?;
                desc.set_max_num_chars(200);
                Some((title, desc))
            }
            _ => None,
        };
        let mut hits = Vec::with_capacity(page.len());
        for r in page {
            hits.push(self.hit(&searcher, r, req.currency, snippets.as_ref())?);
        }
        Ok(SearchResults {
            hits,
            total: fruit.total,
            facets: self.facets(&vocab, req, &fruit),
            relaxed,
        })
    }

    fn collect(
        &self,
        searcher: &Searcher,
        q: Option<&dyn Query>,
        plan: &Arc<Plan>,
    ) -> Result<Fruit> {
        let collector = PlanCollector {
            plan: Arc::clone(plan),
        };
        let fruit = match q {
            Some(q) => searcher.search(q, &collector)?,
            None => searcher.search(&self.active_query(), &collector)?,
        };
        Ok(fruit)
    }

    /// Whether the product with `sku` passes every filter of `req`.
    fn passes_filters(
        &self,
        searcher: &Searcher,
        vocab: Arc<Vocab>,
        req: &SearchRequest,
        sku: &Sku,
    ) -> Result<bool> {
        let mut plan = self.plan(vocab, req, 1, true);
        plan.no_facets = true;
        let plan = Arc::new(plan);
        let q = TermQuery::new(
            Term::from_field_text(self.fields.sku, sku.as_str()),
            IndexRecordOption::Basic,
        );
        Ok(searcher.search(&q, &PlanCollector { plan })?.total > 0)
    }

    fn rerank(&self, searcher: &Searcher, top: &[Candidate], browse: bool) -> Result<Vec<Ranked>> {
        let weights = &self.config.business;
        let depth = weights.rerank_depth.min(top.len());
        let mut cols: HashMap<u32, SignalColumns> = HashMap::new();
        let mut head = Vec::with_capacity(depth);
        for (i, c) in top[..depth].iter().enumerate() {
            let (tier, relevance) = if browse {
                (0, 1.0)
            } else {
                query::split_score(c.key)
            };
            let columns = match cols.entry(c.segment) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(SignalColumns::open(searcher, c.segment)?)
                }
            };
            let signals = columns.signals(c.doc);
            let boost = weights.boost(&signals);
            let features = Features::new(f64::from(relevance), boost, &signals);
            let score = match &self.config.reranker {
                Some(model) => model.score(&features),
                #[allow(clippy::float_arithmetic)]
                None => f64::from(relevance) * (1.0 + boost),
            };
            head.push((tier, score, i, relevance, c, features));
        }
        head.sort_by(|a, b| {
            b.0.cmp(&a.0)
                .then_with(|| b.1.total_cmp(&a.1))
                .then_with(|| a.2.cmp(&b.2))
        });
        let mut out: Vec<Ranked> = head
            .into_iter()
            .map(|(_, _, _, relevance, c, features)| Ranked {
                addr: DocAddress::new(c.segment, c.doc),
                relevance: if browse { 0.0 } else { relevance },
                placement: Placement::Ranked,
                features: Some(features),
            })
            .collect();
        out.extend(top[depth..].iter().map(|c| Ranked {
            addr: DocAddress::new(c.segment, c.doc),
            relevance: if browse {
                0.0
            } else {
                query::split_score(c.key).1
            },
            placement: Placement::Ranked,
            features: None,
        }));
        Ok(out)
    }

    fn hit(
        &self,
        searcher: &Searcher,
        r: &Ranked,
        currency: Currency,
        snippets: Option<&(SnippetGenerator, SnippetGenerator)>,
    ) -> Result<Hit> {
        let doc: TantivyDocument = searcher.doc(r.addr)?;
        let text = |field| {
            doc.get_first(field)
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        };
        let corrupt = |what: &str| Error::Payload(format!("indexed document without {what}"));
        let product_id = text(self.fields.product_id).ok_or_else(|| corrupt("product id"))?;
        let sku = text(self.fields.sku).ok_or_else(|| corrupt("sku"))?;
        let title = text(self.fields.title).unwrap_or_default();
        let description = text(self.fields.description).unwrap_or_default();
        let seg = searcher.segment_reader(r.addr.segment_ord);
        let price = seg
            .fast_fields()
            .column_opt::<u64>(&schema::price_column(currency))?
            .and_then(|c| c.first(r.addr.doc_id))
            .and_then(|m| money(m, currency));
        let version = doc
            .get_first(self.fields.version)
            .and_then(|v| v.as_u64())
            .ok_or_else(|| corrupt("version"))?;
        let (title_snippet, description_snippet) = match snippets {
            Some((t, d)) => {
                let nonempty = |s: String| (!s.is_empty()).then_some(s);
                (
                    nonempty(t.snippet(&title).to_html()),
                    nonempty(d.snippet(&description).to_html()),
                )
            }
            None => (None, None),
        };
        Ok(Hit {
            product_id: ProductId::new(&product_id).map_err(|_| corrupt("valid product id"))?,
            sku: Sku::new(&sku).map_err(|_| corrupt("valid sku"))?,
            title,
            brand: text(self.fields.brand),
            price,
            catalog_version: version,
            relevance: r.relevance,
            placement: r.placement,
            title_snippet,
            description_snippet,
            features: r.features,
        })
    }

    fn facets(&self, vocab: &Vocab, req: &SearchRequest, fruit: &Fruit) -> Facets {
        let k = req.facets.top_k;
        // The k most frequent values (ties by value), naming only those.
        let top = |it: Vec<(&String, u64)>| {
            let mut v = it;
            top_k(&mut v, k);
            v.into_iter()
                .map(|(value, count)| FacetCount {
                    value: value.clone(),
                    count,
                })
                .collect::<Vec<_>>()
        };
        let nonzero = |counts: &[u64]| -> Vec<(usize, u64)> {
            counts
                .iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .map(|(g, n)| (g, *n))
                .collect()
        };
        let brand = top(nonzero(&fruit.brand)
            .into_iter()
            .filter_map(|(g, n)| Some((vocab.brand.values.get(g)?, n)))
            .collect());
        let mut path_counts = vec![0u64; vocab.paths.len()];
        for (leaf, n) in nonzero(&fruit.category) {
            for p in vocab.ancestors.get(leaf).into_iter().flatten() {
                if let Some(slot) = path_counts.get_mut(*p as usize) {
                    *slot += n;
                }
            }
        }
        let parent = req
            .filters
            .category
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        let category = top(nonzero(&path_counts)
            .into_iter()
            .filter_map(|(p, n)| {
                let path = vocab.paths.get(p)?;
                let child = if parent.is_empty() {
                    !path.contains('/')
                } else {
                    path.strip_prefix(&parent)
                        .and_then(|rest| rest.strip_prefix('/'))
                        .is_some_and(|rest| !rest.contains('/'))
                };
                child.then_some((path, n))
            })
            .collect());
        let mut attributes = BTreeMap::new();
        for key in &req.facets.attributes {
            let mut values: Vec<(&str, u64)> = nonzero(&fruit.attrs)
                .into_iter()
                .filter_map(|(g, n)| {
                    let (k2, v) = vocab.attrs.values.get(g)?.split_once(ATTR_SEP)?;
                    (k2 == key).then_some((v, n))
                })
                .collect();
            top_k(&mut values, k);
            let values = values
                .into_iter()
                .map(|(value, count)| FacetCount {
                    value: value.to_owned(),
                    count,
                })
                .collect();
            attributes.insert(key.clone(), values);
        }
        let mut price = Vec::new();
        if let Some(bounds) = &req.facets.price_buckets {
            for i in 0..=bounds.len() {
                price.push(PriceBucket {
                    min: i.checked_sub(1).and_then(|j| bounds.get(j)).copied(),
                    max: bounds.get(i).copied(),
                    count: fruit.price.get(i).copied().unwrap_or(0),
                });
            }
        }
        let rating = if req.facets.rating {
            (1..=4u8)
                .rev()
                .map(|s| RatingBucket {
                    at_least: s,
                    count: fruit.rating[usize::from(s)],
                })
                .collect()
        } else {
            Vec::new()
        };
        Facets {
            brand,
            category,
            attributes,
            price,
            rating,
        }
    }
}

/// Keeps the `k` entries with the highest counts (ties by value), in that order.
fn top_k<T: Ord>(v: &mut Vec<(T, u64)>, k: usize) {
    let order = |a: &(T, u64), b: &(T, u64)| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0));
    if v.len() > k {
        v.select_nth_unstable_by(k, order);
        v.truncate(k);
    }
    v.sort_unstable_by(order);
}

struct Ranked {
    addr: DocAddress,
    relevance: f32,
    placement: Placement,
    features: Option<Features>,
}

struct SignalColumns {
    popularity: Option<Column<u64>>,
    sponsored: Option<Column<bool>>,
    margin: Option<Column<i64>>,
    pressure: Option<Column<u64>>,
    rating: Option<Column<u64>>,
    reviews: Option<Column<u64>>,
    in_stock: Option<Column<u64>>,
}

impl SignalColumns {
    fn open(searcher: &Searcher, segment: u32) -> Result<SignalColumns> {
        let ff = searcher.segment_reader(segment).fast_fields();
        Ok(SignalColumns {
            popularity: ff.column_opt(col::POPULARITY)?,
            sponsored: ff.column_opt(col::SPONSORED)?,
            margin: ff.column_opt(col::MARGIN)?,
            pressure: ff.column_opt(col::PRESSURE)?,
            rating: ff.column_opt(col::RATING)?,
            reviews: ff.column_opt(col::REVIEWS)?,
            in_stock: ff.column_opt(col::IN_STOCK)?,
        })
    }

    fn signals(&self, doc: u32) -> Signals {
        Signals {
            popularity: self
                .popularity
                .as_ref()
                .and_then(|c| c.first(doc))
                .unwrap_or(0),
            sponsored: self
                .sponsored
                .as_ref()
                .and_then(|c| c.first(doc))
                .unwrap_or(false),
            margin_bps: self.margin.as_ref().and_then(|c| c.first(doc)).unwrap_or(0),
            stock_pressure_bps: self
                .pressure
                .as_ref()
                .and_then(|c| c.first(doc))
                .unwrap_or(0),
            rating_centi: self.rating.as_ref().and_then(|c| c.first(doc)),
            reviews: self
                .reviews
                .as_ref()
                .and_then(|c| c.first(doc))
                .unwrap_or(0),
            in_stock: self.in_stock.as_ref().and_then(|c| c.first(doc)) == Some(STOCK_IN),
        }
    }
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

/// The index's writer, held exclusively. Dropped without [`IndexWriterGuard::commit`], it rolls
/// back what it staged: a batch is committed whole or not at all.
pub struct IndexWriterGuard<'a> {
    index: &'a SearchIndex,
    writer: MutexGuard<'a, Option<IndexWriter>>,
    /// Products added in this batch (so a second upsert replaces the first).
    staged: HashSet<ProductId>,
    /// The committed index held no segment when the guard was taken (a bulk load): nothing to
    /// delete but what this batch added.
    committed_empty: bool,
    committed: bool,
}

impl std::fmt::Debug for IndexWriterGuard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexWriterGuard")
            .field("tenant", &self.index.tenant)
            .finish_non_exhaustive()
    }
}

impl IndexWriterGuard<'_> {
    fn w(&mut self) -> &mut IndexWriter {
        // Taken only by `SearchIndex`'s drop, when no guard can exist.
        #[allow(clippy::expect_used)]
        self.writer
            .as_mut()
            .expect("the writer is present while the index lives")
    }

    /// Stages a product: replaces any indexed copy; a retired product leaves a tombstone.
    ///
    /// # Errors
    /// [`Error::Unindexable`] for a product the schema cannot hold (nothing is staged).
    pub fn upsert(&mut self, p: &ProductProjection) -> Result<()> {
        if p.status == ProductStatus::Retired {
            self.retire(&p.product_id, p.version)?;
            return Ok(());
        }
        let doc = self.index.fields.document(p)?;
        self.replace_with(&p.product_id, doc)
    }

    /// Removes what the index (or this batch) holds of `id`, then adds `doc`. A delete is only
    /// queued when there may be something to delete: tantivy keeps every queued delete until
    /// the commit, and for a bulk load of new products that was most of the memory.
    fn replace_with(&mut self, id: &ProductId, doc: TantivyDocument) -> Result<()> {
        let term = Term::from_field_text(self.index.fields.product_id, id.as_str());
        let staged_before = !self.staged.insert(id.clone());
        if staged_before
            || (!self.committed_empty && self.index.reader.searcher().doc_freq(&term)? > 0)
        {
            self.w().delete_term(term);
        }
        self.w().add_document(doc)?;
        Ok(())
    }

    /// Stages the retirement of a product at `version`: it leaves search, and changes older
    /// than `version` will be skipped by the pipeline.
    ///
    /// # Errors
    /// [`Error::Index`] when the writer has failed.
    pub fn retire(&mut self, id: &ProductId, version: u64) -> Result<()> {
        let doc = self.index.fields.tombstone(id.as_str(), version);
        self.replace_with(id, doc)
    }

    /// Stages the removal of every trace of a product, tombstone included.
    pub fn delete(&mut self, id: &ProductId) {
        let term = Term::from_field_text(self.index.fields.product_id, id.as_str());
        self.w().delete_term(term);
    }

    /// Commits what was staged, records `next_offset` (or keeps the current one) in the commit,
    /// and makes it searchable before returning.
    ///
    /// # Errors
    /// [`Error::Index`] when the commit fails; nothing of the batch is then visible.
    pub fn commit(mut self, next_offset: Option<u64>) -> Result<()> {
        let offset = next_offset.unwrap_or_else(|| self.index.next_offset());
        let payload = serde_json::to_string(&Payload {
            next_offset: offset,
        })
        .map_err(|e| Error::Payload(e.to_string()))?;
        let mut prepared = self.w().prepare_commit()?;
        prepared.set_payload(&payload);
        prepared.commit()?;
        self.committed = true;
        *lock(&self.index.next_offset) = offset;
        self.index.reader.reload()?;
        // Build the new generation's facet vocabularies now, not on the next query.
        self.index.vocab(&self.index.reader.searcher())?;
        Ok(())
    }
}

impl Drop for IndexWriterGuard<'_> {
    fn drop(&mut self) {
        if !self.committed {
            // Nothing staged may leak into a later commit.
            if let Some(w) = self.writer.as_mut() {
                let _ = w.rollback();
                // A rollback starts a fresh tantivy writer, with the default merge policy.
                w.set_merge_policy(merge_policy());
            }
        }
    }
}
