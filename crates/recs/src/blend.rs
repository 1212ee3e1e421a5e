//! The blend: candidates from the layers, filtered, scored `0.7 × relevance + 0.3 × business`
//! (both min-max normalized per request, weights configurable), capped per brand and category,
//! each with an [`Explanation`]; and the product page that composes the layers.
//!
//! Relevance of a candidate is the weighted mean of its layers' normalized scores (a layer
//! that did not propose it counts 0), normalized again across candidates. Business is a mix
//! of the margin and the stock pressure, each normalized across candidates. Margins are exact
//! integers (basis points, as `commerce_core::ProductSignals` carries them); they only become
//! a score in `[0, 1]` here, never money arithmetic in floats.

use std::collections::{HashMap, HashSet};

use commerce_core::{ProductProjection, ProductStatus, SessionId, Sku, UserId};
use serde::{Deserialize, Serialize};

use crate::limits::{CANDIDATES_MAX, RECENTLY_VIEWED_MAX, RECOMMEND_MAX};
use crate::store::rank_order;
use crate::{Error, ListKey, RecentlyViewedStore, Result, Scored, TopKStore, Viewed};

/// Where a candidate came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Layer {
    /// Bought together with the anchor product.
    CoPurchase,
    /// The user's personalized list (ALS).
    Personalized,
    /// Viewed recently in the session.
    RecentlyViewed,
}

/// What the blend knows about a candidate product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductFacts {
    /// The SKU.
    pub sku: Sku,
    /// Brand, for the diversity cap.
    pub brand: Option<String>,
    /// Category (its top-level segment by [`ProductFacts::from_projection`]), for the cap.
    pub category: Option<String>,
    /// Units can be sold now.
    pub in_stock: bool,
    /// No longer sold.
    pub retired: bool,
    /// Gross margin in basis points of the price; `None` counts as the lowest.
    pub margin_bps: Option<i32>,
    /// How much the merchant wants to move this stock, in basis points.
    pub stock_pressure_bps: u16,
}

impl ProductFacts {
    /// The facts of a catalog projection, with the stock state from inventory.
    pub fn from_projection(p: &ProductProjection, in_stock: bool) -> ProductFacts {
        ProductFacts {
            sku: p.sku.clone(),
            brand: p.brand.clone(),
            category: p.category.segments().first().cloned(),
            in_stock,
            retired: p.status == ProductStatus::Retired,
            margin_bps: p.signals.margin_bps,
            stock_pressure_bps: p.signals.stock_pressure_bps,
        }
    }
}

/// How the blend weighs and caps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlendConfig {
    /// Weight of relevance (0.7).
    pub relevance_weight: f32,
    /// Weight of the business signal (0.3).
    pub business_weight: f32,
    /// Share of the margin in the business signal, the rest is stock pressure (0.5).
    pub margin_share: f32,
    /// Weight of each layer in relevance (co-purchase 1, personalized 1, recently viewed 0.3).
    pub layer_weights: Vec<(Layer, f32)>,
    /// Most recommendations per brand (`None`: no cap).
    pub brand_max: Option<usize>,
    /// Most recommendations per category (`None`: no cap).
    pub category_max: Option<usize>,
    /// How many recommendations to return (1 to [`RECOMMEND_MAX`]).
    pub k: usize,
}

impl Default for BlendConfig {
    fn default() -> BlendConfig {
        BlendConfig {
            relevance_weight: 0.7,
            business_weight: 0.3,
            margin_share: 0.5,
            layer_weights: vec![
                (Layer::CoPurchase, 1.0),
                (Layer::Personalized, 1.0),
                (Layer::RecentlyViewed, 0.3),
            ],
            brand_max: Some(3),
            category_max: None,
            k: 10,
        }
    }
}

impl BlendConfig {
    /// Checks the configuration.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a negative or non-finite weight, weights summing to 0, a margin
    /// share outside `[0, 1]`, or `k` outside `1..=RECOMMEND_MAX`.
    pub fn check(&self) -> Result<()> {
        let w = |field, v: f32| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(Error::invalid(
                    field,
                    format!("{v} is not a non-negative number"),
                ))
            }
        };
        w("relevance_weight", self.relevance_weight)?;
        w("business_weight", self.business_weight)?;
        if self.relevance_weight + self.business_weight <= 0.0 {
            return Err(Error::invalid(
                "weights",
                "relevance and business weights sum to 0",
            ));
        }
        if !(0.0..=1.0).contains(&self.margin_share) {
            return Err(Error::invalid("margin_share", "outside [0, 1]"));
        }
        for &(_, v) in &self.layer_weights {
            w("layer_weights", v)?;
        }
        if self.k == 0 || self.k > RECOMMEND_MAX {
            return Err(Error::invalid(
                "k",
                format!("{} is outside 1..={RECOMMEND_MAX}", self.k),
            ));
        }
        Ok(())
    }

    fn layer_weight(&self, layer: Layer) -> f32 {
        self.layer_weights
            .iter()
            .find(|(l, _)| *l == layer)
            .map_or(0.0, |(_, w)| *w)
    }
}

/// A layer's score for a candidate: as the layer gave it, and normalized within the layer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LayerScore {
    /// The layer.
    pub layer: Layer,
    /// The layer's own score.
    pub raw: f32,
    /// Min-max normalized within the layer's candidates, in `[0, 1]`.
    pub normalized: f32,
}

/// Why a product was recommended, and with which numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    /// The layers that proposed it.
    pub layers: Vec<LayerScore>,
    /// Relevance, normalized across candidates, in `[0, 1]`.
    pub relevance: f32,
    /// The margin's score, in `[0, 1]`.
    pub margin: f32,
    /// The stock pressure's score, in `[0, 1]`.
    pub stock_pressure: f32,
    /// The business signal, normalized across candidates, in `[0, 1]`.
    pub business: f32,
}

/// One recommendation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    /// The product.
    pub sku: Sku,
    /// `(wr·relevance + wb·business) / (wr + wb)`, in `[0, 1]`.
    pub score: f32,
    /// How the score came about.
    pub explanation: Explanation,
}

/// Min-max normalization; all equal → all 1.
fn normalize(values: &[f64]) -> Vec<f32> {
    let (lo, hi) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    #[allow(clippy::cast_possible_truncation, reason = "scores in [0, 1] are f32")]
    values
        .iter()
        .map(|&v| {
            if hi > lo {
                ((v - lo) / (hi - lo)) as f32
            } else {
                1.0
            }
        })
        .collect()
}

/// Blends the layers' candidates for a request.
///
/// Candidates in `exclude` (the anchor, what is in the cart or was bought), unknown to
/// `facts`, out of stock or retired are dropped before anything is normalized.
///
/// # Errors
/// As [`BlendConfig::check`]; [`Error::Invalid`] for more than [`CANDIDATES_MAX`] candidates
/// or a score that is not finite.
///
/// ```
/// use std::collections::{HashMap, HashSet};
/// use commerce_core::Sku;
/// use recs::Scored;
/// use recs::blend::{blend, BlendConfig, Layer, ProductFacts};
/// let sku = |s: &str| Sku::new(s).unwrap();
/// let fact = |s: &str, margin, in_stock| ProductFacts {
///     sku: sku(s), brand: None, category: None, in_stock, retired: false,
///     margin_bps: Some(margin), stock_pressure_bps: 0,
/// };
/// let facts: HashMap<Sku, ProductFacts> =
///     [fact("TEA", 1_000, true), fact("SPOON", 6_000, true), fact("SUGAR", 9_000, false)]
///         .into_iter().map(|f| (f.sku.clone(), f)).collect();
/// let bought_with_mug = [
///     Scored::new(sku("TEA"), 10.0), Scored::new(sku("SPOON"), 8.0), Scored::new(sku("SUGAR"), 5.0),
/// ];
/// let recs = blend(&[(Layer::CoPurchase, &bought_with_mug[..])], &facts, &HashSet::new(),
///                  &BlendConfig::default())?;
/// // SUGAR is out of stock; SPOON's margin outweighs TEA's lead in relevance: 0.7·0 + 0.3·1.
/// let order: Vec<&str> = recs.iter().map(|r| r.sku.as_str()).collect();
/// assert_eq!(order, ["TEA", "SPOON"]);
/// assert_eq!(recs[0].score, 0.7);
/// assert_eq!(recs[1].score, 0.3);
/// assert_eq!(recs[0].explanation.layers[0].layer, Layer::CoPurchase);
/// # Ok::<(), recs::Error>(())
/// ```
pub fn blend(
    sources: &[(Layer, &[Scored])],
    facts: &HashMap<Sku, ProductFacts>,
    exclude: &HashSet<Sku>,
    config: &BlendConfig,
) -> Result<Vec<Recommendation>> {
    config.check()?;
    let total: usize = sources.iter().map(|(_, s)| s.len()).sum();
    if total > CANDIDATES_MAX {
        return Err(Error::invalid(
            "candidates",
            format!("{total} candidates, at most {CANDIDATES_MAX}"),
        ));
    }
    // Candidates in first-seen order, each with its facts (looked up once) and layer scores.
    struct Candidate<'a> {
        sku: &'a Sku,
        facts: &'a ProductFacts,
        layers: Vec<LayerScore>,
    }
    let mut cands: Vec<Candidate<'_>> = Vec::new();
    let mut index: HashMap<&Sku, usize> = HashMap::new();
    let mut kept: Vec<(&Sku, &ProductFacts, f32)> = Vec::new();
    let mut raw: Vec<f64> = Vec::new();
    for (layer, list) in sources {
        if let Some(bad) = list.iter().find(|s| !s.score.is_finite()) {
            return Err(Error::invalid(
                "score",
                format!("score of {} is not finite", bad.sku),
            ));
        }
        kept.clear();
        kept.extend(list.iter().filter_map(|s| {
            let f = facts.get(&s.sku)?;
            (f.in_stock && !f.retired && !exclude.contains(&s.sku)).then_some((&s.sku, f, s.score))
        }));
        raw.clear();
        raw.extend(kept.iter().map(|k| f64::from(k.2)));
        let norm = normalize(&raw);
        for (&(sku, f, score), n) in kept.iter().zip(norm) {
            let at = *index.entry(sku).or_insert_with(|| {
                cands.push(Candidate {
                    sku,
                    facts: f,
                    layers: Vec::with_capacity(2),
                });
                cands.len() - 1
            });
            if let Some(c) = cands.get_mut(at)
                && c.layers.iter().all(|l| l.layer != *layer)
            {
                c.layers.push(LayerScore {
                    layer: *layer,
                    raw: score,
                    normalized: n,
                });
            }
        }
    }
    let weight_sum: f64 = {
        let mut seen: Vec<Layer> = sources.iter().map(|(l, _)| *l).collect();
        seen.sort();
        seen.dedup();
        seen.iter()
            .map(|l| f64::from(config.layer_weight(*l)))
            .sum()
    };
    let relevance_raw: Vec<f64> = cands
        .iter()
        .map(|c| {
            let sum: f64 = c
                .layers
                .iter()
                .map(|l| f64::from(config.layer_weight(l.layer)) * f64::from(l.normalized))
                .sum();
            if weight_sum > 0.0 {
                sum / weight_sum
            } else {
                0.0
            }
        })
        .collect();
    let relevance = normalize(&relevance_raw);
    // Margins are integers; f64 holds every i32 exactly, and a missing one counts lowest.
    let margins: Vec<f64> = cands
        .iter()
        .map(|c| c.facts.margin_bps.map_or(f64::from(i32::MIN), f64::from))
        .collect();
    let pressures: Vec<f64> = cands
        .iter()
        .map(|c| f64::from(c.facts.stock_pressure_bps))
        .collect();
    let margin = normalize(&margins);
    let pressure = normalize(&pressures);
    let share = f64::from(config.margin_share);
    let business_raw: Vec<f64> = margin
        .iter()
        .zip(&pressure)
        .map(|(&m, &p)| share * f64::from(m) + (1.0 - share) * f64::from(p))
        .collect();
    let business = normalize(&business_raw);
    let (wr, wb) = (config.relevance_weight, config.business_weight);
    let at = |v: &[f32], n: usize| v.get(n).copied().unwrap_or(0.0);
    let scores: Vec<f32> = (0..cands.len())
        .map(|n| (wr * at(&relevance, n) + wb * at(&business, n)) / (wr + wb))
        .collect();
    let mut order: Vec<usize> = (0..cands.len()).collect();
    order.sort_by(|&a, &b| {
        at(&scores, b)
            .total_cmp(&at(&scores, a))
            .then_with(|| at(&relevance, b).total_cmp(&at(&relevance, a)))
            .then_with(|| {
                let name = |n: usize| cands.get(n).map(|c| c.sku.as_str());
                name(a).cmp(&name(b))
            })
    });
    // Diversity: greedily keep the best, at most so many per brand and per category.
    let mut brands: HashMap<&str, usize> = HashMap::new();
    let mut categories: HashMap<&str, usize> = HashMap::new();
    let over = |map: &HashMap<&str, usize>, key: Option<&str>, max: Option<usize>| matches!((key, max), (Some(k), Some(m)) if map.get(k).copied().unwrap_or(0) >= m);
    let mut out = Vec::with_capacity(config.k);
    for n in order {
        if out.len() == config.k {
            break;
        }
        let Some(c) = cands.get(n) else { continue };
        let brand = c.facts.brand.as_deref();
        let category = c.facts.category.as_deref();
        if over(&brands, brand, config.brand_max)
            || over(&categories, category, config.category_max)
        {
            continue;
        }
        if let Some(b) = brand {
            *brands.entry(b).or_default() += 1;
        }
        if let Some(cat) = category {
            *categories.entry(cat).or_default() += 1;
        }
        out.push(Recommendation {
            sku: c.sku.clone(),
            score: at(&scores, n),
            explanation: Explanation {
                layers: c.layers.clone(),
                relevance: at(&relevance, n),
                margin: at(&margin, n),
                stock_pressure: at(&pressure, n),
                business: at(&business, n),
            },
        });
    }
    Ok(out)
}

/// Who is looking at which product page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// The product on the page.
    pub anchor: Sku,
    /// The browsing session.
    pub session: SessionId,
    /// The signed-in customer, if any.
    pub user: Option<UserId>,
    /// What is in the cart and what the customer bought: never recommended.
    pub exclude: HashSet<Sku>,
}

/// The product page's recommendations: the anchor's co-purchase list and the user's
/// personalized list from `lists`, the session's recently viewed products (newest scoring
/// highest) from `views`, blended. The anchor itself is never recommended.
///
/// # Errors
/// [`Error::Port`] when a store fails; as [`blend`].
pub async fn product_page(
    request: &PageRequest,
    lists: &dyn TopKStore,
    views: &dyn RecentlyViewedStore,
    facts: &HashMap<Sku, ProductFacts>,
    config: &BlendConfig,
) -> Result<Vec<Recommendation>> {
    let mut keys = vec![ListKey::Item(request.anchor.clone())];
    if let Some(u) = &request.user {
        keys.push(ListKey::User(u.clone()));
    }
    let got = lists.get_many(&keys).await?;
    let mut got = got.into_iter();
    let co: Vec<Scored> = got
        .next()
        .flatten()
        .map(|l| l.items().to_vec())
        .unwrap_or_default();
    let personal: Vec<Scored> = got
        .next()
        .flatten()
        .map(|l| l.items().to_vec())
        .unwrap_or_default();
    let viewed: Vec<Viewed> = views.recent(&request.session, RECENTLY_VIEWED_MAX).await?;
    let recent = recency_scores(&viewed);
    let mut exclude = request.exclude.clone();
    exclude.insert(request.anchor.clone());
    blend(
        &[
            (Layer::CoPurchase, &co[..]),
            (Layer::Personalized, &personal[..]),
            (Layer::RecentlyViewed, &recent[..]),
        ],
        facts,
        &exclude,
        config,
    )
}

/// Recently viewed products scored by recency: the newest `n`, the oldest 1.
fn recency_scores(viewed: &[Viewed]) -> Vec<Scored> {
    let n = viewed.len();
    let mut out: Vec<Scored> = viewed
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let rank = u16::try_from(n - i).unwrap_or(u16::MAX);
            Scored::new(v.sku.clone(), f32::from(rank))
        })
        .collect();
    out.sort_by(rank_order);
    out
}
