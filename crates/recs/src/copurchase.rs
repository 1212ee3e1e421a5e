//! Co-purchase ("bought together"): co-occurrence counts over order baskets, scored per anchor
//! item, the top K of each item written to a [`TopKStore`].
//!
//! A basket is the distinct SKUs of one `OrderConfirmed` event. Each basket carries a weight:
//! 1 by default, halved every `half_life` before the configured reference time when time decay
//! is on, and divided by `ln(e - 1 + size)` with [`BasketWeight::InverseLogSize`] (a wholesale
//! invoice co-occurs with everything and says little about any pair). Counting keeps both the
//! raw count of every pair (for the minimum support) and its weight (for the scores).
//!
//! For an anchor `x` and a candidate `y`, with `c` the pair's weight, `sx`, `sy` the items'
//! weights (their support) and `n` the total basket weight, the [`Scorer`]s are:
//!
//! | scorer | score | range |
//! |---|---|---|
//! | [`Scorer::CoCount`] | `c` | `[0, ∞)` |
//! | [`Scorer::Jaccard`] | `c / (sx + sy − c)` | `[0, 1]` |
//! | [`Scorer::Lift`] | `n·c / (sx·sy)` | `[0, ∞)` |
//! | [`Scorer::Cosine`] | `c / √(sx·sy)` | `[0, 1]` |
//! | [`Scorer::AsymmetricCosine`] | `c / (sx^α · sy^(1−α))` | `[0, 1]` |
//!
//! The batch build ([`CoCounts::build`]) counts each anchor's partners in parallel (rayon),
//! with a progress bar under the `progress` feature; [`CoCounts::add`] folds new baskets into
//! the counts and reports the items whose lists changed, and the lists it then produces are
//! those a batch rebuild over all baskets produces.
//!
//! [`CoPurchase`] is the model the product page is served from: the per-order counts above
//! and, beside them, customer-level counts (two items bought by the same customer in any of
//! their orders), blended per anchor. Its defaults were chosen on UCI Online Retail with the
//! issue's HR@10 protocol on a validation split of the training period only (train before
//! 2011-09-01, validate on September's baskets: 45,975 pairs), the best of a grid over the
//! per-order scorer (co-count, asymmetric cosine α 0.95 and 0.9), basket weights `1/m^e`
//! (e 0.25 to 1), the customer-level weight (0 to 2) and scorer; then scored once on the test
//! period (train before 2011-10-01, 152,955 pairs; `cargo run --release -p recs --example
//! online_retail`):
//!
//! | configuration | validation HR@10 | test HR@10 | test P@10 |
//! |---|---|---|---|
//! | raw co-count (uniform baskets) | | 0.7989 | 0.2756 |
//! | asymmetric cosine α 0.8 | | 0.7928 | 0.2619 |
//! | Jaccard | | 0.7285 | 0.2090 |
//! | co-count, baskets weighted `1/m^0.75` | | 0.8160 | 0.2661 |
//! | that + 0.5 × customer-level co-count (the former default) | 0.8362 | 0.8196 | 0.2685 |
//! | co-count, baskets `1/m^0.5`, + 1 × customer-level asymmetric cosine α 0.9 (support 2) | 0.8366 | 0.8193 | 0.2704 |
//! | **default**: that + [`Trend::DEFAULT`] (14 days, weight 0.7) | 0.8325 (rolling mean **0.8501**) | **0.8213** | 0.2763 |
//!
//! The whole grid lies within 0.835–0.837 on validation: those knobs are saturated there. The
//! trend was then chosen on the knobs above by rolling-origin validation: train before the
//! first of June, July, August and September 2011, validate on that month, best mean HR@10
//! over windows of 7, 14 and 30 days and weights 0.1 to 1 (without a trend the mean is
//! 0.8399; the three earlier months gain 0.010–0.020 each with it, September loses 0.004,
//! which is why one month alone was not enough to choose it).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use commerce_core::{Dedupe, DomainEvent, EventEnvelope, Sku, UserId};
use rayon::prelude::*;

use crate::limits::{BASKET_ITEMS_MAX, TOPK_BATCH_MAX, TOPK_MAX, TREND_DAYS_MAX};
use crate::{Error, ListKey, Result, Scored, TopKList, TopKStore};

/// How a candidate is scored against the anchor item (formulas in the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Scorer {
    /// The pair's (weighted) count: "people who bought x also bought y", most often first.
    CoCount,
    /// Jaccard: the share of baskets with either item that hold both.
    Jaccard,
    /// Lift: how much more often the pair occurs than if the two were bought independently.
    /// Rewards rare pairs; pair it with a minimum support.
    Lift,
    /// Cosine of the two items' basket vectors.
    Cosine,
    /// Asymmetric cosine (Aiolli): `alpha` 1 ranks like the co-count, 0.5 like the cosine;
    /// between, a candidate's popularity is damped by `sy^(1 − alpha)`.
    AsymmetricCosine {
        /// In `[0, 1]`.
        alpha: f64,
    },
}

impl Scorer {
    /// The co-count: on the Online Retail validation split (see the [module docs](self)) no
    /// damped per-order scorer beats it once baskets are weighted by size
    /// ([`BasketWeight::DEFAULT`]).
    pub const DEFAULT: Scorer = Scorer::CoCount;

    fn check(self) -> Result<()> {
        match self {
            Scorer::AsymmetricCosine { alpha } if !(0.0..=1.0).contains(&alpha) => Err(
                Error::invalid("alpha", format!("{alpha} is outside [0, 1]")),
            ),
            _ => Ok(()),
        }
    }

    /// The score of a pair with weight `c` between items of support `sx` (the anchor) and
    /// `sy`, over a total basket weight `n`. Zero when a denominator is zero.
    pub fn score(self, c: f64, sx: f64, sy: f64, n: f64) -> f64 {
        let s = match self {
            Scorer::CoCount => c,
            Scorer::Jaccard => c / (sx + sy - c),
            Scorer::Lift => n * c / (sx * sy),
            Scorer::Cosine => c / (sx * sy).sqrt(),
            Scorer::AsymmetricCosine { alpha } => c / (sx.powf(alpha) * sy.powf(1.0 - alpha)),
        };
        if s.is_finite() { s.max(0.0) } else { 0.0 }
    }

    /// True when scores depend on the total basket weight, so any new basket changes every
    /// list.
    fn uses_total(self) -> bool {
        matches!(self, Scorer::Lift)
    }
}

impl Default for Scorer {
    fn default() -> Scorer {
        Scorer::DEFAULT
    }
}

/// How much one basket counts, before time decay.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum BasketWeight {
    /// Every basket counts 1.
    Uniform,
    /// A basket of `m` items counts `1 / ln(e − 1 + m)`: 1 for a single item, about 0.3 for
    /// a hundred.
    InverseLogSize,
    /// A basket of `m` items counts `1 / m^exponent` (`exponent` in `[0, 2]`): 1 counts
    /// each basket's pairs as one basket spread over its items.
    InverseSizePower {
        /// In `[0, 2]`.
        exponent: f64,
    },
}

impl BasketWeight {
    /// `1 / m^0.5`: part of the default chosen on the Online Retail validation split (see the
    /// [module docs](self)).
    pub const DEFAULT: BasketWeight = BasketWeight::InverseSizePower { exponent: 0.5 };
}

impl Default for BasketWeight {
    fn default() -> BasketWeight {
        BasketWeight::DEFAULT
    }
}

/// Time decay: a basket `half_life` older than `reference` counts half.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decay {
    /// How long it takes a basket's weight to halve; positive.
    pub half_life: TimeDelta,
    /// The time ages are measured from (a basket after it counts more than 1). Keep it fixed
    /// across incremental updates so they match a rebuild.
    pub reference: DateTime<Utc>,
}

/// Trending partners: in a [`CoPurchase`] list, a partner gains `weight` × its recent share,
/// the baskets that held it in the last `days` whole UTC days before the newest basket's day,
/// divided by the most any item had there (so in `[0, weight]`), added to its normalized
/// score. Only items bought with the anchor are ranked; the trend reorders them and adds
/// none.
///
/// The newest basket is the model's clock (no wall clock): the window moves when a basket of
/// a later day arrives, so the baskets of the current day count from the next day on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trend {
    /// Whole days in the window, 1 to [`TREND_DAYS_MAX`].
    pub days: u32,
    /// Weight of the recent share, in `[0, 10]`.
    pub weight: f64,
}

impl Trend {
    /// 14 days, weight 0.7: chosen on Online Retail by rolling-origin validation over four
    /// months of the training period (see the [module docs](self)).
    pub const DEFAULT: Trend = Trend {
        days: 14,
        weight: 0.7,
    };

    fn check(self) -> Result<()> {
        if self.days == 0 || self.days > TREND_DAYS_MAX {
            return Err(Error::invalid(
                "trend.days",
                format!("{} is outside 1..={TREND_DAYS_MAX}", self.days),
            ));
        }
        if !(0.0..=10.0).contains(&self.weight) {
            return Err(Error::invalid(
                "trend.weight",
                format!("{} is outside [0, 10]", self.weight),
            ));
        }
        Ok(())
    }
}

/// How the co-purchase lists are built.
///
/// ```
/// use recs::copurchase::{CoPurchaseConfig, Scorer};
/// let config = CoPurchaseConfig { scorer: Scorer::Jaccard, min_support: 2, ..Default::default() };
/// assert!(config.check().is_ok());
/// assert!(CoPurchaseConfig { top_k: 0, ..config }.check().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CoPurchaseConfig {
    /// The scorer.
    pub scorer: Scorer,
    /// A pair bought together fewer times than this (raw count, before weights) is ignored.
    pub min_support: u32,
    /// Time decay, if any.
    pub decay: Option<Decay>,
    /// How much a basket counts by its size.
    pub basket_weight: BasketWeight,
    /// The length of each item's list (1 to [`TOPK_MAX`]).
    pub top_k: usize,
    /// Weight of the customer-level co-count in a [`CoPurchase`] list, beside the per-order
    /// score (each normalized by the anchor's best); 0 leaves customers out. In `[0, 10]`.
    pub customer_weight: f64,
    /// How customer-level pairs are scored (before the per-anchor normalization).
    pub customer_scorer: Scorer,
    /// Customer-level pairs shared by fewer customers than this are ignored (2 by default:
    /// the same score on Online Retail, and a quarter of the list-building time at scale).
    pub customer_min_support: u32,
    /// Trending partners rank higher in a [`CoPurchase`] list ([`Trend::DEFAULT`]; `None`
    /// for none). [`CoCounts`] lists do not use it.
    pub trend: Option<Trend>,
}

impl Default for CoPurchaseConfig {
    /// [`Scorer::DEFAULT`], support 1, no decay, [`BasketWeight::DEFAULT`], 20 per list,
    /// customer weight 1 with the asymmetric cosine (α 0.9) and support 2, [`Trend::DEFAULT`].
    fn default() -> CoPurchaseConfig {
        CoPurchaseConfig {
            scorer: Scorer::DEFAULT,
            min_support: 1,
            decay: None,
            basket_weight: BasketWeight::DEFAULT,
            top_k: 20,
            customer_weight: 1.0,
            customer_scorer: Scorer::AsymmetricCosine { alpha: 0.9 },
            customer_min_support: 2,
            trend: Some(Trend::DEFAULT),
        }
    }
}

impl CoPurchaseConfig {
    /// Checks the configuration.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a `top_k` of 0 or over [`TOPK_MAX`], an `alpha` outside `[0, 1]`,
    /// a half-life that is not positive, or a trend outside its bounds.
    pub fn check(&self) -> Result<()> {
        self.scorer.check()?;
        if let Some(t) = self.trend {
            t.check()?;
        }
        self.customer_scorer.check()?;
        if let BasketWeight::InverseSizePower { exponent } = self.basket_weight
            && !(0.0..=2.0).contains(&exponent)
        {
            return Err(Error::invalid(
                "exponent",
                format!("{exponent} is outside [0, 2]"),
            ));
        }
        if self.top_k == 0 || self.top_k > TOPK_MAX {
            return Err(Error::invalid(
                "top_k",
                format!("{} is outside 1..={TOPK_MAX}", self.top_k),
            ));
        }
        if !(0.0..=10.0).contains(&self.customer_weight) {
            return Err(Error::invalid(
                "customer_weight",
                format!("{} is outside [0, 10]", self.customer_weight),
            ));
        }
        if let Some(d) = self.decay
            && d.half_life <= TimeDelta::zero()
        {
            return Err(Error::invalid("half_life", "must be positive"));
        }
        Ok(())
    }

    fn weight(&self, basket: &Basket) -> f64 {
        let size = match self.basket_weight {
            BasketWeight::Uniform => 1.0,
            BasketWeight::InverseLogSize => {
                let m = f64::from(u32::try_from(basket.items.len()).unwrap_or(u32::MAX));
                1.0 / (std::f64::consts::E - 1.0 + m).ln()
            }
            BasketWeight::InverseSizePower { exponent } => {
                let m = f64::from(u32::try_from(basket.items.len()).unwrap_or(u32::MAX));
                1.0 / m.max(1.0).powf(exponent)
            }
        };
        let time = match self.decay {
            None => 1.0,
            Some(d) => {
                let age_ms = (d.reference - basket.at).num_milliseconds();
                let half_ms = d.half_life.num_milliseconds();
                // Both are well inside f64's exact integer range for any realistic span.
                #[allow(clippy::cast_precision_loss, reason = "milliseconds, far below 2^53")]
                let halvings = age_ms as f64 / half_ms as f64;
                0.5f64.powf(halvings)
            }
        };
        size * time
    }
}

/// The distinct items of one order and when it was confirmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Basket {
    /// When the order was confirmed.
    pub at: DateTime<Utc>,
    /// Who bought it, when known (the customer-level counts of [`CoPurchase`] need it).
    pub customer: Option<UserId>,
    items: Vec<Sku>,
}

impl Basket {
    /// A basket of the distinct `items` (sorted).
    ///
    /// # Errors
    /// [`Error::Invalid`] (field `basket`) for more than [`BASKET_ITEMS_MAX`] distinct items.
    ///
    /// ```
    /// use commerce_core::Sku;
    /// use recs::copurchase::Basket;
    /// let sku = |s: &str| Sku::new(s).unwrap();
    /// let b = Basket::new(chrono::DateTime::UNIX_EPOCH, [sku("B"), sku("A"), sku("B")])?;
    /// assert_eq!(b.items(), [sku("A"), sku("B")]);
    /// # Ok::<(), recs::Error>(())
    /// ```
    pub fn new(at: DateTime<Utc>, items: impl IntoIterator<Item = Sku>) -> Result<Basket> {
        let set: BTreeSet<Sku> = items.into_iter().collect();
        if set.len() > BASKET_ITEMS_MAX {
            return Err(Error::invalid(
                "basket",
                format!("{} items, at most {BASKET_ITEMS_MAX}", set.len()),
            ));
        }
        Ok(Basket {
            at,
            customer: None,
            items: set.into_iter().collect(),
        })
    }

    /// The basket of an `OrderConfirmed` event (`None` for any other event).
    ///
    /// # Errors
    /// As [`Basket::new`].
    pub fn from_event(envelope: &EventEnvelope) -> Option<Result<Basket>> {
        match &envelope.event {
            DomainEvent::OrderConfirmed { lines, user_id, .. } => Some(
                Basket::new(envelope.occurred_at, lines.iter().map(|l| l.sku.clone()))
                    .map(|b| b.bought_by(user_id.clone())),
            ),
            _ => None,
        }
    }

    /// The basket, bought by `customer`.
    pub fn bought_by(mut self, customer: UserId) -> Basket {
        self.customer = Some(customer);
        self
    }

    /// The distinct items, ascending.
    pub fn items(&self) -> &[Sku] {
        &self.items
    }
}

/// A hasher for the crate's own dense item indices (never outside input, so no flooding
/// concern): one multiply instead of SipHash, which dominated pair counting.
#[derive(Debug, Default, Clone, Copy)]
struct IdHasher(u64);

const ID_HASH_K: u64 = 0x9E37_79B9_7F4A_7C15;

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(ID_HASH_K);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = (self.0 ^ u64::from(n)).wrapping_mul(ID_HASH_K);
    }

    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 29)
    }
}

/// A map keyed by item index.
type IdMap<V> = HashMap<u32, V, BuildHasherDefault<IdHasher>>;

/// A raw count and its weight.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
struct Tally {
    count: u64,
    weight: f64,
}

impl Tally {
    fn add(&mut self, weight: f64) {
        self.count += 1;
        self.weight += weight;
    }
}

/// An item's partners and their tallies: those of the batch build in a vector sorted by
/// partner (no hashing, no spare capacity), those first seen by an incremental update in a
/// map.
#[derive(Debug, Clone, Default)]
struct Partners {
    sorted: Vec<(u32, Tally)>,
    added: IdMap<Tally>,
}

impl Partners {
    fn get(&self, y: &u32) -> Option<&Tally> {
        match self.sorted.binary_search_by_key(y, |p| p.0) {
            Ok(i) => self.sorted.get(i).map(|p| &p.1),
            Err(_) => self.added.get(y),
        }
    }

    fn add(&mut self, y: u32, w: f64) {
        match self.sorted.binary_search_by_key(&y, |p| p.0) {
            Ok(i) => {
                if let Some(p) = self.sorted.get_mut(i) {
                    p.1.add(w);
                }
            }
            Err(_) => self.added.entry(y).or_default().add(w),
        }
    }

    fn iter(&self) -> impl Iterator<Item = (&u32, &Tally)> {
        self.sorted.iter().map(|(y, t)| (y, t)).chain(&self.added)
    }

    fn keys(&self) -> impl Iterator<Item = &u32> {
        self.iter().map(|p| p.0)
    }
}

/// Co-occurrence counts: each item's support, each pair's count, the total; and the lists
/// they score to.
///
/// ```
/// use commerce_core::Sku;
/// use recs::copurchase::{Basket, BasketWeight, CoCounts, CoPurchaseConfig, Scorer};
/// let sku = |s: &str| Sku::new(s).unwrap();
/// let at = chrono::DateTime::UNIX_EPOCH;
/// let baskets = vec![
///     Basket::new(at, [sku("MUG"), sku("TEA")])?,
///     Basket::new(at, [sku("MUG"), sku("TEA"), sku("SPOON")])?,
///     Basket::new(at, [sku("MUG"), sku("SPOON")])?,
///     Basket::new(at, [sku("MUG"), sku("TEA")])?,
/// ];
/// let config = CoPurchaseConfig {
///     scorer: Scorer::CoCount,
///     basket_weight: BasketWeight::Uniform,
///     ..Default::default()
/// };
/// let counts = CoCounts::build(&baskets, config)?;
/// let list = counts.top_k(&sku("MUG"), 7).expect("a known item")?;
/// let order: Vec<(&str, f32)> = list.items().iter().map(|s| (s.sku.as_str(), s.score)).collect();
/// assert_eq!(order, [("TEA", 3.0), ("SPOON", 2.0)]);
/// # Ok::<(), recs::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct CoCounts {
    config: CoPurchaseConfig,
    index: HashMap<Sku, u32>,
    skus: Vec<Sku>,
    support: Vec<Tally>,
    pairs: Vec<Partners>,
    total: Tally,
}

fn idx(i: u32) -> usize {
    usize::try_from(i).unwrap_or(usize::MAX)
}

impl CoCounts {
    /// Empty counts under `config`.
    ///
    /// # Errors
    /// As [`CoPurchaseConfig::check`].
    pub fn new(config: CoPurchaseConfig) -> Result<CoCounts> {
        config.check()?;
        Ok(CoCounts {
            config,
            index: HashMap::new(),
            skus: Vec::new(),
            support: Vec::new(),
            pairs: Vec::new(),
            total: Tally::default(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &CoPurchaseConfig {
        &self.config
    }

    /// How many distinct items the counts know.
    pub fn items_len(&self) -> usize {
        self.skus.len()
    }

    /// How many baskets were counted.
    pub fn baskets_len(&self) -> u64 {
        self.total.count
    }

    /// How many baskets held `sku` (0 for an unknown item).
    pub fn support(&self, sku: &Sku) -> u64 {
        self.index
            .get(sku)
            .and_then(|&i| self.support.get(idx(i)))
            .map_or(0, |t| t.count)
    }

    /// How many baskets held both items.
    pub fn pair_count(&self, a: &Sku, b: &Sku) -> u64 {
        let (Some(&i), Some(&j)) = (self.index.get(a), self.index.get(b)) else {
            return 0;
        };
        self.pairs
            .get(idx(i))
            .and_then(|m| m.get(&j))
            .map_or(0, |t| t.count)
    }

    fn intern(&mut self, sku: &Sku) -> Result<u32> {
        if let Some(&i) = self.index.get(sku) {
            return Ok(i);
        }
        let i = u32::try_from(self.skus.len())
            .map_err(|_| Error::invalid("items", "more than 2^32 distinct items"))?;
        self.index.insert(sku.clone(), i);
        self.skus.push(sku.clone());
        self.support.push(Tally::default());
        self.pairs.push(Partners::default());
        Ok(i)
    }

    /// Counts `baskets` from scratch: items are indexed in one pass, then each item's partners
    /// are counted in parallel across cores (a progress bar on standard error with the
    /// `progress` feature).
    ///
    /// # Errors
    /// As [`CoPurchaseConfig::check`].
    pub fn build(baskets: &[Basket], config: CoPurchaseConfig) -> Result<CoCounts> {
        let mut counts = CoCounts::new(config)?;
        let (encoded, weights) = counts.encode(baskets)?;
        counts.count(&encoded, &weights)?;
        Ok(counts)
    }

    /// Interns the items of `baskets`: their item indices (ascending) and weights.
    fn encode(&mut self, baskets: &[Basket]) -> Result<(Vec<Vec<u32>>, Vec<f64>)> {
        let mut encoded: Vec<Vec<u32>> = Vec::with_capacity(baskets.len());
        let mut weights: Vec<f64> = Vec::with_capacity(baskets.len());
        for basket in baskets {
            weights.push(self.config.weight(basket));
            let mut ids = basket
                .items
                .iter()
                .map(|sku| self.intern(sku))
                .collect::<Result<Vec<u32>>>()?;
            ids.sort_unstable();
            encoded.push(ids);
        }
        Ok((encoded, weights))
    }

    /// Counts `sets` (item indices, distinct, ascending; interned already) with their `weights` into
    /// counts that hold no pair yet: supports and the total in order, then each pair once, by
    /// its larger item in parallel (a dense per-thread accumulator; the weights of a pair add
    /// in set order, as [`CoCounts::add`] adds them), mirrored to the smaller item after.
    fn count(&mut self, sets: &[Vec<u32>], weights: &[f64]) -> Result<()> {
        let n = self.skus.len();
        // Per item, the sets that hold it.
        let mut holders: Vec<Vec<u32>> = vec![Vec::new(); n];
        for (b, (set, &w)) in sets.iter().zip(weights).enumerate() {
            let b = u32::try_from(b).map_err(|_| Error::invalid("baskets", "over 2^32"))?;
            self.total.add(w);
            for &i in set {
                if let Some(h) = holders.get_mut(idx(i)) {
                    h.push(b);
                }
                if let Some(s) = self.support.get_mut(idx(i)) {
                    s.add(w);
                }
            }
        }
        // Sets of weight 1 (the customer-level counts): a pair's weight is its count, exactly.
        #[allow(
            clippy::float_cmp,
            reason = "exactly 1, the weight of a customer's set"
        )]
        let unit = weights.iter().all(|&w| w == 1.0);
        let progress = Progress::new(n);
        // Per item x, its partners y < x.
        let lower: Vec<Vec<(u32, Tally)>> = (0..n)
            .into_par_iter()
            .map_init(
                || {
                    let w = if unit { 0 } else { n };
                    (vec![0u32; n], vec![0f64; w], Vec::new())
                },
                |(cnt, wt, touched): &mut (Vec<u32>, Vec<f64>, Vec<u32>), x| {
                    for &b in holders.get(x).map_or(&[][..], Vec::as_slice) {
                        let w = weights.get(idx(b)).copied().unwrap_or(0.0);
                        // Ascending: the partners below x are a prefix.
                        for &y in sets.get(idx(b)).map_or(&[][..], Vec::as_slice) {
                            if idx(y) >= x {
                                break;
                            }
                            if let Some(c) = cnt.get_mut(idx(y)) {
                                if *c == 0 {
                                    touched.push(y);
                                }
                                *c += 1;
                            }
                            if let Some(v) = wt.get_mut(idx(y)) {
                                *v += w;
                            }
                        }
                    }
                    touched.sort_unstable();
                    let partners = touched
                        .drain(..)
                        .map(|y| {
                            let c = cnt.get_mut(idx(y)).map_or(0, std::mem::take);
                            let weight = if unit {
                                f64::from(c)
                            } else {
                                wt.get_mut(idx(y)).map_or(0.0, std::mem::take)
                            };
                            let count = u64::from(c);
                            (y, Tally { count, weight })
                        })
                        .collect();
                    progress.tick();
                    partners
                },
            )
            .collect();
        progress.finish();
        // Each item's partners: those below it, then (mirrored) those above it, in exactly
        // sized vectors; both parts ascending, so the whole is.
        let mut above = vec![0usize; n];
        for partners in &lower {
            for &(y, _) in partners {
                if let Some(a) = above.get_mut(idx(y)) {
                    *a += 1;
                }
            }
        }
        let mut all: Vec<Vec<(u32, Tally)>> = lower
            .par_iter()
            .zip(&above)
            .map(|(lo, &up)| {
                let mut v = Vec::with_capacity(lo.len() + up);
                v.extend_from_slice(lo);
                v
            })
            .collect();
        for (x, partners) in lower.iter().enumerate() {
            let Ok(x) = u32::try_from(x) else { continue };
            for &(y, t) in partners {
                if let Some(v) = all.get_mut(idx(y)) {
                    v.push((x, t));
                }
            }
        }
        drop(lower);
        self.pairs = all
            .into_iter()
            .map(|sorted| Partners {
                sorted,
                added: IdMap::default(),
            })
            .collect();
        Ok(())
    }

    /// Folds new baskets into the counts and returns the items whose lists may have changed,
    /// ascending: the new baskets' items and every partner of theirs (a candidate's support
    /// is in most scores), or every item when the scorer uses the total ([`Scorer::Lift`]).
    /// Writing [`CoCounts::top_k`] of those items after this gives what a rebuild over all
    /// baskets gives.
    pub fn add(&mut self, baskets: &[Basket]) -> Result<Vec<Sku>> {
        let mut touched: BTreeSet<u32> = BTreeSet::new();
        for basket in baskets {
            let w = self.config.weight(basket);
            self.total.add(w);
            let mut ids = Vec::with_capacity(basket.items.len());
            for sku in &basket.items {
                ids.push(self.intern(sku)?);
            }
            for &x in &ids {
                if let Some(s) = self.support.get_mut(idx(x)) {
                    s.add(w);
                }
                if let Some(m) = self.pairs.get_mut(idx(x)) {
                    for &y in &ids {
                        if y != x {
                            m.add(y, w);
                        }
                    }
                }
                touched.insert(x);
            }
        }
        if self.config.scorer.uses_total() && !baskets.is_empty() {
            return Ok(self.skus.clone());
        }
        let mut dirty = touched.clone();
        for &x in &touched {
            if let Some(m) = self.pairs.get(idx(x)) {
                dirty.extend(m.keys().copied());
            }
        }
        Ok(dirty
            .into_iter()
            .filter_map(|i| self.skus.get(idx(i)).cloned())
            .collect())
    }

    /// Grows one set (a customer's items) from `old` to `old ∪ new` with weight 1: the new
    /// items' supports, their pairs with every item of the grown set, and the total when the
    /// set was empty. Returns the items whose pairs changed (the grown set).
    fn grow(&mut self, old_ids: &[u32], new_ids: &[u32]) -> Vec<u32> {
        if new_ids.is_empty() {
            return Vec::new();
        }
        if old_ids.is_empty() {
            self.total.add(1.0);
        }
        for &i in new_ids {
            if let Some(t) = self.support.get_mut(idx(i)) {
                t.add(1.0);
            }
            for &j in old_ids.iter().chain(new_ids) {
                if i == j {
                    continue;
                }
                if let Some(m) = self.pairs.get_mut(idx(i)) {
                    m.add(j, 1.0);
                }
            }
            for &j in old_ids {
                if let Some(m) = self.pairs.get_mut(idx(j)) {
                    m.add(i, 1.0);
                }
            }
        }
        old_ids.iter().chain(new_ids).copied().collect()
    }

    /// Every partner of `touched` and `touched` themselves (or every item when the scorer
    /// uses the total), ascending.
    fn dirty(&self, touched: &BTreeSet<u32>, total_changed: bool) -> BTreeSet<u32> {
        if self.config.scorer.uses_total() && total_changed {
            return (0..self.skus.len())
                .filter_map(|i| u32::try_from(i).ok())
                .collect();
        }
        let mut dirty = touched.clone();
        for &x in touched {
            if let Some(m) = self.pairs.get(idx(x)) {
                dirty.extend(m.keys().copied());
            }
        }
        dirty
    }

    fn sku_of(&self, i: u32) -> Option<&Sku> {
        self.skus.get(idx(i))
    }

    /// The top [`CoPurchaseConfig::top_k`] partners of `anchor`, best first, ties by SKU
    /// (`None` for an item never bought).
    ///
    /// # Errors
    /// Never in practice: the list is checked as any [`TopKList`].
    pub fn top_k(&self, anchor: &Sku, generation: u64) -> Option<Result<TopKList>> {
        let &x = self.index.get(anchor)?;
        Some(self.top_k_of(x, generation))
    }

    /// Scores of every partner of `anchor` passing the minimum support, unsorted.
    pub fn scores(&self, anchor: &Sku) -> Vec<Scored> {
        let Some(&x) = self.index.get(anchor) else {
            return Vec::new();
        };
        self.scored(x)
    }

    /// Partners of `x` passing the minimum support and their scores (rounded to f32, as
    /// the lists store them), by index.
    fn scored_raw(&self, x: u32) -> Vec<(u32, f64)> {
        let (Some(partners), Some(sx)) = (self.pairs.get(idx(x)), self.support.get(idx(x))) else {
            return Vec::new();
        };
        let min = u64::from(self.config.min_support);
        partners
            .iter()
            .filter(|(_, t)| t.count >= min)
            .filter_map(|(&y, t)| {
                let sy = self.support.get(idx(y))?;
                let s = self
                    .config
                    .scorer
                    .score(t.weight, sx.weight, sy.weight, self.total.weight);
                #[allow(
                    clippy::cast_possible_truncation,
                    reason = "scores are stored as f32; finite and non-negative here"
                )]
                let s = s as f32;
                s.is_finite().then_some((y, f64::from(s)))
            })
            .collect()
    }

    fn scored(&self, x: u32) -> Vec<Scored> {
        self.scored_raw(x)
            .into_iter()
            .filter_map(|(y, s)| {
                #[allow(
                    clippy::cast_possible_truncation,
                    reason = "the scores were rounded to f32 already"
                )]
                let s = s as f32;
                Some(Scored::new(self.skus.get(idx(y))?.clone(), s))
            })
            .collect()
    }

    fn top_k_of(&self, x: u32, generation: u64) -> Result<TopKList> {
        #[allow(
            clippy::cast_possible_truncation,
            reason = "the scores were rounded to f32 already"
        )]
        let items = self
            .scored_raw(x)
            .into_iter()
            .map(|(y, s)| (y, s as f32))
            .collect();
        TopKList::new(generation, self.select_top(items, self.config.top_k))
    }

    /// The best `k` of `items` (item index, score) in the lists' order (score descending,
    /// then SKU), as [`Scored`]: only those `k` SKUs are cloned.
    fn select_top(&self, mut items: Vec<(u32, f32)>, k: usize) -> Vec<Scored> {
        let name = |i: u32| self.skus.get(idx(i)).map_or("", Sku::as_str);
        let order = |a: &(u32, f32), b: &(u32, f32)| {
            b.1.total_cmp(&a.1).then_with(|| name(a.0).cmp(name(b.0)))
        };
        if items.len() > k && k > 0 {
            items.select_nth_unstable_by(k - 1, order);
            items.truncate(k);
        }
        items
            .into_iter()
            .filter_map(|(y, s)| Some(Scored::new(self.skus.get(idx(y))?.clone(), s)))
            .collect()
    }

    /// The lists of every item, computed in parallel.
    ///
    /// # Errors
    /// Never in practice (see [`CoCounts::top_k`]).
    pub fn all_lists(&self, generation: u64) -> Result<Vec<(ListKey, TopKList)>> {
        (0..self.skus.len())
            .into_par_iter()
            .filter_map(|x| {
                let x32 = u32::try_from(x).ok()?;
                let sku = self.skus.get(x)?.clone();
                Some(
                    self.top_k_of(x32, generation)
                        .map(|l| (ListKey::Item(sku), l)),
                )
            })
            .collect()
    }

    /// The lists of `items` (unknown ones get an empty list, which clears an older one).
    ///
    /// # Errors
    /// Never in practice (see [`CoCounts::top_k`]).
    pub fn lists_of(&self, items: &[Sku], generation: u64) -> Result<Vec<(ListKey, TopKList)>> {
        items
            .par_iter()
            .map(|sku| {
                let list = match self.top_k(sku, generation) {
                    Some(l) => l?,
                    None => TopKList::empty(generation),
                };
                Ok((ListKey::Item(sku.clone()), list))
            })
            .collect()
    }
}

/// The co-purchase model: per-order counts and, with a customer weight, customer-level
/// counts (two items bought by the same customer, in any orders), blended per anchor as
/// `order score / best order score + customer_weight × customer co-count / best customer
/// co-count`, plus `trend.weight × recent share` with a [`Trend`]: in
/// `[0, 1 + customer_weight + trend.weight]`. Without customers and trend, lists hold the
/// per-order scores themselves.
///
/// A customer's items are counted up to [`BASKET_ITEMS_MAX`] distinct ones (the first bought);
/// customer-level counts take neither decay nor basket weights, and orders without a customer
/// count only per order.
///
/// ```
/// use chrono::DateTime;
/// use commerce_core::{Sku, UserId};
/// use recs::copurchase::{Basket, CoPurchase, CoPurchaseConfig};
/// let sku = |s: &str| Sku::new(s).unwrap();
/// let ada = UserId::new("ada")?;
/// let at = DateTime::UNIX_EPOCH;
/// let orders = vec![
///     Basket::new(at, [sku("MUG"), sku("TEA")])?.bought_by(ada.clone()),
///     Basket::new(at, [sku("SPOON")])?.bought_by(ada.clone()),
///     Basket::new(at, [sku("MUG"), sku("TEA")])?,
/// ];
/// // One customer is enough here (the default asks two to share a pair).
/// let config = CoPurchaseConfig { customer_min_support: 1, ..Default::default() };
/// let mut model = CoPurchase::build(&orders, config)?;
/// let list = model.top_k(&sku("MUG"), 1).expect("known")?;
/// let names: Vec<&str> = list.items().iter().map(|s| s.sku.as_str()).collect();
/// assert_eq!(names, ["TEA", "SPOON"]); // SPOON: bought by the same customer, another order
/// // A new order: the lists that changed, as a rebuild would give them.
/// let dirty = model.add(&[Basket::new(at, [sku("SPOON"), sku("TEA")])?])?;
/// assert!(dirty.contains(&sku("MUG")));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct CoPurchase {
    config: CoPurchaseConfig,
    orders: CoCounts,
    customers: Option<Customers>,
    trending: Option<Trending>,
    seen: Dedupe,
}

/// The day (since the Unix epoch, UTC) of `at`.
fn day_of(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(86_400)
}

/// Recent baskets per item, for [`Trend`].
#[derive(Debug, Clone)]
struct Trending {
    days: i64,
    /// The newest basket's day.
    newest: Option<i64>,
    /// Baskets per day and item (per-order index), for the days from `newest − days` to
    /// `newest`: the window and the current day, which joins the window when the next starts.
    by_day: BTreeMap<i64, IdMap<u32>>,
    /// Per item: its baskets in the window ÷ the most any item had there.
    share: Vec<f64>,
}

impl Trending {
    fn new(trend: Trend) -> Trending {
        Trending {
            days: i64::from(trend.days),
            newest: None,
            by_day: BTreeMap::new(),
            share: Vec::new(),
        }
    }

    /// Counts one basket of items `ids` on `day`; true when the window's counts changed (a
    /// basket of a later day moves the window; one of a day inside it adds to it).
    fn count(&mut self, day: i64, ids: &[u32]) -> bool {
        let before = self.newest;
        let newest = before.map_or(day, |n| n.max(day));
        self.newest = Some(newest);
        if day < newest - self.days {
            return false;
        }
        let counts = self.by_day.entry(day).or_default();
        for &i in ids {
            *counts.entry(i).or_default() += 1;
        }
        self.by_day = self.by_day.split_off(&(newest - self.days));
        match before {
            None => false,
            Some(b) => day != b,
        }
    }

    /// Recomputes the shares from the window's counts.
    fn refresh(&mut self) {
        self.share.clear();
        let Some(newest) = self.newest else { return };
        let mut totals: IdMap<u64> = IdMap::default();
        for (_, counts) in self.by_day.range(newest - self.days..newest) {
            for (&i, &c) in counts {
                *totals.entry(i).or_default() += u64::from(c);
            }
        }
        let most = totals.values().copied().max().unwrap_or(0);
        if most == 0 {
            return;
        }
        let len = totals.keys().map(|&i| idx(i) + 1).max().unwrap_or(0);
        self.share.resize(len, 0.0);
        for (i, c) in totals {
            if let Some(s) = self.share.get_mut(idx(i)) {
                // Basket counts are far below 2^53: exact as floats.
                #[allow(clippy::cast_precision_loss, reason = "counts far below 2^53")]
                let share = c as f64 / most as f64;
                *s = share;
            }
        }
    }

    fn share(&self, i: u32) -> f64 {
        self.share.get(idx(i)).copied().unwrap_or(0.0)
    }
}

#[derive(Debug, Clone)]
struct Customers {
    counts: CoCounts,
    /// Each customer's items (indices into `counts`), ascending.
    sets: HashMap<UserId, Vec<u32>>,
    /// Per customer-level item index, the per-order index of the same SKU (every customer
    /// item was in some order), so the two score lists merge by integer.
    to_orders: Vec<u32>,
}

impl Customers {
    fn sync_index(&mut self, orders: &CoCounts) {
        for sku in self.counts.skus.get(self.to_orders.len()..).unwrap_or(&[]) {
            self.to_orders
                .push(orders.index.get(sku).copied().unwrap_or(u32::MAX));
        }
    }
}

impl Customers {
    fn config(config: &CoPurchaseConfig) -> CoPurchaseConfig {
        CoPurchaseConfig {
            scorer: config.customer_scorer,
            basket_weight: BasketWeight::Uniform,
            decay: None,
            customer_weight: 0.0,
            min_support: config.customer_min_support,
            ..*config
        }
    }

    /// The items of `basket` new to its customer's set, within the set's bound, added to it;
    /// and the set before (indices into `counts`). The batch build grows sets by the same
    /// rule.
    fn grow_set(&mut self, customer: &UserId, items: &[Sku]) -> Result<(Vec<u32>, Vec<u32>)> {
        let ids: Vec<u32> = items
            .iter()
            .map(|s| self.counts.intern(s))
            .collect::<Result<_>>()?;
        let set = self.sets.entry(customer.clone()).or_default();
        let old = set.clone();
        let mut new = Vec::new();
        for i in ids {
            if grow_sorted(set, i) {
                new.push(i);
            }
        }
        Ok((old, new))
    }
}

/// Inserts `i` into the ascending `set` unless it is there or the set holds
/// [`BASKET_ITEMS_MAX`] items; true when inserted.
fn grow_sorted(set: &mut Vec<u32>, i: u32) -> bool {
    if set.len() >= BASKET_ITEMS_MAX {
        return false;
    }
    match set.binary_search(&i) {
        Ok(_) => false,
        Err(at) => {
            set.insert(at, i);
            true
        }
    }
}

impl CoPurchase {
    /// Counts `baskets` from scratch (see [`CoCounts::build`]); with a customer weight, also
    /// each customer's items over all their baskets.
    ///
    /// # Errors
    /// As [`CoPurchaseConfig::check`].
    pub fn build(baskets: &[Basket], config: CoPurchaseConfig) -> Result<CoPurchase> {
        let mut orders = CoCounts::new(config)?;
        let (encoded, weights) = orders.encode(baskets)?;
        orders.count(&encoded, &weights)?;
        let trending = config.trend.filter(|t| t.weight > 0.0).map(|t| {
            let mut trending = Trending::new(t);
            for (b, ids) in baskets.iter().zip(&encoded) {
                trending.count(day_of(b.at), ids);
            }
            trending.refresh();
            trending
        });
        let customers = if config.customer_weight > 0.0 {
            // The customer-level counts share the per-order item index (extended by later
            // orders independently; `to_orders` maps back).
            let mut counts = CoCounts::new(Customers::config(&config))?;
            counts.index.clone_from(&orders.index);
            counts.skus.clone_from(&orders.skus);
            counts.support = vec![Tally::default(); orders.skus.len()];
            counts.pairs = vec![Partners::default(); orders.skus.len()];
            let mut sets: HashMap<UserId, Vec<u32>> = HashMap::new();
            for (b, ids) in baskets.iter().zip(&encoded) {
                let Some(u) = &b.customer else { continue };
                let set = match sets.get_mut(u) {
                    Some(set) => set,
                    None => sets.entry(u.clone()).or_default(),
                };
                if set.len() + ids.len() > BASKET_ITEMS_MAX {
                    // The bound may be reached inside this basket: its items in SKU order, as
                    // `grow_set` takes them.
                    for sku in &b.items {
                        if set.len() >= BASKET_ITEMS_MAX {
                            break;
                        }
                        if let Some(&i) = orders.index.get(sku) {
                            grow_sorted(set, i);
                        }
                    }
                } else {
                    for &i in ids {
                        grow_sorted(set, i);
                    }
                }
            }
            let lists: Vec<Vec<u32>> = sets.values().cloned().collect();
            let ones = vec![1.0; lists.len()];
            counts.count(&lists, &ones)?;
            let mut c = Customers {
                counts,
                sets,
                to_orders: Vec::new(),
            };
            c.sync_index(&orders);
            Some(c)
        } else {
            None
        };
        Ok(CoPurchase {
            config,
            orders,
            customers,
            trending,
            seen: Dedupe::new(crate::limits::FEED_DEDUPE_WINDOW),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &CoPurchaseConfig {
        &self.config
    }

    /// The per-order counts.
    pub fn orders(&self) -> &CoCounts {
        &self.orders
    }

    /// Folds new baskets in and returns the items whose lists may have changed, ascending;
    /// their [`CoPurchase::lists_of`] are then what a rebuild over all baskets gives.
    ///
    /// # Errors
    /// [`Error::Invalid`] when the item index overflows.
    pub fn add(&mut self, baskets: &[Basket]) -> Result<Vec<Sku>> {
        let mut dirty: BTreeSet<Sku> = self.orders.add(baskets)?.into_iter().collect();
        let mut moved = false;
        if let Some(t) = &mut self.trending {
            for b in baskets {
                let ids: Vec<u32> = b
                    .items
                    .iter()
                    .filter_map(|s| self.orders.index.get(s).copied())
                    .collect();
                moved |= t.count(day_of(b.at), &ids);
            }
            if moved {
                t.refresh();
            }
        }
        if let Some(c) = &mut self.customers {
            let mut touched = BTreeSet::new();
            let mut new_customer = false;
            for b in baskets {
                let Some(u) = &b.customer else { continue };
                let (old, new) = c.grow_set(u, &b.items)?;
                new_customer |= old.is_empty() && !new.is_empty();
                touched.extend(c.counts.grow(&old, &new));
            }
            c.sync_index(&self.orders);
            for i in c.counts.dirty(&touched, new_customer) {
                if let Some(s) = c.counts.sku_of(i) {
                    dirty.insert(s.clone());
                }
            }
        }
        if moved {
            // Any partner's share may have changed: every list.
            dirty.extend(self.orders.skus.iter().cloned());
            if let Some(c) = &self.customers {
                dirty.extend(c.counts.skus.iter().cloned());
            }
        }
        Ok(dirty.into_iter().collect())
    }

    /// Applies `OrderConfirmed` events (others are skipped, and so are event ids seen in the
    /// last [`crate::limits::FEED_DEDUPE_WINDOW`]) and writes the lists that changed to
    /// `store` under `generation`; returns how many lists were written.
    ///
    /// # Errors
    /// As [`Basket::new`] (nothing is counted then); [`Error::Port`] when the store fails
    /// (the counts are updated: write [`CoPurchase::all_lists`] again to recover).
    pub async fn apply(
        &mut self,
        events: &[EventEnvelope],
        store: &dyn TopKStore,
        generation: u64,
    ) -> Result<usize> {
        let mut baskets = Vec::new();
        let mut ids = Vec::new();
        for e in events {
            if let Some(b) = Basket::from_event(e) {
                baskets.push(b?);
                ids.push(&e.event_id);
            }
        }
        let fresh: Vec<Basket> = baskets
            .into_iter()
            .zip(ids)
            .filter(|(_, id)| self.seen.first_time(id))
            .map(|(b, _)| b)
            .collect();
        let dirty = self.add(&fresh)?;
        let lists = self.lists_of(&dirty, generation)?;
        write_lists(store, &lists).await
    }

    /// Every partner of `anchor` with its score as its list ranks it, unsorted.
    pub fn scores(&self, anchor: &Sku) -> Vec<Scored> {
        if self.customers.is_none() && self.trending.is_none() {
            return self.orders.scores(anchor);
        }
        self.ranked(anchor)
            .into_iter()
            .filter_map(|(y, v)| Some(Scored::new(self.orders.sku_of(y)?.clone(), v)))
            .collect()
    }

    /// Every partner of `anchor` (by per-order index) with its score, unsorted: blended with
    /// customers, normalized by the best without them, plus the trend when there is one.
    fn ranked(&self, anchor: &Sku) -> Vec<(u32, f32)> {
        let base = if self.customers.is_some() {
            self.blended(anchor)
        } else {
            let raw = self
                .orders
                .index
                .get(anchor)
                .map(|&x| self.orders.scored_raw(x))
                .unwrap_or_default();
            if self.trending.is_none() {
                // Raw scores, as the per-order lists give them.
                #[allow(
                    clippy::cast_possible_truncation,
                    reason = "the scores were rounded to f32 already"
                )]
                return raw.into_iter().map(|(y, v)| (y, v as f32)).collect();
            }
            let best = raw.iter().map(|s| s.1).fold(0.0, f64::max);
            let best = if best > 0.0 { best } else { 1.0 };
            #[allow(
                clippy::cast_possible_truncation,
                reason = "normalized scores in [0, 1]"
            )]
            raw.into_iter()
                .map(|(y, v)| (y, (v / best) as f32))
                .collect()
        };
        let (Some(t), Some(trend)) = (&self.trending, self.config.trend) else {
            return base;
        };
        #[allow(
            clippy::cast_possible_truncation,
            reason = "scores are stored as f32; finite and bounded here"
        )]
        base.into_iter()
            .map(|(y, v)| (y, (f64::from(v) + trend.weight * t.share(y)) as f32))
            .collect()
    }

    /// Every partner of `anchor` (by per-order index) with its blended score, unsorted
    /// (with customers).
    fn blended(&self, anchor: &Sku) -> Vec<(u32, f32)> {
        let Some(c) = &self.customers else {
            return Vec::new();
        };
        let orders = self
            .orders
            .index
            .get(anchor)
            .map(|&x| self.orders.scored_raw(x))
            .unwrap_or_default();
        let customers = c
            .counts
            .index
            .get(anchor)
            .map(|&x| c.counts.scored_raw(x))
            .unwrap_or_default();
        let best = |v: &[(u32, f64)]| v.iter().map(|s| s.1).fold(0.0, f64::max);
        // Merged by per-order index.
        let mut sum: IdMap<f64> =
            IdMap::with_capacity_and_hasher(orders.len() + customers.len(), Default::default());
        let b = best(&orders);
        if b > 0.0 {
            for &(y, v) in &orders {
                *sum.entry(y).or_default() += v / b;
            }
        }
        let b = best(&customers);
        if b > 0.0 {
            for &(y, v) in &customers {
                let Some(&y) = c.to_orders.get(idx(y)) else {
                    continue;
                };
                *sum.entry(y).or_default() += self.config.customer_weight * v / b;
            }
        }
        #[allow(
            clippy::cast_possible_truncation,
            reason = "scores are stored as f32; finite and non-negative here"
        )]
        sum.into_iter()
            .map(|(y, v)| (y, v as f32))
            .filter(|&(y, v)| v.is_finite() && self.orders.sku_of(y).is_some())
            .collect()
    }

    /// The top [`CoPurchaseConfig::top_k`] partners of `anchor` (`None` for an item never
    /// bought).
    ///
    /// # Errors
    /// Never in practice: the list is checked as any [`TopKList`].
    pub fn top_k(&self, anchor: &Sku, generation: u64) -> Option<Result<TopKList>> {
        let known = self.orders.index.contains_key(anchor)
            || self
                .customers
                .as_ref()
                .is_some_and(|c| c.counts.index.contains_key(anchor));
        if !known {
            return None;
        }
        if self.customers.is_none() && self.trending.is_none() {
            return self.orders.top_k(anchor, generation);
        }
        let items = self
            .orders
            .select_top(self.ranked(anchor), self.config.top_k);
        Some(TopKList::new(generation, items))
    }

    /// The lists of `items` (unknown ones get an empty list), in parallel.
    ///
    /// # Errors
    /// Never in practice (see [`CoPurchase::top_k`]).
    pub fn lists_of(&self, items: &[Sku], generation: u64) -> Result<Vec<(ListKey, TopKList)>> {
        items
            .par_iter()
            .map(|sku| {
                let list = match self.top_k(sku, generation) {
                    Some(l) => l?,
                    None => TopKList::empty(generation),
                };
                Ok((ListKey::Item(sku.clone()), list))
            })
            .collect()
    }

    /// The lists of every item, in parallel.
    ///
    /// # Errors
    /// Never in practice (see [`CoPurchase::top_k`]).
    pub fn all_lists(&self, generation: u64) -> Result<Vec<(ListKey, TopKList)>> {
        let mut items: BTreeSet<Sku> = self.orders.skus.iter().cloned().collect();
        if let Some(c) = &self.customers {
            items.extend(c.counts.skus.iter().cloned());
        }
        let items: Vec<Sku> = items.into_iter().collect();
        self.lists_of(&items, generation)
    }
}

/// Writes `lists` to `store` in batches of [`TOPK_BATCH_MAX`]; returns how many were written
/// (a list older than the stored one is not).
///
/// # Errors
/// [`Error::Port`] when a batch fails (the batches before it are written).
pub async fn write_lists(store: &dyn TopKStore, lists: &[(ListKey, TopKList)]) -> Result<usize> {
    let mut written = 0;
    for chunk in lists.chunks(TOPK_BATCH_MAX) {
        written += store.put(chunk).await?;
    }
    Ok(written)
}

/// The baskets of the `OrderConfirmed` events among `events`, skipping other events.
///
/// # Errors
/// As [`Basket::new`], for the first order over the basket bound.
pub fn baskets_of(events: &[EventEnvelope]) -> Result<Vec<Basket>> {
    events.iter().filter_map(Basket::from_event).collect()
}

/// A shared progress counter: an indicatif bar with the `progress` feature, nothing without.
#[derive(Debug, Clone)]
struct Progress {
    #[cfg(feature = "progress")]
    bar: Arc<indicatif::ProgressBar>,
    #[cfg(not(feature = "progress"))]
    _none: Arc<()>,
}

impl Progress {
    fn new(len: usize) -> Progress {
        #[cfg(feature = "progress")]
        {
            let bar = indicatif::ProgressBar::new(u64::try_from(len).unwrap_or(u64::MAX));
            // Short builds draw nothing: the bar appears only on a long build.
            if len < 10_000 {
                bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
            }
            Progress { bar: Arc::new(bar) }
        }
        #[cfg(not(feature = "progress"))]
        {
            let _ = len;
            Progress {
                _none: Arc::new(()),
            }
        }
    }

    fn tick(&self) {
        #[cfg(feature = "progress")]
        self.bar.inc(1);
    }

    fn finish(&self) {
        #[cfg(feature = "progress")]
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uniform() -> CoPurchaseConfig {
        CoPurchaseConfig {
            basket_weight: BasketWeight::Uniform,
            ..CoPurchaseConfig::default()
        }
    }

    fn sku(s: &str) -> Sku {
        Sku::new(s).unwrap()
    }

    fn day(d: i64) -> DateTime<Utc> {
        DateTime::UNIX_EPOCH + TimeDelta::days(d)
    }

    fn baskets() -> Vec<Basket> {
        vec![
            Basket::new(day(0), [sku("A"), sku("B")]).unwrap(),
            Basket::new(day(1), [sku("A"), sku("B"), sku("C")]).unwrap(),
            Basket::new(day(2), [sku("A"), sku("C")]).unwrap(),
            Basket::new(day(3), [sku("C"), sku("D")]).unwrap(),
            Basket::new(day(4), [sku("D")]).unwrap(),
        ]
    }

    fn scores(counts: &CoCounts, anchor: &str) -> Vec<(String, f32)> {
        counts
            .top_k(&sku(anchor), 0)
            .unwrap()
            .unwrap()
            .items()
            .iter()
            .map(|s| (s.sku.to_string(), s.score))
            .collect()
    }

    #[test]
    fn counts_supports_and_pairs() {
        let c = CoCounts::build(&baskets(), uniform()).unwrap();
        assert_eq!(c.items_len(), 4);
        assert_eq!(c.baskets_len(), 5);
        assert_eq!(c.support(&sku("A")), 3);
        assert_eq!(c.pair_count(&sku("A"), &sku("B")), 2);
        assert_eq!(c.pair_count(&sku("B"), &sku("A")), 2);
        assert_eq!(c.pair_count(&sku("B"), &sku("D")), 0);
        assert_eq!(c.support(&sku("Z")), 0);
    }

    #[test]
    fn scorers_match_their_formulas() {
        let cfg = |scorer| CoPurchaseConfig {
            scorer,
            ..uniform()
        };
        let b = baskets();
        // A: support 3; B: 2; C: 3; pair AB 2, AC 2; N = 5.
        let c = CoCounts::build(&b, cfg(Scorer::CoCount)).unwrap();
        assert_eq!(scores(&c, "A"), [("B".into(), 2.0), ("C".into(), 2.0)]);
        let c = CoCounts::build(&b, cfg(Scorer::Jaccard)).unwrap();
        assert_eq!(
            scores(&c, "A"),
            [("B".into(), 2.0 / 3.0), ("C".into(), 0.5)]
        );
        let c = CoCounts::build(&b, cfg(Scorer::Lift)).unwrap();
        assert_eq!(
            scores(&c, "A"),
            [("B".into(), 10.0 / 6.0), ("C".into(), 10.0 / 9.0)]
        );
        let c = CoCounts::build(&b, cfg(Scorer::Cosine)).unwrap();
        let s = scores(&c, "A");
        assert!((s[0].1 - 2.0 / 6f32.sqrt()).abs() < 1e-6);
        let c = CoCounts::build(&b, cfg(Scorer::AsymmetricCosine { alpha: 1.0 })).unwrap();
        assert_eq!(
            scores(&c, "A"),
            [("B".into(), 2.0 / 3.0), ("C".into(), 2.0 / 3.0)]
        );
    }

    #[test]
    fn min_support_drops_rare_pairs() {
        let cfg = CoPurchaseConfig {
            min_support: 2,
            ..uniform()
        };
        let c = CoCounts::build(&baskets(), cfg).unwrap();
        assert!(c.top_k(&sku("D"), 0).unwrap().unwrap().is_empty());
        assert_eq!(c.top_k(&sku("A"), 0).unwrap().unwrap().len(), 2);
    }

    #[test]
    fn decay_halves_a_basket_per_half_life() {
        let cfg = CoPurchaseConfig {
            scorer: Scorer::CoCount,
            decay: Some(Decay {
                half_life: TimeDelta::days(1),
                reference: day(2),
            }),
            ..uniform()
        };
        let c = CoCounts::build(&baskets(), cfg).unwrap();
        // AB: days 0 and 1 → 1/4 + 1/2; AC: days 1 and 2 → 1/2 + 1.
        assert_eq!(scores(&c, "A"), [("C".into(), 1.5), ("B".into(), 0.75)]);
    }

    #[test]
    fn bad_configs_and_baskets_are_refused() {
        let bad = CoPurchaseConfig {
            scorer: Scorer::AsymmetricCosine { alpha: 1.5 },
            ..uniform()
        };
        assert_eq!(CoCounts::new(bad).unwrap_err().field(), Some("alpha"));
        let bad = CoPurchaseConfig {
            decay: Some(Decay {
                half_life: TimeDelta::zero(),
                reference: day(0),
            }),
            ..uniform()
        };
        assert_eq!(bad.check().unwrap_err().field(), Some("half_life"));
        let many = (0..=BASKET_ITEMS_MAX).map(|i| sku(&format!("S{i}")));
        assert_eq!(
            Basket::new(day(0), many).unwrap_err().field(),
            Some("basket")
        );
    }

    #[test]
    fn a_customer_over_the_set_bound_counts_the_first_items_in_batch_and_incrementally() {
        let ada = UserId::new("ada").unwrap();
        // 1,200 distinct items over two orders: the set keeps the first 1,000, in SKU order
        // within the order that crosses the bound.
        let items = |r: std::ops::Range<usize>| r.map(|i| sku(&format!("S{i:04}")));
        let b = vec![
            Basket::new(day(0), items(0..600))
                .unwrap()
                .bought_by(ada.clone()),
            Basket::new(
                day(1),
                items(300..900).chain(items(1_000..1_300)).take(1_000),
            )
            .unwrap()
            .bought_by(ada.clone()),
            Basket::new(day(2), items(1_290..1_300)).unwrap(),
        ];
        let config = CoPurchaseConfig {
            customer_min_support: 1,
            top_k: TOPK_MAX,
            ..CoPurchaseConfig::default()
        };
        let full = CoPurchase::build(&b, config).unwrap();
        let set = full.customers.as_ref().unwrap().sets.get(&ada).unwrap();
        assert_eq!(set.len(), BASKET_ITEMS_MAX);
        let mut inc = CoPurchase::build(&b[..1], config).unwrap();
        inc.add(&b[1..]).unwrap();
        let mut a = inc.all_lists(1).unwrap();
        let mut f = full.all_lists(1).unwrap();
        a.sort_by(|x, y| x.0.cmp(&y.0));
        f.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(a, f);
        // S1099 is the 1,000th item (S0000..S0899, then S1000..S1099); S1100 is left out.
        let customer_partners = |s: &str| {
            let c = full.customers.as_ref().unwrap();
            c.counts.pair_count(&sku("S0000"), &sku(s))
        };
        assert_eq!(customer_partners("S1099"), 1);
        assert_eq!(customer_partners("S1100"), 0);
    }

    #[test]
    fn incremental_matches_rebuild() {
        let b = baskets();
        let cfg = CoPurchaseConfig {
            scorer: Scorer::Cosine,
            ..uniform()
        };
        let mut inc = CoCounts::build(&b[..2], cfg).unwrap();
        let dirty = inc.add(&b[2..]).unwrap();
        assert!(dirty.contains(&sku("B")), "B's partner A changed support");
        let full = CoCounts::build(&b, cfg).unwrap();
        assert_eq!(inc.all_lists(1).unwrap().len(), 4);
        let mut a = inc.all_lists(1).unwrap();
        let mut f = full.all_lists(1).unwrap();
        a.sort_by(|x, y| x.0.cmp(&y.0));
        f.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(a, f);
    }
}
