//! The query path: [`SearchIndex::search`] analyzes the text, collects matches and facet counts
//! in one pass, re-ranks the head with business signals, applies merchandising rules and
//! renders the requested page.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use commerce_core::{Currency, Money, ProductId, Sku};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use tantivy::query::{BooleanQuery, Occur, Query, TermQuery, TermSetQuery};
use tantivy::schema::{IndexRecordOption, Value};
use tantivy::snippet::SnippetGenerator;
use tantivy::{DocAddress, DocId, Searcher, TantivyDocument, Term};

use super::SearchIndex;
use super::facets::facets;
use crate::collect::{Candidate, Fruit, Plan, PlanCollector};
use crate::config::MerchRule;
use crate::query::{self, Mode, Words};
use crate::rank::{Features, Signals};
use crate::request::{Hit, Matching, Placement, SearchRequest, SearchResults, Semantic};
use crate::schema::{self, ATTR_SEP, STOCK_IN, col};
use crate::semantic::{Neighbour, reciprocal_rank_fusion};
use crate::vocab::Vocab;
use crate::{Error, Result};

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

/// Minor units back to money; `None` past `i64`.
fn money(minor: u64, currency: Currency) -> Option<Money> {
    i64::try_from(minor)
        .ok()
        .map(|m| Money::from_minor(m, currency))
}

/// What the text matched, after relaxing it if nothing matched every word.
struct Matched {
    fruit: Fruit,
    /// The query that matched; `None` when browsing.
    text_query: Option<Box<dyn Query>>,
    /// Set when partial matches fill the page: a product whose tier is below it misses a word.
    partial_below: Option<u32>,
    /// Some of the matches are partial.
    relaxed: bool,
}

/// Which words a product must hold one of to be a partial match: the rare ones (found in at
/// most a thousandth of the catalog, or a thousand products), then more from the rarest up
/// while those found so far cannot fill `need` places, and at least the rarest one. A word
/// found nowhere counts as rare when it may match through a typo or as a prefix, and is left
/// out otherwise (it matches nothing). Keeping the common words out of the gate keeps a
/// partial search to the postings of the rare words.
fn gate(dfs: &[u64], loose: &[bool], docs: u64, need: u64) -> Vec<bool> {
    let rare = (docs / 1_000).max(1_000);
    let mut order: Vec<usize> = (0..dfs.len())
        .filter(|i| dfs[*i] > 0 || loose.get(*i).copied().unwrap_or(false))
        .collect();
    order.sort_by_key(|i| dfs[*i]);
    let mut gate = vec![false; dfs.len()];
    let mut found = 0u64;
    for (k, i) in order.into_iter().enumerate() {
        if k == 0 || dfs[i] <= rare || found < need {
            gate[i] = true;
            found = found.saturating_add(dfs[i]);
        }
    }
    gate
}

impl SearchIndex {
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
        let words = self.query_words(&req.text);
        let browse = words.tokens.is_empty();
        let rule = self.config.merch.get(&req.text);
        let extra = rule.map_or(0, |r| r.hides.len() + r.pins.len());
        let keep = (req.offset + req.limit + extra).max(self.config.business.rerank_depth);
        let vocab = self.vocab(&searcher)?;
        let query_vector = self.query_vector(req)?;
        let window = req.offset + req.limit + extra;
        if req.semantic == Semantic::Vector
            && let Some(v) = &query_vector
        {
            let near = self.nearest_passing(&searcher, &vocab, req, v, window, None)?;
            let mut ranked: Vec<Ranked> = near.iter().map(|(a, s)| Ranked::near(*a, *s)).collect();
            if let Some(rule) = rule {
                self.apply_merch_rule(&searcher, &vocab, req, rule, &mut ranked)?;
            }
            let hits = self.page_hits(&searcher, req, &ranked, None)?;
            return Ok(SearchResults {
                hits,
                total: near.len() as u64,
                facets: crate::request::Facets::default(),
                relaxed: false,
            });
        }
        let plan = Arc::new(self.plan(Arc::clone(&vocab), req, keep, browse));
        let matched = self.match_text(&searcher, req, &words, &plan)?;
        let mut ranked =
            self.rerank(&searcher, &matched.fruit.top, browse, matched.partial_below)?;
        let mut total = matched.fruit.total;
        if let Some(v) = &query_vector {
            let near = self.nearest_passing(&searcher, &vocab, req, v, window, None)?;
            let before = ranked.len();
            ranked = fuse(ranked, &near);
            total += (ranked.len() - before) as u64;
        }
        if let Some(rule) = rule {
            self.apply_merch_rule(&searcher, &vocab, req, rule, &mut ranked)?;
        }
        let hits = self.page_hits(&searcher, req, &ranked, matched.text_query.as_deref())?;
        Ok(SearchResults {
            hits,
            total,
            facets: facets(&vocab, req, &matched.fruit),
            relaxed: matched.relaxed,
        })
    }

    /// The vector of a semantic request's text; `None` for a words-only request, an empty
    /// text (browsing) or a text whose vector has no direction.
    fn query_vector(&self, req: &SearchRequest) -> Result<Option<Vec<f32>>> {
        if req.semantic == Semantic::Off {
            return Ok(None);
        }
        let Some(embedder) = &self.config.embedder else {
            return Err(Error::invalid(
                "semantic",
                "this index has no embedder (TenantConfig::embedder)",
            ));
        };
        if req.text.trim().is_empty() {
            return Ok(None);
        }
        let mut v = embedder.embed(&[req.text.as_str()])?;
        let v = v.pop().unwrap_or_default();
        if v.len() != embedder.dims() || !v.iter().all(|x| x.is_finite()) {
            return Err(Error::Embedder(format!(
                "{} answered a malformed vector",
                embedder.model()
            )));
        }
        Ok(v.iter().any(|x| *x != 0.0).then_some(v))
    }

    /// The `need` products nearest `query` that pass `req`'s filters (best first, with their
    /// similarity), `exclude` left out. The vectors are scanned for more candidates than
    /// needed, the candidates checked against the filters in one query, and the scan widened
    /// while too few pass and more remain.
    fn nearest_passing(
        &self,
        searcher: &Searcher,
        vocab: &Arc<Vocab>,
        req: &SearchRequest,
        query: &[f32],
        need: usize,
        exclude: Option<&ProductId>,
    ) -> Result<Vec<(DocAddress, f32)>> {
        let Some(held) = self.vectors() else {
            return Err(Error::invalid(
                "semantic",
                "this index has no embedder (TenantConfig::embedder)",
            ));
        };
        let mut k = need.saturating_mul(2).max(NEAREST_SCAN_MIN);
        loop {
            let mut near = held.nearest(query, k, |id| Some(id) != exclude)?;
            let exhausted = near.len() < k || k >= held.len();
            // Best first: once one is too far, so are the rest.
            let close = near
                .iter()
                .take_while(|n| n.similarity > self.config.min_similarity)
                .count();
            let exhausted = exhausted || close < near.len();
            near.truncate(close);
            let passing = self.passing_addresses(searcher, vocab, req, &near)?;
            let out: Vec<(DocAddress, f32)> = near
                .iter()
                .filter_map(|n| passing.get(&n.product_id).map(|a| (*a, n.similarity)))
                .take(need)
                .collect();
            if out.len() >= need || exhausted {
                return Ok(out);
            }
            k = k.saturating_mul(8).min(held.len());
        }
    }

    /// Where each of `near`'s products is, for those active and passing `req`'s filters.
    fn passing_addresses(
        &self,
        searcher: &Searcher,
        vocab: &Arc<Vocab>,
        req: &SearchRequest,
        near: &[Neighbour],
    ) -> Result<HashMap<ProductId, DocAddress>> {
        if near.is_empty() {
            return Ok(HashMap::new());
        }
        let mut plan = self.plan(Arc::clone(vocab), req, near.len(), true);
        plan.no_facets = true;
        let ids = TermSetQuery::new(
            near.iter()
                .map(|n| Term::from_field_text(self.fields.product_id, n.product_id.as_str())),
        );
        let q = BooleanQuery::new(vec![
            (Occur::Must, Box::new(ids) as Box<dyn Query>),
            (Occur::Must, Box::new(self.active_query())),
        ]);
        let fruit = searcher.search(
            &q,
            &PlanCollector {
                plan: Arc::new(plan),
            },
        )?;
        let mut out = HashMap::with_capacity(fruit.top.len());
        let mut text = String::new();
        for c in &fruit.top {
            let column = searcher
                .segment_reader(c.segment)
                .fast_fields()
                .str(col::PRODUCT_ID)?;
            let Some(ord) = column.as_ref().and_then(|col| col.ords().first(c.doc)) else {
                continue;
            };
            text.clear();
            if column
                .as_ref()
                .is_some_and(|col| col.ord_to_str(ord, &mut text).unwrap_or(false))
                && let Ok(id) = ProductId::new(&text)
            {
                out.insert(id, DocAddress::new(c.segment, c.doc));
            }
        }
        Ok(out)
    }

    /// The products nearest the product with `sku` by meaning, most similar first, that pass
    /// `req`'s filters; `req` gives the currency, filters, merchandising-free page (`offset`,
    /// `limit`) and highlighting is not applied; its text is not used. An index has a product's
    /// vector once the commit that indexed it returns.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use commerce_core::{CategoryPath, Currency, Money, PriceTable, ProductId,
    ///     ProductProjection, ProductSignals, ProductStatus, Sku};
    /// use search::{HashingEmbedder, SearchIndex, SearchRequest, Storage, TenantConfig, TenantId};
    ///
    /// let mut config = TenantConfig::new(&[Currency::EUR]);
    /// config.embedder = Some(Arc::new(HashingEmbedder::new(256)?));
    /// let index = SearchIndex::create(TenantId::new("shop")?, config, Storage::Ram)?;
    /// let product = |sku: &str, title: &str| ProductProjection {
    ///     sku: Sku::new(sku).unwrap(),
    ///     product_id: ProductId::new(sku).unwrap(),
    ///     title: title.into(),
    ///     description: String::new(),
    ///     brand: None,
    ///     category: CategoryPath::parse("Home").unwrap(),
    ///     attributes: Default::default(),
    ///     prices: PriceTable::single(Money::from_minor(1000, Currency::EUR)),
    ///     primary_image: None,
    ///     status: ProductStatus::Active,
    ///     version: 1,
    ///     signals: ProductSignals::default(),
    ///     in_stock: Some(true),
    /// };
    /// let mut writer = index.writer();
    /// writer.upsert(&product("SOFA-1", "Red velvet sofa"))?;
    /// writer.upsert(&product("SOFA-2", "Velvet sofa, green"))?;
    /// writer.upsert(&product("DRILL-1", "Cordless drill"))?;
    /// writer.commit(None)?;
    ///
    /// let req = SearchRequest::new("", Currency::EUR);
    /// let similar = index.similar(&Sku::new("SOFA-1")?, &req)?;
    /// assert_eq!(similar.hits[0].sku.as_str(), "SOFA-2");
    /// assert!(similar.hits.iter().all(|h| h.sku.as_str() != "SOFA-1"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Invalid`] for an index without an embedder or a request out of bounds,
    /// [`Error::UnknownProduct`] when no searchable product has `sku`,
    /// [`Error::CurrencyNotIndexed`], [`Error::Index`] as for [`SearchIndex::search`].
    pub fn similar(&self, sku: &Sku, req: &SearchRequest) -> Result<SearchResults> {
        req.validate()?;
        if !self.fields.prices.contains_key(&req.currency) {
            return Err(Error::CurrencyNotIndexed(req.currency.to_string()));
        }
        let searcher = self.reader.searcher();
        let Some(addr) = self.address_of(&searcher, self.fields.sku, sku.as_str())? else {
            return Err(Error::UnknownProduct(sku.as_str().to_owned()));
        };
        let doc: TantivyDocument = searcher.doc(addr)?;
        let Some(id) = doc
            .get_first(self.fields.product_id)
            .and_then(|v| v.as_str())
            .and_then(|t| ProductId::new(t).ok())
        else {
            return Err(Error::UnknownProduct(sku.as_str().to_owned()));
        };
        let vector = {
            let Some(held) = self.vectors() else {
                return Err(Error::invalid(
                    "semantic",
                    "this index has no embedder (TenantConfig::embedder)",
                ));
            };
            held.get(&id).map(<[f32]>::to_vec)
        };
        let Some(vector) = vector else {
            return Ok(SearchResults {
                hits: Vec::new(),
                total: 0,
                facets: crate::request::Facets::default(),
                relaxed: false,
            });
        };
        let vocab = self.vocab(&searcher)?;
        let window = req.offset + req.limit;
        let near = self.nearest_passing(&searcher, &vocab, req, &vector, window, Some(&id))?;
        let ranked: Vec<Ranked> = near.iter().map(|(a, s)| Ranked::near(*a, *s)).collect();
        let page = SearchRequest {
            highlight: false,
            ..req.clone()
        };
        let hits = self.page_hits(&searcher, &page, &ranked, None)?;
        Ok(SearchResults {
            hits,
            total: near.len() as u64,
            facets: crate::request::Facets::default(),
            relaxed: false,
        })
    }

    /// The analyzed words of `text`, stop words dropped unless there is nothing else.
    fn query_words(&self, text: &str) -> Words {
        let words = query::words(
            &mut self.query_analyzer.clone(),
            &mut self.query_plain.clone(),
            text,
        );
        if words.tokens.is_empty() {
            // Only stop words (`the who`): search them as they are.
            return query::words(&mut self.analyzer.clone(), &mut self.plain.clone(), text);
        }
        words
    }

    /// Resolves `req`'s filters and facet requests against the vocabularies: what the collector
    /// checks and counts for each match, keeping the best `keep`.
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

    /// Collects what `words` match under `plan`. Under [`Matching::All`], when fewer products
    /// than the page needs hold every word, the page is filled with products holding some of
    /// them ([`query::build_cover`]), those holding every word first.
    fn match_text(
        &self,
        searcher: &Searcher,
        req: &SearchRequest,
        words: &Words,
        plan: &Arc<Plan>,
    ) -> Result<Matched> {
        let loose = self.loose_words(searcher, words)?;
        let docs = searcher.num_docs();
        let mut dfs = Vec::with_capacity(words.tokens.len());
        for token in &words.tokens {
            dfs.push(searcher.doc_freq(&Term::from_field_text(self.fields.text, token))?);
        }
        let mut splits = Vec::with_capacity(words.tokens.len());
        for (i, typed) in words.typed.iter().enumerate() {
            let split = if dfs[i] == 0 {
                self.split_glued(searcher, typed)?
            } else {
                None
            };
            if let Some((_, df)) = &split {
                dfs[i] = *df;
            }
            splits.push(split.map(|(parts, _)| parts));
        }
        let mut weights: Vec<u32> = dfs.iter().map(|df| query::word_weight(*df, docs)).collect();
        // The last word of a shopper's query is most often what they want (`dr who lanyard`):
        // it weighs one more, a tie-break between partial matches, never a reason to drop the
        // others.
        if let [_, .., last] = weights.as_mut_slice()
            && words
                .tokens
                .last()
                .is_some_and(|t| !t.chars().any(|c| c.is_ascii_digit()))
        {
            *last += 1;
        }
        let types: Vec<bool> = words
            .tokens
            .iter()
            .map(|t| plan.vocab.type_words.contains(t))
            .collect();
        let ask = query::Ask {
            fields: &self.fields,
            synonyms: &self.synonyms,
            raw_text: &req.text,
            words,
            may_be_loose: &loose,
            weights: &weights,
            types: &types,
            splits: &splits,
            compounds: self.config.locale.compounds(),
            sku_exists: searcher.doc_freq(&Term::from_field_text(
                self.fields.sku_key,
                &schema::sku_key(&req.text),
            ))? > 0,
        };
        let mode = match req.matching {
            Matching::All => Mode::All,
            Matching::Any => Mode::Any,
        };
        let text_query = query::build(&ask, mode);
        let need = u64::try_from(req.offset.saturating_add(req.limit)).unwrap_or(u64::MAX);
        // A word found nowhere, with no typo, prefix or synonym to match by, leaves nothing
        // for every word to match: straight to the partial matches.
        let hopeless = mode == Mode::All
            && !ask.sku_exists
            && (0..words.tokens.len())
                .any(|i| dfs[i] == 0 && !loose[i] && !self.synonyms.contains_key(&words.tokens[i]));
        let fruit = if hopeless && words.tokens.len() > 1 {
            Fruit::default()
        } else {
            self.collect(searcher, text_query.as_deref(), plan)?
        };
        let complete = Matched {
            fruit,
            text_query,
            partial_below: None,
            relaxed: false,
        };
        if mode != Mode::All || words.tokens.len() < 2 || complete.fruit.total >= need {
            return Ok(complete);
        }
        let gate = gate(&dfs, &loose, docs, need);
        let Some(cover_query) = query::build_cover(&ask, &gate) else {
            return Ok(complete);
        };
        // Every product holding every word is in the first pass's top (fewer than a page),
        // and holds a gate word: the cover pass's count and facets include them.
        let wide = Arc::new(self.plan(
            Arc::clone(&plan.vocab),
            req,
            plan.keep.saturating_mul(2),
            false,
        ));
        let mut cover = self.collect(searcher, Some(cover_query.as_ref()), &wide)?;
        let held: HashSet<(u32, u32)> = complete
            .fruit
            .top
            .iter()
            .map(|c| (c.segment, c.doc))
            .collect();
        let mut top: Vec<Candidate> = complete
            .fruit
            .top
            .iter()
            .map(|c| Candidate {
                key: query::lift(c.key),
                ..*c
            })
            .collect();
        top.extend(
            cover
                .top
                .iter()
                .filter(|c| !held.contains(&(c.segment, c.doc))),
        );
        top.truncate(plan.keep);
        cover.top = top;
        Ok(Matched {
            relaxed: cover.total > complete.fruit.total,
            fruit: cover,
            text_query: Some(cover_query),
            partial_below: Some(query::COMPLETE_TIERS),
        })
    }

    /// The two words a word found nowhere splits into (`deckerbattery` → `decker`, `battery`):
    /// of the splits whose halves (each at least 3 letters, no digits) the catalog both holds,
    /// the one whose rarer half is most common, with that half's document frequency.
    /// In a language that compounds, the left part may end in a linking `s`, `e`, `n` or `en`
    /// (`arbeitszimmer` → `arbeit`, `zimmer`).
    fn split_glued(&self, searcher: &Searcher, typed: &str) -> Result<Option<(Vec<String>, u64)>> {
        const HALF_MIN: usize = 3;
        let links: &[&str] = if self.config.locale.compounds() {
            &["", "s", "e", "n", "en", "es"]
        } else {
            &[""]
        };
        let chars: Vec<(usize, char)> = typed.char_indices().collect();
        if chars.len() < 2 * HALF_MIN || chars.iter().any(|(_, c)| !c.is_alphabetic()) {
            return Ok(None);
        }
        let mut analyzer = self.query_analyzer.clone();
        let mut best: Option<(Vec<String>, u64)> = None;
        let mut df_of = |word: &str| -> Result<(String, u64)> {
            let [token] = query::analyze(&mut analyzer, word)
                .try_into()
                .unwrap_or_else(|_: Vec<String>| [String::new()]);
            let df = if token.is_empty() {
                0
            } else {
                searcher.doc_freq(&Term::from_field_text(self.fields.text, &token))?
            };
            Ok((token, df))
        };
        for (at, _) in &chars[HALF_MIN..=chars.len() - HALF_MIN] {
            let (left, right) = typed.split_at(*at);
            let (right, right_df) = df_of(right)?;
            if right_df == 0 {
                continue;
            }
            for link in links {
                let Some(stem) = left.strip_suffix(link) else {
                    continue;
                };
                if stem.chars().count() < HALF_MIN {
                    continue;
                }
                let (left, left_df) = df_of(stem)?;
                let rarer = left_df.min(right_df);
                if rarer > 0 && best.as_ref().is_none_or(|(_, df)| rarer > *df) {
                    best = Some((vec![left, right.clone()], rarer));
                }
            }
        }
        Ok(best)
    }

    /// Per word, whether it may also match through a typo or as a prefix: whether fewer
    /// products than `loose_match_below` hold it as typed.
    fn loose_words(&self, searcher: &Searcher, words: &Words) -> Result<Vec<bool>> {
        let threshold = self.config.loose_match_below;
        let mut loose = Vec::with_capacity(words.tokens.len());
        for typed in &words.typed {
            let known = searcher.doc_freq(&Term::from_field_text(self.fields.loose, typed))?;
            loose.push(known < threshold);
        }
        Ok(loose)
    }

    /// Runs `q` (every active product when browsing) through the plan's collector.
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

    /// Orders the best `rerank_depth` candidates by business signals (or the learned re-ranker)
    /// within their match tier; the rest keep their text order.
    fn rerank(
        &self,
        searcher: &Searcher,
        top: &[Candidate],
        browse: bool,
        partial_below: Option<u32>,
    ) -> Result<Vec<Ranked>> {
        let partial = |tier: u32| partial_below.is_some_and(|below| tier < below);
        let weights = &self.config.business;
        let depth = weights.rerank_depth.min(top.len());
        let signals = read_signals(searcher, &top[..depth])?;
        let mut head = Vec::with_capacity(depth);
        for (i, (c, signals)) in top[..depth].iter().zip(signals).enumerate() {
            let (tier, relevance) = if browse {
                (0, 1.0)
            } else {
                query::split_score(c.key)
            };
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
            .map(|(tier, _, _, relevance, c, features)| Ranked {
                addr: DocAddress::new(c.segment, c.doc),
                relevance: if browse { 0.0 } else { relevance },
                placement: Placement::Ranked,
                partial: !browse && partial(tier),
                features: Some(features),
                similarity: None,
            })
            .collect();
        out.extend(top[depth..].iter().map(|c| {
            let (tier, relevance) = query::split_score(c.key);
            Ranked {
                addr: DocAddress::new(c.segment, c.doc),
                relevance: if browse { 0.0 } else { relevance },
                placement: Placement::Ranked,
                partial: !browse && partial(tier),
                features: None,
                similarity: None,
            }
        }));
        Ok(out)
    }

    /// Applies a merchandising rule to the ranked list: hides its hidden products, then puts
    /// each pinned product that passes the request's filters at its position.
    fn apply_merch_rule(
        &self,
        searcher: &Searcher,
        vocab: &Arc<Vocab>,
        req: &SearchRequest,
        rule: &MerchRule,
        ranked: &mut Vec<Ranked>,
    ) -> Result<()> {
        let mut hidden = HashSet::new();
        for sku in &rule.hides {
            hidden.extend(self.address_of(searcher, self.fields.sku, sku.as_str())?);
        }
        ranked.retain(|r| !hidden.contains(&r.addr));
        let mut pins: Vec<&(Sku, usize)> = rule.pins.iter().collect();
        pins.sort_by_key(|(_, pos)| *pos);
        for (sku, pos) in pins {
            let Some(addr) = self.address_of(searcher, self.fields.sku, sku.as_str())? else {
                continue;
            };
            if hidden.contains(&addr)
                || !self.passes_filters(searcher, Arc::clone(vocab), req, sku)?
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
                    partial: false,
                    features: None,
                    similarity: None,
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
        Ok(())
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

    /// The hits of the requested page, highlighted when asked and there is a text query.
    fn page_hits(
        &self,
        searcher: &Searcher,
        req: &SearchRequest,
        ranked: &[Ranked],
        text_query: Option<&dyn Query>,
    ) -> Result<Vec<Hit>> {
        let page: Vec<&Ranked> = ranked.iter().skip(req.offset).take(req.limit).collect();
        let snippets = match (text_query, req.highlight) {
            (Some(q), true) => Some(self.snippet_generators(searcher, q)?),
            _ => None,
        };
        let mut hits = Vec::with_capacity(page.len());
        for r in page {
            hits.push(self.hit(searcher, r, req.currency, snippets.as_ref())?);
        }
        Ok(hits)
    }

    /// Highlighters for the title and the description of a hit.
    fn snippet_generators(
        &self,
        searcher: &Searcher,
        q: &dyn Query,
    ) -> Result<(SnippetGenerator, SnippetGenerator)> {
        // Query words live in the combined `text` field; its generator highlights them in any
        // text run through the same analyzer.
        let mut title = SnippetGenerator::create(searcher, q, self.fields.text)?;
        title.set_max_num_chars(commerce_core::limits::TITLE_CHARS_MAX);
        let mut desc = SnippetGenerator::create(searcher, q, self.fields.text)?;
        desc.set_max_num_chars(200);
        Ok((title, desc))
    }

    /// Renders a ranked document as a hit, priced in `currency` and highlighted by `snippets`.
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
            partial: r.partial,
            similarity: r.similarity,
            title_snippet,
            description_snippet,
            features: r.features,
        })
    }
}

/// A document in result order, with why it is there.
struct Ranked {
    addr: DocAddress,
    relevance: f32,
    placement: Placement,
    /// Misses some of the query's words.
    partial: bool,
    features: Option<Features>,
    /// How close its vector is to the query's, when it was among the nearest.
    similarity: Option<f32>,
}

impl Ranked {
    /// A product found by its vector alone.
    fn near(addr: DocAddress, similarity: f32) -> Ranked {
        Ranked {
            addr,
            relevance: 0.0,
            placement: Placement::Ranked,
            partial: false,
            features: None,
            similarity: Some(similarity),
        }
    }
}

/// Fewest vectors a semantic request scans for candidates before checking filters.
const NEAREST_SCAN_MIN: usize = 64;

/// Reciprocal rank fusion constant (the paper's 60): how much a first place outweighs later ones.
const RRF_K: f64 = 60.0;

/// The keyword ranking fused with the vector ranking by reciprocal rank. A product found only
/// by its vector misses the query's words: it is marked partial.
fn fuse(keyword: Vec<Ranked>, near: &[(DocAddress, f32)]) -> Vec<Ranked> {
    // The keyword order is the ranking (tiers, then business signals): its position is the
    // score, so no two share a rank.
    let n = keyword.len();
    #[allow(clippy::cast_precision_loss, reason = "positions far below 2^24")]
    let by_position: Vec<(DocAddress, f32)> = keyword
        .iter()
        .enumerate()
        .map(|(i, r)| (r.addr, (n - i) as f32))
        .collect();
    let fused = reciprocal_rank_fusion(&[(&by_position[..], 1.0), (near, 1.0)], RRF_K);
    let similarity: HashMap<DocAddress, f32> = near.iter().copied().collect();
    let mut entries: HashMap<DocAddress, Ranked> =
        keyword.into_iter().map(|r| (r.addr, r)).collect();
    fused
        .into_iter()
        .map(|(addr, _)| {
            let s = similarity.get(&addr).copied();
            match entries.remove(&addr) {
                Some(r) => Ranked { similarity: s, ..r },
                None => Ranked {
                    partial: true,
                    ..Ranked::near(addr, s.unwrap_or(0.0))
                },
            }
        })
        .collect()
}

/// The business signals of `candidates`, in their order. Each segment's columns are read for
/// its candidates at once, in document order (a batched read, not one lookup per value).
fn read_signals(searcher: &Searcher, candidates: &[Candidate]) -> Result<Vec<Signals>> {
    let mut out = vec![Signals::default(); candidates.len()];
    let mut by_segment: HashMap<u32, Vec<(DocId, usize)>> = HashMap::new();
    for (i, c) in candidates.iter().enumerate() {
        by_segment.entry(c.segment).or_default().push((c.doc, i));
    }
    for (segment, mut docs) in by_segment {
        docs.sort_unstable();
        let ids: Vec<DocId> = docs.iter().map(|(d, _)| *d).collect();
        let ff = searcher.segment_reader(segment).fast_fields();
        let u64s = |name: &str| -> Result<Vec<Option<u64>>> {
            let mut vals = vec![None; ids.len()];
            if let Some(c) = ff.column_opt::<u64>(name)? {
                c.first_vals(&ids, &mut vals);
            }
            Ok(vals)
        };
        let popularity = u64s(col::POPULARITY)?;
        let pressure = u64s(col::PRESSURE)?;
        let rating = u64s(col::RATING)?;
        let reviews = u64s(col::REVIEWS)?;
        let in_stock = u64s(col::IN_STOCK)?;
        let mut margin = vec![None; ids.len()];
        if let Some(c) = ff.column_opt::<i64>(col::MARGIN)? {
            c.first_vals(&ids, &mut margin);
        }
        let mut sponsored = vec![None; ids.len()];
        if let Some(c) = ff.column_opt::<bool>(col::SPONSORED)? {
            c.first_vals(&ids, &mut sponsored);
        }
        for (k, (_, i)) in docs.iter().enumerate() {
            out[*i] = Signals {
                popularity: popularity[k].unwrap_or(0),
                sponsored: sponsored[k].unwrap_or(false),
                margin_bps: margin[k].unwrap_or(0),
                stock_pressure_bps: pressure[k].unwrap_or(0),
                rating_centi: rating[k],
                reviews: reviews[k].unwrap_or(0),
                in_stock: in_stock[k] == Some(STOCK_IN),
            };
        }
    }
    Ok(out)
}
