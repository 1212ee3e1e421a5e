//! One pass over the text matches: filters, disjunctive facet counts and the top candidates.
//!
//! Filters are evaluated from fast fields inside the collector, not pushed into the tantivy
//! query. That lets one pass serve disjunctive faceting: a document that fails exactly one
//! faceted filter still counts for that facet (its own selection must not shrink its counts),
//! a document that passes every filter counts everywhere and is a ranking candidate, and
//! anything else is skipped. N selected facets cost one pass, not N + 1 queries. Counts are
//! kept by global value id ([`Vocab`]), so merging segments adds arrays.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::Arc;

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::{Column, StrColumn};
use tantivy::{DocId, Score, SegmentOrdinal, SegmentReader};

use crate::schema::{STOCK_IN, col};
use crate::vocab::Vocab;

/// Dimension bits of the failure mask.
const DIM_BRAND: u32 = 0;
const DIM_CATEGORY: u32 = 1;
const DIM_PRICE: u32 = 2;
const DIM_RATING: u32 = 3;
const DIM_ATTR0: u32 = 4;

/// What one query filters on and counts, with selections resolved to global ids.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    pub(crate) vocab: Arc<Vocab>,
    /// Per global brand id: selected. `None` when brand is not filtered.
    pub(crate) brand_sel: Option<Vec<bool>>,
    /// Per leaf category id: within the selected subtree. `None` when not filtered.
    pub(crate) category_sel: Option<Vec<bool>>,
    /// Per global attribute id: the index of its key among the selected keys, or `u8::MAX`.
    pub(crate) attr_sel_key: Vec<u8>,
    /// Per global attribute id: one of the selected values.
    pub(crate) attr_sel_value: Vec<bool>,
    /// Per global attribute id: its key is counted.
    pub(crate) attr_counted: Vec<bool>,
    pub(crate) attr_keys_selected: u32,
    /// `[lo, hi)` in minor units.
    pub(crate) price: Option<(u64, u64)>,
    pub(crate) price_column: String,
    pub(crate) min_rating_centi: Option<u64>,
    pub(crate) in_stock_only: bool,
    pub(crate) count_brand: bool,
    pub(crate) count_category: bool,
    /// Price bucket boundaries in minor units; `None` for no price facet.
    pub(crate) price_bounds: Option<Vec<u64>>,
    pub(crate) count_rating: bool,
    /// How many top candidates to keep.
    pub(crate) keep: usize,
    /// Browsing (no text): candidates are ordered by popularity instead of score.
    pub(crate) browse: bool,
    /// Count nothing (checking whether documents pass the filters).
    pub(crate) no_facets: bool,
}

impl Plan {
    fn counts_attrs(&self) -> bool {
        !self.no_facets && self.attr_counted.iter().any(|c| *c)
    }
}

/// A ranking candidate.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Candidate {
    pub(crate) key: Score,
    pub(crate) segment: SegmentOrdinal,
    pub(crate) doc: DocId,
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Candidate {}
impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Candidate {
    /// Higher key first; among equal keys the earlier document, so results are deterministic.
    fn cmp(&self, other: &Self) -> Ordering {
        self.key
            .total_cmp(&other.key)
            .then_with(|| other.segment.cmp(&self.segment))
            .then_with(|| other.doc.cmp(&self.doc))
    }
}

/// Counts and candidates of a query, by global id.
#[derive(Debug, Default)]
pub(crate) struct Fruit {
    pub(crate) total: u64,
    /// Best first.
    pub(crate) top: Vec<Candidate>,
    pub(crate) brand: Vec<u64>,
    /// Per leaf category.
    pub(crate) category: Vec<u64>,
    pub(crate) attrs: Vec<u64>,
    pub(crate) price: Vec<u64>,
    /// `rating[r]` counts results rated at least `r` stars, r in 1..=4.
    pub(crate) rating: [u64; 5],
}

fn add(into: &mut Vec<u64>, from: &[u64]) {
    if into.len() < from.len() {
        into.resize(from.len(), 0);
    }
    for (o, v) in into.iter_mut().zip(from) {
        *o += v;
    }
}

pub(crate) struct PlanCollector {
    pub(crate) plan: Arc<Plan>,
}

impl Collector for PlanCollector {
    type Fruit = Fruit;
    type Child = PlanSegment;

    fn for_segment(
        &self,
        segment: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<PlanSegment> {
        PlanSegment::new(Arc::clone(&self.plan), segment, reader)
    }

    fn requires_scoring(&self) -> bool {
        !self.plan.browse
    }

    fn merge_fruits(&self, fruits: Vec<Fruit>) -> tantivy::Result<Fruit> {
        let mut out = Fruit::default();
        let mut top = Vec::new();
        for f in fruits {
            out.total += f.total;
            top.extend(f.top);
            add(&mut out.brand, &f.brand);
            add(&mut out.category, &f.category);
            add(&mut out.attrs, &f.attrs);
            add(&mut out.price, &f.price);
            for (o, v) in out.rating.iter_mut().zip(f.rating) {
                *o += v;
            }
        }
        top.sort_unstable_by(|a, b| b.cmp(a));
        top.truncate(self.plan.keep);
        out.top = top;
        Ok(out)
    }
}

/// Documents gathered before their columns are read together.
const BLOCK: usize = 128;

/// Per-segment state: the columns, the block being gathered, and the counters.
///
/// Matches arrive one by one; they are buffered and processed a block at a time, reading each
/// needed column for the whole block at once (a batched, bit-unpacking read) and then deciding
/// each document from those arrays.
pub(crate) struct PlanSegment {
    plan: Arc<Plan>,
    segment: SegmentOrdinal,
    brand: Option<Column<u64>>,
    brand_map: Arc<[u32]>,
    category: Option<Column<u64>>,
    category_map: Arc<[u32]>,
    attrs: Option<StrColumn>,
    attrs_map: Arc<[u32]>,
    price: Option<Column<u64>>,
    rating: Option<Column<u64>>,
    in_stock: Option<Column<u64>>,
    popularity: Option<Column<u64>>,
    need_brand: bool,
    need_category: bool,
    need_price: bool,
    need_rating: bool,
    docs: Vec<DocId>,
    scores: Vec<Score>,
    brand_vals: Vec<Option<u64>>,
    category_vals: Vec<Option<u64>>,
    price_vals: Vec<Option<u64>>,
    rating_vals: Vec<Option<u64>>,
    stock_vals: Vec<Option<u64>>,
    popularity_vals: Vec<Option<u64>>,
    total: u64,
    heap: BinaryHeap<Reverse<Candidate>>,
    brand_counts: Vec<u64>,
    category_counts: Vec<u64>,
    attr_counts: Vec<u64>,
    price_counts: Vec<u64>,
    rating_counts: [u64; 5],
}

/// Reads `column` for `docs` into `out` (`None` where a document has no value).
fn read(column: Option<&Column<u64>>, docs: &[DocId], out: &mut Vec<Option<u64>>) {
    out.clear();
    out.resize(docs.len(), None);
    if let Some(c) = column {
        c.first_vals(docs, out);
    }
}

/// The global id of a local ordinal.
#[inline]
fn global(map: &[u32], ord: Option<u64>) -> Option<usize> {
    let i = usize::try_from(ord?).ok()?;
    map.get(i).map(|g| *g as usize)
}

impl PlanSegment {
    fn new(
        plan: Arc<Plan>,
        segment: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<Self> {
        let ff = reader.fast_fields();
        let v = &plan.vocab;
        let facets = !plan.no_facets;
        let seg = segment as usize;
        let ords = |c: Option<StrColumn>| c.map(|c| c.ords().clone());
        Ok(PlanSegment {
            segment,
            brand: ords(ff.str(col::BRAND)?),
            brand_map: v.brand.segment_map(seg),
            category: ords(ff.str(col::CATEGORY)?),
            category_map: v.category.segment_map(seg),
            attrs: ff.str(col::ATTRS)?,
            attrs_map: v.attrs.segment_map(seg),
            price: ff.column_opt::<u64>(&plan.price_column)?,
            rating: ff.column_opt::<u64>(col::RATING)?,
            in_stock: ff.column_opt::<u64>(col::IN_STOCK)?,
            popularity: if plan.browse {
                ff.column_opt::<u64>(col::POPULARITY)?
            } else {
                None
            },
            need_brand: plan.brand_sel.is_some() || (facets && plan.count_brand),
            need_category: plan.category_sel.is_some() || (facets && plan.count_category),
            need_price: plan.price.is_some() || (facets && plan.price_bounds.is_some()),
            need_rating: plan.min_rating_centi.is_some() || (facets && plan.count_rating),
            docs: Vec::with_capacity(BLOCK),
            scores: Vec::with_capacity(BLOCK),
            brand_vals: Vec::with_capacity(BLOCK),
            category_vals: Vec::with_capacity(BLOCK),
            price_vals: Vec::with_capacity(BLOCK),
            rating_vals: Vec::with_capacity(BLOCK),
            stock_vals: Vec::with_capacity(BLOCK),
            popularity_vals: Vec::with_capacity(BLOCK),
            total: 0,
            heap: BinaryHeap::with_capacity(plan.keep + 1),
            brand_counts: vec![
                0;
                if facets && plan.count_brand {
                    v.brand.values.len()
                } else {
                    0
                }
            ],
            category_counts: vec![
                0;
                if facets && plan.count_category {
                    v.category.values.len()
                } else {
                    0
                }
            ],
            attr_counts: vec![
                0;
                if plan.counts_attrs() {
                    v.attrs.values.len()
                } else {
                    0
                }
            ],
            price_counts: vec![
                0;
                match (&plan.price_bounds, facets) {
                    (Some(b), true) => b.len() + 1,
                    _ => 0,
                }
            ],
            rating_counts: [0; 5],
            plan,
        })
    }

    /// Processes the gathered block.
    fn flush(&mut self) {
        if self.docs.is_empty() {
            return;
        }
        let plan = Arc::clone(&self.plan);
        let docs = std::mem::take(&mut self.docs);
        let n = docs.len();
        let none = |out: &mut Vec<Option<u64>>| {
            out.clear();
            out.resize(n, None);
        };
        if self.need_brand {
            read(self.brand.as_ref(), &docs, &mut self.brand_vals);
        } else {
            none(&mut self.brand_vals);
        }
        if self.need_category {
            read(self.category.as_ref(), &docs, &mut self.category_vals);
        } else {
            none(&mut self.category_vals);
        }
        if self.need_price {
            read(self.price.as_ref(), &docs, &mut self.price_vals);
        } else {
            none(&mut self.price_vals);
        }
        if self.need_rating {
            read(self.rating.as_ref(), &docs, &mut self.rating_vals);
        } else {
            none(&mut self.rating_vals);
        }
        if plan.in_stock_only {
            read(self.in_stock.as_ref(), &docs, &mut self.stock_vals);
        }
        if plan.browse {
            read(self.popularity.as_ref(), &docs, &mut self.popularity_vals);
        }
        for (i, &doc) in docs.iter().enumerate() {
            if plan.in_stock_only && self.stock_vals[i] != Some(STOCK_IN) {
                continue;
            }
            let brand = global(&self.brand_map, self.brand_vals[i]);
            let category = global(&self.category_map, self.category_vals[i]);
            let price = self.price_vals[i];
            let rating = self.rating_vals[i];
            let mask = self.failures(&plan, doc, brand, category, price, rating);
            if mask == 0 {
                self.total += 1;
                let key = if plan.browse {
                    self.popularity_vals[i].map_or(0.0, |p| p as f32)
                } else {
                    self.scores[i]
                };
                let cand = Candidate {
                    key,
                    segment: self.segment,
                    doc,
                };
                if self.heap.len() < plan.keep {
                    self.heap.push(Reverse(cand));
                } else if let Some(mut worst) = self.heap.peek_mut()
                    && cand > worst.0
                {
                    *worst = Reverse(cand);
                }
                if !plan.no_facets {
                    self.count(&plan, doc, None, brand, category, price, rating);
                }
            } else if !plan.no_facets && mask.count_ones() == 1 {
                let only = Some(mask.trailing_zeros());
                self.count(&plan, doc, only, brand, category, price, rating);
            }
        }
        self.docs = docs;
        self.docs.clear();
        self.scores.clear();
    }

    /// The bit mask of filter dimensions `doc` fails.
    #[inline]
    fn failures(
        &self,
        plan: &Plan,
        doc: DocId,
        brand: Option<usize>,
        category: Option<usize>,
        price: Option<u64>,
        rating: Option<u64>,
    ) -> u64 {
        let mut mask = 0u64;
        if let Some(sel) = &plan.brand_sel
            && !brand.and_then(|g| sel.get(g)).copied().unwrap_or(false)
        {
            mask |= 1 << DIM_BRAND;
        }
        if let Some(sel) = &plan.category_sel
            && !category.and_then(|g| sel.get(g)).copied().unwrap_or(false)
        {
            mask |= 1 << DIM_CATEGORY;
        }
        if let Some((lo, hi)) = plan.price
            && price.is_none_or(|p| p < lo || p >= hi)
        {
            mask |= 1 << DIM_PRICE;
        }
        if let Some(min) = plan.min_rating_centi
            && rating.is_none_or(|r| r < min)
        {
            mask |= 1 << DIM_RATING;
        }
        if plan.attr_keys_selected > 0 {
            // A selected key passes when the document has any selected value of it.
            let mut passed = 0u64;
            if let Some(c) = &self.attrs {
                for ord in c.ords().values_for_doc(doc) {
                    if let Some(g) = global(&self.attrs_map, Some(ord))
                        && plan.attr_sel_value.get(g).copied().unwrap_or(false)
                    {
                        passed |= 1 << plan.attr_sel_key[g];
                    }
                }
            }
            for k in 0..plan.attr_keys_selected {
                if passed & (1 << k) == 0 {
                    mask |= 1 << (DIM_ATTR0 + k);
                }
            }
        }
        mask
    }

    /// Counts a document in the facets allowed by `only` (`None`: every facet).
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn count(
        &mut self,
        plan: &Plan,
        doc: DocId,
        only: Option<u32>,
        brand: Option<usize>,
        category: Option<usize>,
        price: Option<u64>,
        rating: Option<u64>,
    ) {
        let allowed = |dim: u32| only.is_none_or(|d| d == dim);
        if allowed(DIM_BRAND)
            && let Some(slot) = brand.and_then(|g| self.brand_counts.get_mut(g))
        {
            *slot += 1;
        }
        if allowed(DIM_CATEGORY)
            && let Some(slot) = category.and_then(|g| self.category_counts.get_mut(g))
        {
            *slot += 1;
        }
        if !self.price_counts.is_empty()
            && allowed(DIM_PRICE)
            && let Some(bounds) = &plan.price_bounds
            && let Some(p) = price
        {
            let bucket = bounds.partition_point(|b| *b <= p);
            self.price_counts[bucket] += 1;
        }
        if plan.count_rating
            && allowed(DIM_RATING)
            && let Some(r) = rating
        {
            for stars in 1..=4usize {
                if r >= stars as u64 * 100 {
                    self.rating_counts[stars] += 1;
                }
            }
        }
        if !self.attr_counts.is_empty()
            && let Some(c) = &self.attrs
        {
            for ord in c.ords().values_for_doc(doc) {
                let Some(g) = global(&self.attrs_map, Some(ord)) else {
                    continue;
                };
                if !plan.attr_counted.get(g).copied().unwrap_or(false) {
                    continue;
                }
                let ok = match only {
                    None => true,
                    Some(d) if d >= DIM_ATTR0 => u32::from(plan.attr_sel_key[g]) == d - DIM_ATTR0,
                    Some(_) => false,
                };
                if ok {
                    self.attr_counts[g] += 1;
                }
            }
        }
    }
}

impl SegmentCollector for PlanSegment {
    type Fruit = Fruit;

    fn collect(&mut self, doc: DocId, score: Score) {
        self.docs.push(doc);
        self.scores.push(score);
        if self.docs.len() == BLOCK {
            self.flush();
        }
    }

    fn harvest(mut self) -> Fruit {
        self.flush();
        let mut top: Vec<Candidate> = self.heap.into_iter().map(|r| r.0).collect();
        top.sort_unstable_by(|a, b| b.cmp(a));
        Fruit {
            total: self.total,
            top,
            brand: self.brand_counts,
            category: self.category_counts,
            attrs: self.attr_counts,
            price: self.price_counts,
            rating: self.rating_counts,
        }
    }
}
