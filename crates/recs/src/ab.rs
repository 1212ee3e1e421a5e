//! A/B experiments: stable weighted assignment by hashing (user, experiment), exposure and
//! outcome logging through an [`ExperimentLog`], and the evaluation of an experiment from its
//! log: click-through and conversion per arm with Wilson score intervals.
//!
//! The hash is FNV-1a (64 bits) of `experiment`, a 0 byte and `user`, finished with the
//! SplitMix64 mixer: fixed here, so an assignment never changes across releases, platforms
//! or processes.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use commerce_core::{EventId, UserId};
use serde::{Deserialize, Serialize};

use crate::limits::{ARMS_MAX, EXPERIMENT_BATCH_MAX, EXPERIMENT_RECORDS_MAX};
use crate::{
    ArmName, Error, ExperimentEvent, ExperimentId, ExperimentLog, ExperimentRecord, Result,
};

/// An experiment: its id and its arms with integer weights.
///
/// ```
/// use commerce_core::UserId;
/// use recs::ab::Experiment;
/// use recs::{ArmName, ExperimentId};
/// let exp = Experiment::new(ExperimentId::new("blend-70-30")?, vec![
///     (ArmName::new("control")?, 1),
///     (ArmName::new("treatment")?, 1),
/// ])?;
/// let ada = UserId::new("ada")?;
/// assert_eq!(exp.assign(&ada), exp.assign(&ada)); // stable
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Experiment {
    id: ExperimentId,
    arms: Vec<(ArmName, u32)>,
    total: u64,
    last: ArmName,
}

impl Experiment {
    /// An experiment with `arms` and their weights (a user lands in an arm with probability
    /// weight ÷ total).
    ///
    /// # Errors
    /// [`Error::Invalid`] (field `arms`) for no arm, more than [`ARMS_MAX`], an arm twice, or
    /// weights summing to 0.
    pub fn new(id: ExperimentId, arms: Vec<(ArmName, u32)>) -> Result<Experiment> {
        let Some(last) = arms.last().map(|(a, _)| a.clone()) else {
            return Err(Error::invalid("arms", format!("1 to {ARMS_MAX} arms")));
        };
        if arms.len() > ARMS_MAX {
            return Err(Error::invalid("arms", format!("1 to {ARMS_MAX} arms")));
        }
        let names: HashSet<&ArmName> = arms.iter().map(|(a, _)| a).collect();
        if names.len() != arms.len() {
            return Err(Error::invalid("arms", "an arm is named twice"));
        }
        let total: u64 = arms.iter().map(|(_, w)| u64::from(*w)).sum();
        if total == 0 {
            return Err(Error::invalid("arms", "weights sum to 0"));
        }
        Ok(Experiment {
            id,
            arms,
            total,
            last,
        })
    }

    /// The experiment's id.
    pub fn id(&self) -> &ExperimentId {
        &self.id
    }

    /// The arms and weights.
    pub fn arms(&self) -> &[(ArmName, u32)] {
        &self.arms
    }

    /// The arm of `user`: the same for the same (user, experiment), anywhere.
    pub fn assign(&self, user: &UserId) -> &ArmName {
        let h = bucket_hash(&self.id, user);
        // Bucket in [0, total) without modulo bias worth speaking of (total ≤ 16 · 2^32).
        let mut bucket = h % self.total;
        for (arm, w) in &self.arms {
            let w = u64::from(*w);
            if bucket < w {
                return arm;
            }
            bucket -= w;
        }
        // Not reached (the buckets sum to the total); the last arm keeps the function total.
        &self.last
    }

    /// Logs that `user` saw their arm (`id` makes a retried log harmless); returns the arm.
    ///
    /// # Errors
    /// [`Error::Port`] when the log fails.
    pub async fn expose(
        &self,
        log: &dyn ExperimentLog,
        id: EventId,
        user: &UserId,
        at: DateTime<Utc>,
    ) -> Result<ArmName> {
        let arm = self.assign(user).clone();
        log.append(&[ExperimentRecord {
            id,
            experiment: self.id.clone(),
            user: user.clone(),
            at,
            event: ExperimentEvent::Exposure { arm: arm.clone() },
        }])
        .await?;
        Ok(arm)
    }

    /// Logs an outcome (a click or a conversion) of `user`.
    ///
    /// # Errors
    /// [`Error::Invalid`] for an exposure (use [`Experiment::expose`]); [`Error::Port`].
    pub async fn record_outcome(
        &self,
        log: &dyn ExperimentLog,
        id: EventId,
        user: &UserId,
        at: DateTime<Utc>,
        event: ExperimentEvent,
    ) -> Result<()> {
        if matches!(event, ExperimentEvent::Exposure { .. }) {
            return Err(Error::invalid("event", "an exposure is logged by expose"));
        }
        log.append(&[ExperimentRecord {
            id,
            experiment: self.id.clone(),
            user: user.clone(),
            at,
            event,
        }])
        .await?;
        Ok(())
    }
}

/// The stable 64-bit hash of (experiment, user).
pub fn bucket_hash(experiment: &ExperimentId, user: &UserId) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let bytes = experiment
        .as_str()
        .bytes()
        .chain(std::iter::once(0))
        .chain(user.as_str().bytes());
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut z = h.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A proportion with its 95 % Wilson score interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rate {
    /// Successes.
    pub successes: u64,
    /// Trials.
    pub trials: u64,
    /// successes ÷ trials (0 without trials).
    pub rate: f64,
    /// Lower bound of the 95 % Wilson interval.
    pub low: f64,
    /// Upper bound.
    pub high: f64,
}

impl Rate {
    /// The rate of `successes` in `trials` with its Wilson interval (z = 1.96); `[0, 1]`
    /// without trials.
    ///
    /// ```
    /// let r = recs::ab::Rate::wilson(50, 100);
    /// assert_eq!(r.rate, 0.5);
    /// assert!((r.low - 0.4038).abs() < 1e-4 && (r.high - 0.5962).abs() < 1e-4);
    /// ```
    #[allow(clippy::cast_precision_loss, reason = "counts far below 2^53")]
    pub fn wilson(successes: u64, trials: u64) -> Rate {
        if trials == 0 {
            return Rate {
                successes,
                trials,
                rate: 0.0,
                low: 0.0,
                high: 1.0,
            };
        }
        let n = trials as f64;
        let p = successes.min(trials) as f64 / n;
        let z = 1.96f64;
        let z2 = z * z;
        let denom = 1.0 + z2 / n;
        let center = (p + z2 / (2.0 * n)) / denom;
        let half = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denom;
        Rate {
            successes,
            trials,
            rate: p,
            low: (center - half).max(0.0),
            high: (center + half).min(1.0),
        }
    }
}

/// One arm's results: users exposed, the share who clicked, the share who converted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmReport {
    /// The arm.
    pub arm: ArmName,
    /// Distinct users exposed.
    pub exposed: u64,
    /// Exposed users who clicked a recommendation after their first exposure.
    pub click_through: Rate,
    /// Exposed users who bought after their first exposure.
    pub conversion: Rate,
}

/// Evaluates an experiment from its log: a user counts in the arm of their first exposure,
/// and only outcomes at or after that exposure count (each user once per metric). Outcomes
/// of users never exposed are ignored.
///
/// # Errors
/// [`Error::Port`] when the log fails; [`Error::Invalid`] for a log over
/// [`EXPERIMENT_RECORDS_MAX`] records.
pub async fn evaluate(
    log: &dyn ExperimentLog,
    experiment: &ExperimentId,
) -> Result<Vec<ArmReport>> {
    let mut first: HashMap<UserId, (DateTime<Utc>, ArmName)> = HashMap::new();
    let mut outcomes: Vec<ExperimentRecord> = Vec::new();
    let mut from = 0u64;
    let mut read = 0usize;
    loop {
        let page = log.read(experiment, from, EXPERIMENT_BATCH_MAX).await?;
        if page.is_empty() {
            break;
        }
        read += page.len();
        if read > EXPERIMENT_RECORDS_MAX {
            return Err(Error::invalid(
                "log",
                format!("over {EXPERIMENT_RECORDS_MAX} records"),
            ));
        }
        for rec in page {
            from = rec.seq + 1;
            let r = rec.record;
            match &r.event {
                ExperimentEvent::Exposure { arm } => {
                    let e = first.entry(r.user.clone()).or_insert((r.at, arm.clone()));
                    if r.at < e.0 {
                        *e = (r.at, arm.clone());
                    }
                }
                _ => outcomes.push(r),
            }
        }
    }
    let mut clicked: HashSet<&UserId> = HashSet::new();
    let mut converted: HashSet<&UserId> = HashSet::new();
    for r in &outcomes {
        let Some((at, _)) = first.get(&r.user) else {
            continue;
        };
        if r.at < *at {
            continue;
        }
        match r.event {
            ExperimentEvent::Click { .. } => clicked.insert(&r.user),
            ExperimentEvent::Conversion { .. } => converted.insert(&r.user),
            ExperimentEvent::Exposure { .. } => false,
        };
    }
    let mut per_arm: BTreeMap<ArmName, (u64, u64, u64)> = BTreeMap::new();
    for (user, (_, arm)) in &first {
        let e = per_arm.entry(arm.clone()).or_default();
        e.0 += 1;
        e.1 += u64::from(clicked.contains(user));
        e.2 += u64::from(converted.contains(user));
    }
    Ok(per_arm
        .into_iter()
        .map(|(arm, (n, c, v))| ArmReport {
            arm,
            exposed: n,
            click_through: Rate::wilson(c, n),
            conversion: Rate::wilson(v, n),
        })
        .collect())
}
