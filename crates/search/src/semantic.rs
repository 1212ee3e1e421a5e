//! Semantic search's building blocks: the [`Embedder`] port that turns text into vectors, a
//! deterministic in-process embedder ([`HashingEmbedder`]), an exact nearest-neighbour index
//! keyed by product id that honours a filter while it scans ([`VectorIndex`]), and weighted
//! reciprocal rank fusion of ranked lists ([`reciprocal_rank_fusion`]).
//!
//! Vectors are compared by cosine similarity: the index stores them normalized to unit length,
//! so cosine is a dot product.
// Vectors and fusion scores are floats by nature; nothing here touches money.
#![allow(clippy::float_arithmetic)]

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::hash::Hash;

use commerce_core::ProductId;
pub(crate) use commerce_core::vector::dot;

use crate::{Error, Result};

/// Turns texts into vectors of [`Embedder::dims`] numbers, similar texts into close vectors.
///
/// A port: a model run in the process, a remote embedding service, or vectors the caller
/// computed elsewhere. An implementation answers one vector per text, in order, each of
/// `dims()` finite numbers; the same text always gets the same vector; a text with no words
/// may get the zero vector (it has no direction and matches nothing).
///
/// ```
/// use search::{Embedder, HashingEmbedder};
/// let e = HashingEmbedder::new(64)?;
/// let v = e.embed(&["red velvet sofa"])?;
/// assert_eq!(v[0].len(), e.dims());
/// # Ok::<(), search::Error>(())
/// ```
pub trait Embedder: Send + Sync {
    /// The model's name and version: vectors of different models do not compare.
    fn model(&self) -> &str;
    /// The length of every vector.
    fn dims(&self) -> usize;
    /// One vector per text, in order.
    ///
    /// # Errors
    /// [`Error::Embedder`] when the model cannot answer (not loaded, the service down).
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>>;
}

/// Smallest and largest vector length [`HashingEmbedder`] and [`VectorIndex`] accept.
pub const DIMS_RANGE: std::ops::RangeInclusive<usize> = 2..=4_096;

/// A deterministic embedder needing no model: each word, and each of its three-letter pieces,
/// is hashed to one of `dims` positions with a sign (feature hashing). Texts sharing words or
/// word pieces (`sofas`, `sofa`) get close vectors; it knows no meaning (`couch` is not near
/// `sofa`). For tests, demos and as a fallback; a language model is the real thing.
///
/// ```
/// use search::{Embedder, HashingEmbedder, cosine};
/// let e = HashingEmbedder::new(256)?;
/// let v = e.embed(&["red velvet sofa", "velvet sofas in red", "cordless drill"])?;
/// assert!(cosine(&v[0], &v[1]) > cosine(&v[0], &v[2]));
/// # Ok::<(), search::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct HashingEmbedder {
    dims: usize,
    model: String,
}

impl HashingEmbedder {
    /// An embedder of `dims` numbers per vector.
    ///
    /// # Errors
    /// [`Error::Invalid`] for `dims` outside [`DIMS_RANGE`].
    pub fn new(dims: usize) -> Result<HashingEmbedder> {
        check_dims(dims)?;
        Ok(HashingEmbedder {
            dims,
            model: format!("hashing-v1-{dims}"),
        })
    }

    fn one(&self, text: &str) -> Vec<f32> {
        let mut v = vec![0.0f32; self.dims];
        let mut add = |feature: &[u8], weight: f32| {
            let h = fnv1a(feature);
            let dims = u64::try_from(self.dims).unwrap_or(u64::MAX);
            // `h % dims` is below `dims`, a `usize`.
            let at = usize::try_from(h % dims).unwrap_or(0);
            let sign = if h >> 63 == 0 { 1.0 } else { -1.0 };
            v[at] += sign * weight;
        };
        for word in text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            let word = word.to_lowercase();
            let mut feature = b"w:".to_vec();
            feature.extend_from_slice(word.as_bytes());
            add(&feature, 1.0);
            let marked: Vec<char> = std::iter::once('^')
                .chain(word.chars())
                .chain(std::iter::once('$'))
                .collect();
            for piece in marked.windows(3) {
                let mut feature = b"t:".to_vec();
                feature.extend(piece.iter().collect::<String>().bytes());
                add(&feature, 0.5);
            }
        }
        normalize(&mut v);
        v
    }
}

impl Embedder for HashingEmbedder {
    fn model(&self) -> &str {
        &self.model
    }

    fn dims(&self) -> usize {
        self.dims
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        Ok(texts.iter().map(|t| self.one(t)).collect())
    }
}

/// 64-bit FNV-1a: stable across builds and platforms (unlike `std`'s hasher).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn check_dims(dims: usize) -> Result<()> {
    if DIMS_RANGE.contains(&dims) {
        Ok(())
    } else {
        Err(Error::invalid(
            "dims",
            format!("{} to {}, got {dims}", DIMS_RANGE.start(), DIMS_RANGE.end()),
        ))
    }
}

/// Scales `v` to unit length; the zero vector stays zero.
fn normalize(v: &mut [f32]) {
    let norm = dot(v, v).sqrt();
    if norm > 0.0 {
        for x in v.iter_mut() {
            *x /= norm;
        }
    }
}

/// The cosine similarity of two vectors of one length (0 when either is zero or the lengths
/// differ).
///
/// ```
/// assert!((search::cosine(&[1.0, 0.0], &[2.0, 0.0]) - 1.0).abs() < 1e-6);
/// assert_eq!(search::cosine(&[1.0, 0.0], &[0.0, 3.0]), 0.0);
/// ```
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return 0.0;
    }
    let n = (dot(a, a) * dot(b, b)).sqrt();
    if n > 0.0 { dot(a, b) / n } else { 0.0 }
}

/// A product and how close its vector is to the query's (cosine, −1 to 1).
#[derive(Debug, Clone, PartialEq)]
pub struct Neighbour {
    /// The product.
    pub product_id: ProductId,
    /// Cosine similarity to the query.
    pub similarity: f32,
}

/// Orders neighbours best first: higher similarity, then the smaller product id (so equal
/// scores come out in one order on every run).
fn better(a: &Neighbour, b: &Neighbour) -> Ordering {
    b.similarity
        .total_cmp(&a.similarity)
        .then_with(|| a.product_id.cmp(&b.product_id))
}

/// A heap entry whose greatest element is the worst neighbour kept.
struct Worst(Neighbour);

impl PartialEq for Worst {
    fn eq(&self, other: &Self) -> bool {
        better(&self.0, &other.0) == Ordering::Equal
    }
}
impl Eq for Worst {}
impl PartialOrd for Worst {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Worst {
    fn cmp(&self, other: &Self) -> Ordering {
        better(&self.0, &other.0)
    }
}

/// How and when a [`VectorIndex`] adds an approximate graph (HNSW, Malkov and Yashunin) to
/// its exact scan. Below `above` vectors the scan is fast enough and exact; from there on a
/// query walks the graph, and the exact scan remains the fallback whenever the walk finds
/// fewer than asked (a selective filter), so a filter never leaves a page short while
/// matching products remain.
///
/// ```
/// use search::AnnConfig;
/// let ann = AnnConfig { above: 50_000, ..AnnConfig::default() };
/// assert_eq!(ann.connections, 16);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnnConfig {
    /// The graph is built once the index holds this many vectors (and dropped below half).
    pub above: usize,
    /// Links per vector and layer (HNSW's M), 4 to 64: more is better recall, more memory.
    pub connections: usize,
    /// Candidates weighed when linking a new vector (efConstruction).
    pub ef_construction: usize,
    /// Candidates kept while searching (ef), at least the `k` asked: more is better recall,
    /// slower queries.
    pub ef_search: usize,
}

impl Default for AnnConfig {
    /// The graph from 20,000 vectors (where the exact scan of 384-number vectors passes about
    /// 1 ms), 16 links, efConstruction 100, ef 64.
    fn default() -> Self {
        AnnConfig {
            above: 20_000,
            connections: 16,
            ef_construction: 100,
            ef_search: 64,
        }
    }
}

impl AnnConfig {
    fn validate(&self) -> Result<()> {
        if !(4..=64).contains(&self.connections) {
            return Err(Error::invalid("ann.connections", "4 to 64"));
        }
        if self.ef_construction == 0 || self.ef_construction > 4_096 {
            return Err(Error::invalid("ann.ef_construction", "1 to 4096"));
        }
        if self.ef_search == 0 || self.ef_search > 4_096 {
            return Err(Error::invalid("ann.ef_search", "1 to 4096"));
        }
        Ok(())
    }
}

/// Cosine distance between unit vectors, `1 − a·b`, never below 0 (rounding can put two equal
/// vectors a hair under it).
#[derive(Debug, Clone, Copy, Default)]
struct UnitCosine;

impl hnsw_rs::anndists::dist::Distance<f32> for UnitCosine {
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        (1.0 - dot(a, b)).max(0.0)
    }
}

/// The graph over the index's slots. It keeps its own copy of each vector; a slot whose vector
/// changed or was removed leaves a stale point behind (answers are re-scored from the index's
/// own vectors and filtered by the slot's current product), and the graph is rebuilt once
/// stale points outnumber live ones.
struct Ann {
    graph: hnsw_rs::hnsw::Hnsw<'static, f32, UnitCosine>,
    points: usize,
}

/// Product vectors in one contiguous array, searched exactly, or through an approximate graph
/// once there are many ([`AnnConfig`]). One index per tenant.
///
/// ```
/// use commerce_core::ProductId;
/// use search::VectorIndex;
/// let mut index = VectorIndex::new(2)?;
/// index.upsert(ProductId::new("sofa")?, &[1.0, 0.1])?;
/// index.upsert(ProductId::new("drill")?, &[0.0, 1.0])?;
/// let best = index.nearest(&[1.0, 0.0], 1, |_| true)?;
/// assert_eq!(best[0].product_id.as_str(), "sofa");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct VectorIndex {
    dims: usize,
    /// Slot `s` holds `data[s * dims .. (s + 1) * dims]`.
    data: Vec<f32>,
    ids: Vec<Option<ProductId>>,
    slots: HashMap<ProductId, usize>,
    free: Vec<usize>,
    ann_config: Option<AnnConfig>,
    ann: Option<Ann>,
}

impl std::fmt::Debug for VectorIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VectorIndex")
            .field("dims", &self.dims)
            .field("len", &self.slots.len())
            .field("ann", &self.ann_config)
            .field("graph_points", &self.ann.as_ref().map(|a| a.points))
            .finish()
    }
}

impl VectorIndex {
    /// An empty index of `dims`-long vectors.
    ///
    /// # Errors
    /// [`Error::Invalid`] for `dims` outside [`DIMS_RANGE`].
    pub fn new(dims: usize) -> Result<VectorIndex> {
        check_dims(dims)?;
        Ok(VectorIndex {
            dims,
            data: Vec::new(),
            ids: Vec::new(),
            slots: HashMap::new(),
            free: Vec::new(),
            ann_config: None,
            ann: None,
        })
    }

    /// An empty index that adds an approximate graph once it holds `ann.above` vectors.
    ///
    /// ```
    /// use commerce_core::ProductId;
    /// use search::{AnnConfig, VectorIndex};
    /// let ann = AnnConfig { above: 100, ..AnnConfig::default() };
    /// let mut index = VectorIndex::with_ann(2, ann)?;
    /// for i in 0..200u16 {
    ///     let angle = f32::from(i) / 100.0;
    ///     index.upsert(ProductId::new(format!("p{i}"))?, &[angle.cos(), angle.sin()])?;
    /// }
    /// assert!(index.has_graph());
    /// let best = index.nearest(&[1.0, 0.0], 3, |_| true)?;
    /// assert_eq!(best[0].product_id.as_str(), "p0");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Invalid`] for `dims` outside [`DIMS_RANGE`] or a config out of its bounds.
    pub fn with_ann(dims: usize, ann: AnnConfig) -> Result<VectorIndex> {
        ann.validate()?;
        let mut index = VectorIndex::new(dims)?;
        index.ann_config = Some(ann);
        Ok(index)
    }

    /// Whether queries walk the approximate graph now.
    pub fn has_graph(&self) -> bool {
        self.ann.is_some()
    }

    /// Builds, drops or rebuilds the graph as the count of vectors and stale points asks.
    fn maintain_graph(&mut self) {
        let Some(config) = self.ann_config else {
            return;
        };
        let live = self.slots.len();
        match &self.ann {
            None if live >= config.above.max(1) => self.build_graph(config),
            Some(_) if live < config.above / 2 => self.ann = None,
            Some(a) if a.points > live.saturating_mul(2).max(config.above) => {
                self.build_graph(config);
            }
            _ => {}
        }
    }

    /// A graph over every live slot, inserted in parallel.
    fn build_graph(&mut self, config: AnnConfig) {
        let live = self.slots.len();
        let layers = 16;
        let graph = hnsw_rs::hnsw::Hnsw::new(
            config.connections,
            live.max(1),
            layers,
            config.ef_construction,
            UnitCosine,
        );
        let points: Vec<(&[f32], usize)> = self
            .ids
            .iter()
            .enumerate()
            .filter(|(_, id)| id.is_some())
            .map(|(slot, _)| (self.slot(slot), slot))
            .collect();
        graph.parallel_insert_slice(&points);
        self.ann = Some(Ann {
            graph,
            points: points.len(),
        });
    }

    /// The vector in `slot`.
    fn slot(&self, slot: usize) -> &[f32] {
        &self.data[slot * self.dims..(slot + 1) * self.dims]
    }

    /// The length of the vectors.
    pub fn dims(&self) -> usize {
        self.dims
    }

    /// Products held.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether no product is held.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Checks a vector: the right length, finite, not zero.
    fn check(&self, v: &[f32]) -> Result<()> {
        if v.len() != self.dims {
            return Err(Error::invalid(
                "vector",
                format!("{} numbers, got {}", self.dims, v.len()),
            ));
        }
        if !v.iter().all(|x| x.is_finite()) {
            return Err(Error::invalid("vector", "a number is not finite"));
        }
        if dot(v, v) <= 0.0 {
            return Err(Error::invalid("vector", "the zero vector has no direction"));
        }
        Ok(())
    }

    /// Sets the vector of `id` (stored normalized), replacing any it had.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a vector of another length, with a non-finite number, or zero;
    /// the index is unchanged.
    pub fn upsert(&mut self, id: ProductId, v: &[f32]) -> Result<()> {
        self.upsert_many(vec![(id, v)])
    }

    /// Sets the vectors of many products at once (a commit's batch): into the graph, if there
    /// is one, in parallel.
    ///
    /// # Errors
    /// As [`VectorIndex::upsert`], for any of them; then none is set.
    pub fn upsert_many(&mut self, items: Vec<(ProductId, &[f32])>) -> Result<()> {
        for (_, v) in &items {
            self.check(v)?;
        }
        let mut slots = Vec::with_capacity(items.len());
        for (id, v) in items {
            slots.push(self.put(id, v));
        }
        if let Some(ann) = &self.ann {
            let points: Vec<(&[f32], usize)> = slots.iter().map(|s| (self.slot(*s), *s)).collect();
            ann.graph.parallel_insert_slice(&points);
        }
        if let Some(ann) = &mut self.ann {
            ann.points += slots.len();
        }
        self.maintain_graph();
        Ok(())
    }

    /// Stores a checked vector, normalized, in `id`'s slot (a free one for a new product).
    fn put(&mut self, id: ProductId, v: &[f32]) -> usize {
        let slot = match self.slots.get(&id) {
            Some(s) => *s,
            None => {
                let s = match self.free.pop() {
                    Some(s) => s,
                    None => {
                        self.ids.push(None);
                        self.data.resize(self.data.len() + self.dims, 0.0);
                        self.ids.len() - 1
                    }
                };
                self.ids[s] = Some(id.clone());
                self.slots.insert(id, s);
                s
            }
        };
        let out = &mut self.data[slot * self.dims..(slot + 1) * self.dims];
        out.copy_from_slice(v);
        normalize(out);
        slot
    }

    /// Turns the approximate graph on (built now, in parallel, if the index is large enough)
    /// or off. Loading many vectors is faster with it off, then on.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a config out of its bounds; nothing changes.
    pub fn set_ann(&mut self, ann: Option<AnnConfig>) -> Result<()> {
        if let Some(a) = &ann {
            a.validate()?;
        }
        if ann != self.ann_config {
            self.ann = None;
        }
        self.ann_config = ann;
        self.maintain_graph();
        Ok(())
    }

    /// Forgets the vector of `id`; whether it had one.
    pub fn remove(&mut self, id: &ProductId) -> bool {
        let Some(slot) = self.slots.remove(id) else {
            return false;
        };
        self.ids[slot] = None;
        self.free.push(slot);
        self.maintain_graph();
        true
    }

    /// The (unit-length) vector of `id`.
    pub fn get(&self, id: &ProductId) -> Option<&[f32]> {
        let s = *self.slots.get(id)?;
        Some(&self.data[s * self.dims..(s + 1) * self.dims])
    }

    /// The `k` products closest to `query` among those `allow` accepts, best first (ties by
    /// product id).
    ///
    /// # Errors
    /// [`Error::Invalid`] for a query of another length, with a non-finite number, or zero.
    pub fn nearest(
        &self,
        query: &[f32],
        k: usize,
        mut allow: impl FnMut(&ProductId) -> bool,
    ) -> Result<Vec<Neighbour>> {
        self.check(query)?;
        let mut q = query.to_vec();
        normalize(&mut q);
        if k == 0 {
            return Ok(Vec::new());
        }
        // The graph, for a page small beside the index; when it finds fewer than asked (a
        // filter few products pass), the exact scan answers.
        if let (Some(ann), Some(config)) = (&self.ann, self.ann_config)
            && k.saturating_mul(8) <= self.slots.len()
        {
            // The walk is not filtered (a filter inside it cuts the graph apart when few
            // products pass); its answers are. Too few allowed: walk again wider, by how
            // many passed, up to twice, before scanning everything.
            let mut ef = config.ef_search.max(k);
            for _ in 0..3 {
                let found = ann.graph.search(&q, ef, ef);
                let walked = found.len();
                let mut seen = HashSet::with_capacity(walked);
                let mut out: Vec<Neighbour> = Vec::with_capacity(k);
                for n in found {
                    if !seen.insert(n.d_id) {
                        continue;
                    }
                    let Some(Some(id)) = self.ids.get(n.d_id) else {
                        continue;
                    };
                    if allow(id) {
                        out.push(Neighbour {
                            product_id: id.clone(),
                            similarity: dot(&q, self.slot(n.d_id)),
                        });
                    }
                }
                if out.len() >= k {
                    out.sort_by(better);
                    out.truncate(k);
                    return Ok(out);
                }
                if walked < ef {
                    break;
                }
                // Enough to find `k` at the rate they passed, twice over; at least 4× wider.
                let rate_need = k.saturating_mul(2).saturating_mul(walked) / out.len().max(1);
                ef = rate_need.max(ef.saturating_mul(4));
                if ef.saturating_mul(4) > self.slots.len() {
                    break;
                }
            }
        }
        self.nearest_exact(&q, k, allow)
    }

    /// The exact scan behind [`VectorIndex::nearest`], for a unit query and `k` above 0.
    fn nearest_exact(
        &self,
        q: &[f32],
        k: usize,
        mut allow: impl FnMut(&ProductId) -> bool,
    ) -> Result<Vec<Neighbour>> {
        let mut heap: BinaryHeap<Worst> = BinaryHeap::with_capacity(k.saturating_add(1));
        for (slot, id) in self.ids.iter().enumerate() {
            let Some(id) = id else { continue };
            let similarity = dot(q, self.slot(slot));
            let cand = Neighbour {
                product_id: id.clone(),
                similarity,
            };
            if heap.len() == k
                && heap
                    .peek()
                    .is_some_and(|w| better(&cand, &w.0) != Ordering::Less)
            {
                continue;
            }
            if !allow(id) {
                continue;
            }
            heap.push(Worst(cand));
            if heap.len() > k {
                heap.pop();
            }
        }
        let mut out: Vec<Neighbour> = heap.into_iter().map(|w| w.0).collect();
        out.sort_by(better);
        Ok(out)
    }

    /// The `k` products closest to `id`'s vector, `id` itself left out, among those `allow`
    /// accepts; empty when `id` has no vector.
    pub fn similar(
        &self,
        id: &ProductId,
        k: usize,
        mut allow: impl FnMut(&ProductId) -> bool,
    ) -> Vec<Neighbour> {
        let Some(v) = self.get(id) else {
            return Vec::new();
        };
        let v = v.to_vec();
        self.nearest(&v, k, |other| other != id && allow(other))
            .unwrap_or_default()
    }
}

/// Reciprocal rank fusion (Cormack, Clarke and Büttcher, SIGIR 2009), weighted: an item's
/// fused score is the sum over the lists holding it of `weight / (k + rank)`, its rank in that
/// list counted from 1. Items with equal scores in a list share a rank (the best of theirs), so
/// the order an engine happened to give ties does not tilt the fusion. Each list is read in
/// the order given, best first, and holds an item at most once (a repeat is ignored). The
/// answer is best first; equal fused scores keep the order of first appearance. `k` is 60 in
/// the paper.
///
/// ```
/// use search::reciprocal_rank_fusion;
/// let keyword = [("lamp", 9.0), ("shade", 7.0)];
/// let vector = [("shade", 0.9), ("bulb", 0.8)];
/// let fused = reciprocal_rank_fusion(&[(&keyword[..], 1.0), (&vector[..], 1.0)], 60.0);
/// assert_eq!(fused[0].0, "shade"); // second and first beats first and absent
/// ```
pub fn reciprocal_rank_fusion<K: Eq + Hash + Clone>(
    lists: &[(&[(K, f32)], f64)],
    k: f64,
) -> Vec<(K, f64)> {
    let mut fused: Vec<(K, f64)> = Vec::new();
    let mut at: HashMap<K, usize> = HashMap::new();
    for (list, weight) in lists {
        let mut seen: HashSet<&K> = HashSet::new();
        let mut rank = 0usize;
        let mut prev: Option<f32> = None;
        for (i, (item, score)) in list.iter().enumerate() {
            if !seen.insert(item) {
                continue;
            }
            if prev.is_none_or(|p| p.total_cmp(score) != Ordering::Equal) {
                rank = i + 1;
                prev = Some(*score);
            }
            #[allow(clippy::cast_precision_loss, reason = "ranks far below 2^52")]
            let add = weight / (k + rank as f64);
            match at.get(item) {
                Some(j) => fused[*j].1 += add,
                None => {
                    at.insert(item.clone(), fused.len());
                    fused.push((item.clone(), add));
                }
            }
        }
    }
    // A stable sort: equal scores keep the order of first appearance.
    fused.sort_by(|a, b| b.1.total_cmp(&a.1));
    fused
}

/// Conformance cases every [`Embedder`] passes; run them with [`crate::embedder_conformance!`].
pub mod conformance {
    use super::{Embedder, dot};

    /// One vector per text, in order, each `dims()` long and finite.
    pub fn one_vector_per_text(e: &dyn Embedder) {
        let texts = [
            "red velvet sofa",
            "cordless drill 18v",
            "oak dining table",
            "a",
        ];
        let vs = e.embed(&texts).expect("embed");
        assert_eq!(vs.len(), texts.len());
        for v in &vs {
            assert_eq!(v.len(), e.dims());
            assert!(v.iter().all(|x| x.is_finite()));
        }
        assert!(e.embed(&[]).expect("embed nothing").is_empty());
    }

    /// A text with words gets a unit vector (so cosine is a dot product).
    pub fn unit_length(e: &dyn Embedder) {
        for v in e
            .embed(&["stainless steel kettle", "Bürostuhl"])
            .expect("embed")
        {
            assert!(
                (dot(&v, &v).sqrt() - 1.0).abs() < 1e-3,
                "norm {}",
                dot(&v, &v)
            );
        }
    }

    /// The same text always gets the same vector, alone or in a batch, first or last.
    pub fn deterministic_and_batch_invariant(e: &dyn Embedder) {
        let alone = e.embed(&["blue ceramic mug"]).expect("embed");
        let batch = e
            .embed(&[
                "a much longer text about garden furniture",
                "blue ceramic mug",
            ])
            .expect("embed");
        let again = e.embed(&["blue ceramic mug"]).expect("embed");
        assert_eq!(alone, again);
        for (a, b) in alone[0].iter().zip(&batch[1]) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
    }

    /// A paraphrase is closer than an unrelated text.
    pub fn paraphrase_closer_than_unrelated(e: &dyn Embedder) {
        let v = e
            .embed(&["red velvet sofa", "velvet sofa in red", "cordless drill"])
            .expect("embed");
        assert!(dot(&v[0], &v[1]) > dot(&v[0], &v[2]));
    }
}

/// Runs the [`Embedder`] conformance cases against `$make` (an expression building one), as
/// `#[test]` functions in the module where it is invoked.
#[macro_export]
macro_rules! embedder_conformance {
    ($make:expr) => {
        #[test]
        fn one_vector_per_text() {
            $crate::conformance::one_vector_per_text(&$make);
        }
        #[test]
        fn unit_length() {
            $crate::conformance::unit_length(&$make);
        }
        #[test]
        fn deterministic_and_batch_invariant() {
            $crate::conformance::deterministic_and_batch_invariant(&$make);
        }
        #[test]
        fn paraphrase_closer_than_unrelated() {
            $crate::conformance::paraphrase_closer_than_unrelated(&$make);
        }
    };
}
