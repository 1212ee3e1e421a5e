//! Ranking after BM25: a bounded business blend, then an optional learned re-ranker.
//!
//! The text score of a candidate splits into a *tier* (how well the words matched: exact,
//! through a typo or prefix, or by SKU) and its BM25 relevance within the tier. Later stages
//! only reorder candidates of the same tier, so nothing a merchant or a model does can put a
//! typo match above an exact one. Within a tier the business blend multiplies relevance by
//! `1 + b`, where `b` is clamped to `[-cap, cap]`: near-ties reorder, but a candidate whose
//! relevance is more than `(1 + cap) / (1 - cap)` times another's always stays above it.
// Scores are floats by nature; nothing here touches money.
#![allow(clippy::float_arithmetic)]

use std::collections::BTreeMap;
use std::fmt::Debug;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Weights of the business signals and the cap on their combined effect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BusinessWeights {
    /// Weight of `ln(1 + popularity) / ln(1 + popularity_ref)` (itself capped at 1).
    pub popularity: f64,
    /// Popularity at which the popularity signal saturates.
    pub popularity_ref: u64,
    /// Added for a sponsored product.
    pub sponsored: f64,
    /// Weight of the margin as a fraction (25 % margin adds `0.25 * margin`).
    pub margin: f64,
    /// Weight of stock pressure as a fraction.
    pub stock_pressure: f64,
    /// Bound on the combined boost: `b` is clamped to `[-cap, cap]`; below 0.5.
    pub cap: f64,
    /// How many of the best text matches are re-ranked; the rest keep BM25 order.
    pub rerank_depth: usize,
}

impl Default for BusinessWeights {
    fn default() -> Self {
        BusinessWeights {
            popularity: 0.06,
            popularity_ref: 10_000,
            sponsored: 0.04,
            margin: 0.04,
            stock_pressure: 0.02,
            cap: 0.1,
            rerank_depth: 200,
        }
    }
}

impl BusinessWeights {
    /// No business signals at all: pure text relevance.
    pub fn none() -> Self {
        BusinessWeights {
            popularity: 0.0,
            sponsored: 0.0,
            margin: 0.0,
            stock_pressure: 0.0,
            cap: 0.0,
            ..BusinessWeights::default()
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let weights = [
            self.popularity,
            self.sponsored,
            self.margin,
            self.stock_pressure,
        ];
        if weights.iter().any(|w| !w.is_finite() || *w < 0.0) {
            return Err(Error::invalid("business", "weights must be finite and ≥ 0"));
        }
        if !(0.0..0.5).contains(&self.cap) {
            return Err(Error::invalid("business.cap", "0 ≤ cap < 0.5"));
        }
        if self.rerank_depth == 0 || self.rerank_depth > crate::RESULT_WINDOW_MAX {
            return Err(Error::invalid(
                "business.rerank_depth",
                "1 to the result window",
            ));
        }
        Ok(())
    }

    /// The bounded boost `b` in `[-cap, cap]` for a product's signals.
    pub fn boost(&self, s: &Signals) -> f64 {
        let pop = if s.popularity == 0 {
            0.0
        } else {
            let r = (s.popularity as f64).ln_1p() / (self.popularity_ref.max(1) as f64).ln_1p();
            r.min(1.0)
        };
        let margin = (s.margin_bps as f64 / 10_000.0).clamp(-1.0, 1.0);
        let pressure = (s.stock_pressure_bps as f64 / 10_000.0).clamp(0.0, 1.0);
        let b = self.popularity * pop
            + if s.sponsored { self.sponsored } else { 0.0 }
            + self.margin * margin
            + self.stock_pressure * pressure;
        b.clamp(-self.cap, self.cap)
    }
}

/// A product's business signals as the index holds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Signals {
    /// Units sold recently.
    pub popularity: u64,
    /// Paid placement.
    pub sponsored: bool,
    /// Margin in basis points.
    pub margin_bps: i64,
    /// Stock pressure in basis points.
    pub stock_pressure_bps: u64,
    /// Rating in hundredths of a star.
    pub rating_centi: Option<u64>,
    /// Reviews behind the rating.
    pub reviews: u64,
    /// Known to be in stock.
    pub in_stock: bool,
}

/// What a re-ranker sees of a candidate.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Features {
    /// BM25 relevance within the candidate's tier (1 when browsing).
    pub relevance: f64,
    /// The bounded business boost.
    pub business: f64,
    /// `ln(1 + popularity)`.
    pub popularity: f64,
    /// Stars, 0 when unrated.
    pub rating: f64,
    /// `ln(1 + reviews)`.
    pub reviews: f64,
    /// 1 when sponsored.
    pub sponsored: f64,
    /// Margin as a fraction.
    pub margin: f64,
    /// Stock pressure as a fraction.
    pub stock_pressure: f64,
    /// 1 when known in stock.
    pub in_stock: f64,
}

impl Features {
    /// Feature names, as linear models name their weights.
    pub const NAMES: [&'static str; 9] = [
        "relevance",
        "business",
        "popularity",
        "rating",
        "reviews",
        "sponsored",
        "margin",
        "stock_pressure",
        "in_stock",
    ];

    /// The features of a candidate.
    pub fn new(relevance: f64, business: f64, s: &Signals) -> Features {
        Features {
            relevance,
            business,
            popularity: (s.popularity as f64).ln_1p(),
            rating: s.rating_centi.map_or(0.0, |r| r as f64 / 100.0),
            reviews: (s.reviews as f64).ln_1p(),
            sponsored: if s.sponsored { 1.0 } else { 0.0 },
            margin: s.margin_bps as f64 / 10_000.0,
            stock_pressure: s.stock_pressure_bps as f64 / 10_000.0,
            in_stock: if s.in_stock { 1.0 } else { 0.0 },
        }
    }

    /// The values in [`Features::NAMES`] order.
    pub fn values(&self) -> [f64; 9] {
        [
            self.relevance,
            self.business,
            self.popularity,
            self.rating,
            self.reviews,
            self.sponsored,
            self.margin,
            self.stock_pressure,
            self.in_stock,
        ]
    }
}

/// A learned re-ranker: a score per candidate; higher ranks first within a tier.
pub trait Reranker: Send + Sync + Debug {
    /// The candidate's score.
    fn score(&self, features: &Features) -> f64;
}

/// A linear model: `bias + Σ weight[name] · feature[name]`.
///
/// ```
/// use search::{Features, LinearModel, Reranker};
/// let model = LinearModel::from_json(r#"{"bias": 0.0, "weights": {"relevance": 1.0, "rating": 0.5}}"#)?;
/// let f = Features { relevance: 2.0, rating: 4.0, ..Features::default() };
/// assert_eq!(model.score(&f), 4.0);
/// # Ok::<(), search::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearModel {
    /// Constant term (does not change the order, kept for calibration).
    pub bias: f64,
    /// Weight per feature name; a missing name weighs 0.
    pub weights: BTreeMap<String, f64>,
}

impl LinearModel {
    /// Reads a model from JSON.
    ///
    /// # Errors
    /// [`Error::Model`] for malformed JSON, an unknown feature or a non-finite weight.
    pub fn from_json(text: &str) -> Result<LinearModel> {
        let model: LinearModel =
            serde_json::from_str(text).map_err(|e| Error::Model(e.to_string()))?;
        for (name, w) in &model.weights {
            if !Features::NAMES.contains(&name.as_str()) {
                return Err(Error::Model(format!("unknown feature {name:?}")));
            }
            if !w.is_finite() {
                return Err(Error::Model(format!("weight of {name:?} is not finite")));
            }
        }
        if !model.bias.is_finite() {
            return Err(Error::Model("bias is not finite".into()));
        }
        Ok(model)
    }

    /// The model as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    fn dense(&self) -> [f64; 9] {
        let mut out = [0.0; 9];
        for (i, name) in Features::NAMES.iter().enumerate() {
            out[i] = self.weights.get(*name).copied().unwrap_or(0.0);
        }
        out
    }
}

impl Reranker for LinearModel {
    fn score(&self, f: &Features) -> f64 {
        self.bias
            + self
                .dense()
                .iter()
                .zip(f.values())
                .map(|(w, x)| w * x)
                .sum::<f64>()
    }
}

/// What a shopper did with a result, in increasing order of value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Interaction {
    /// Shown, nothing more.
    Impression,
    /// Clicked.
    Click,
    /// Added to the cart.
    AddToCart,
    /// Bought.
    Purchase,
}

/// One line of the interaction log the trainer reads. Impressions carry the features the
/// ranker saw (feature logging); later clicks, carts and purchases refer back to them by
/// `(query_id, product_id)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEvent {
    /// One search (one shown result list).
    pub query_id: String,
    /// The product.
    pub product_id: String,
    /// What happened.
    pub interaction: Interaction,
    /// The features, on impressions.
    pub features: Option<Features>,
}

/// Trainer settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainConfig {
    /// Passes over the preference pairs.
    pub epochs: usize,
    /// Step size.
    pub learning_rate: f64,
    /// L2 penalty.
    pub l2: f64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 30,
            learning_rate: 0.05,
            l2: 1e-4,
        }
    }
}

/// Trains a [`LinearModel`] from an interaction log with a pairwise logistic loss (RankNet):
/// within each search, a purchased result should outscore a carted one, a carted one a clicked
/// one, and a clicked one a result only shown. Features are standardized for training and the
/// weights mapped back, so the model applies to raw features. Deterministic for a given log.
///
/// # Errors
/// [`Error::Model`] when the log yields no preference pair (nothing to learn from).
pub fn train_linear(log: &[LogEvent], config: TrainConfig) -> Result<LinearModel> {
    // Join: per search, per product, its features and best interaction.
    type Joined<'a> = BTreeMap<&'a str, (Option<[f64; 9]>, Interaction)>;
    let mut searches: BTreeMap<&str, Joined<'_>> = BTreeMap::new();
    for e in log {
        let slot = searches
            .entry(e.query_id.as_str())
            .or_default()
            .entry(e.product_id.as_str())
            .or_insert((None, Interaction::Impression));
        if let Some(f) = &e.features {
            slot.0 = Some(f.values());
        }
        slot.1 = slot.1.max(e.interaction);
    }
    let mut pairs: Vec<([f64; 9], [f64; 9])> = Vec::new();
    let mut all: Vec<[f64; 9]> = Vec::new();
    for results in searches.values() {
        let rows: Vec<([f64; 9], Interaction)> = results
            .values()
            .filter_map(|(f, i)| f.map(|f| (f, *i)))
            .collect();
        all.extend(rows.iter().map(|r| r.0));
        for a in &rows {
            for b in &rows {
                if a.1 > b.1 {
                    pairs.push((a.0, b.0));
                }
            }
        }
    }
    if pairs.is_empty() {
        return Err(Error::Model(
            "the log holds no preference pair (no search with both a better and a worse result)"
                .into(),
        ));
    }
    let n = all.len() as f64;
    let mut mean = [0.0; 9];
    let mut std = [0.0; 9];
    for row in &all {
        for i in 0..9 {
            mean[i] += row[i] / n;
        }
    }
    for row in &all {
        for i in 0..9 {
            std[i] += (row[i] - mean[i]).powi(2) / n;
        }
    }
    for s in &mut std {
        *s = if *s > 1e-12 { s.sqrt() } else { 1.0 };
    }
    let mut w = [0.0; 9];
    for _ in 0..config.epochs {
        for (better, worse) in &pairs {
            let mut diff = [0.0; 9];
            let mut margin = 0.0;
            for i in 0..9 {
                diff[i] = (better[i] - worse[i]) / std[i];
                margin += w[i] * diff[i];
            }
            // d/dw log(1 + e^{-margin}) = -σ(-margin) · diff
            let g = 1.0 / (1.0 + margin.exp());
            for i in 0..9 {
                w[i] += config.learning_rate * (g * diff[i] - config.l2 * w[i]);
            }
        }
    }
    let mut weights = BTreeMap::new();
    let mut bias = 0.0;
    for (i, name) in Features::NAMES.iter().enumerate() {
        let raw = w[i] / std[i];
        bias -= raw * mean[i];
        weights.insert((*name).to_owned(), raw);
    }
    Ok(LinearModel { bias, weights })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_boost_is_capped_both_ways() {
        let w = BusinessWeights {
            popularity: 1.0,
            sponsored: 1.0,
            margin: 1.0,
            stock_pressure: 1.0,
            cap: 0.2,
            ..BusinessWeights::default()
        };
        let rich = Signals {
            popularity: u64::MAX,
            sponsored: true,
            margin_bps: 9_000,
            stock_pressure_bps: 10_000,
            ..Signals::default()
        };
        assert_eq!(w.boost(&rich), 0.2);
        let loss = Signals {
            margin_bps: -10_000,
            ..Signals::default()
        };
        assert_eq!(w.boost(&loss), -0.2);
        assert_eq!(BusinessWeights::none().boost(&rich), 0.0);
    }

    #[test]
    fn a_model_naming_an_unknown_feature_is_refused() {
        let err = LinearModel::from_json(r#"{"bias":0,"weights":{"colour":1}}"#).unwrap_err();
        assert!(matches!(err, Error::Model(m) if m.contains("colour")));
        assert!(LinearModel::from_json("{").is_err());
    }

    #[test]
    fn the_trainer_learns_what_shoppers_prefer() {
        // Shoppers buy the better-rated product regardless of popularity.
        let mut log = Vec::new();
        for q in 0..40 {
            for p in 0..5 {
                let stars = (q * 7 + p * 3) % 5;
                let rating = f64::from(stars);
                let features = Features {
                    relevance: 1.0,
                    rating,
                    popularity: f64::from((p * 11 + q) % 7),
                    ..Features::default()
                };
                let (qid, pid) = (format!("q{q}"), format!("p{p}"));
                log.push(LogEvent {
                    query_id: qid.clone(),
                    product_id: pid.clone(),
                    interaction: Interaction::Impression,
                    features: Some(features),
                });
                let outcome = match stars {
                    4 => Some(Interaction::Purchase),
                    3 => Some(Interaction::AddToCart),
                    2 => Some(Interaction::Click),
                    _ => None,
                };
                if let Some(i) = outcome {
                    log.push(LogEvent {
                        query_id: qid,
                        product_id: pid,
                        interaction: i,
                        features: None,
                    });
                }
            }
        }
        let model = train_linear(&log, TrainConfig::default()).unwrap();
        let rating = model.weights["rating"];
        let popularity = model.weights["popularity"];
        assert!(rating > 0.5, "rating weight {rating}");
        assert!(
            popularity.abs() < rating / 5.0,
            "popularity weight {popularity}"
        );
        let again = LinearModel::from_json(&model.to_json()).unwrap();
        assert_eq!(again, model);
        assert!(train_linear(&log[..1], TrainConfig::default()).is_err());
    }
}
