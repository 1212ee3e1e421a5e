//! The store ports of the recommendations engine and the values they hold.
//!
//! Four small ports, each with an in-memory implementation ([`crate::memory`]) and a
//! conformance suite (feature `testkit`) that every implementation passes:
//!
//! | port | holds | written by | read by |
//! |---|---|---|---|
//! | [`TopKStore`] | ranked lists: an item's "bought together", a user's personalized picks | the co-purchase build and its incremental update, an ALS batch | the product page |
//! | [`RecentlyViewedStore`] | per session, the last products viewed (bounded) | the feed, from `ProductViewed` | the product page |
//! | [`BackInStockStore`] | who waits for which SKU, and what came back for whom | shoppers (watch), the feed (`BackInStock`) | the product page, notifications |
//! | [`ExperimentLog`] | A/B exposures and outcomes, append-only | the storefront | [`crate::ab::evaluate`] |
//!
//! Every write is idempotent (a retried or redelivered write changes nothing more), so the
//! feed can apply the event log at least once without a transaction across stores.

use std::fmt::Debug;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use commerce_core::{EventId, OrderId, PortResult, SessionId, Sku, UserId};
use serde::{Deserialize, Serialize};

use crate::limits::TOPK_MAX;
use crate::{ArmName, Error, ExperimentId, Result};

/// One item of a ranked list and its score (the producer's scale: a co-purchase score, an
/// ALS dot product).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scored {
    /// The item.
    pub sku: Sku,
    /// Its score; finite.
    pub score: f32,
}

impl Scored {
    /// `sku` with `score`.
    pub fn new(sku: Sku, score: f32) -> Scored {
        Scored { sku, score }
    }
}

/// What a ranked list belongs to: an item (its "bought together" list) or a user (their
/// personalized list). Stores key on [`ListKey::storage_key`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ListKey {
    /// The co-purchase list of an item.
    Item(Sku),
    /// The personalized list of a user.
    User(UserId),
}

impl ListKey {
    /// The key as one string, `item:{sku}` or `user:{id}` (ids never contain a second meaning
    /// for the prefix, so the two namespaces never collide).
    ///
    /// ```
    /// use commerce_core::Sku;
    /// use recs::ListKey;
    /// assert_eq!(ListKey::Item(Sku::new("MUG-1")?).storage_key(), "item:MUG-1");
    /// # Ok::<(), commerce_core::Error>(())
    /// ```
    pub fn storage_key(&self) -> String {
        match self {
            ListKey::Item(sku) => format!("item:{sku}"),
            ListKey::User(user) => format!("user:{user}"),
        }
    }
}

/// A ranked list: at most [`TOPK_MAX`] distinct items with finite scores, in descending score
/// order, ties by ascending SKU; and the `generation` that produced it (a build's log offset or
/// timestamp), so a store never replaces a list with an older one.
///
/// ```
/// use commerce_core::Sku;
/// use recs::{Scored, TopKList};
/// let s = |id: &str, score| Scored::new(Sku::new(id).unwrap(), score);
/// let list = TopKList::new(7, vec![s("B", 1.0), s("A", 3.0), s("C", 1.0)])?;
/// let order: Vec<&str> = list.items().iter().map(|x| x.sku.as_str()).collect();
/// assert_eq!(order, ["A", "B", "C"]);                         // by score, ties by SKU
/// assert!(TopKList::new(7, vec![s("A", f32::NAN)]).is_err()); // scores are finite
/// assert!(TopKList::new(7, vec![s("A", 1.0), s("A", 2.0)]).is_err()); // items are distinct
/// # Ok::<(), recs::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawTopKList", into = "RawTopKList")]
pub struct TopKList {
    generation: u64,
    items: Vec<Scored>,
}

#[derive(Serialize, Deserialize)]
struct RawTopKList {
    generation: u64,
    items: Vec<Scored>,
}

impl TryFrom<RawTopKList> for TopKList {
    type Error = Error;
    fn try_from(raw: RawTopKList) -> Result<TopKList> {
        TopKList::new(raw.generation, raw.items)
    }
}

impl From<TopKList> for RawTopKList {
    fn from(l: TopKList) -> RawTopKList {
        RawTopKList {
            generation: l.generation,
            items: l.items,
        }
    }
}

/// The canonical order of a ranked list: score descending, then SKU ascending.
pub(crate) fn rank_order(a: &Scored, b: &Scored) -> std::cmp::Ordering {
    b.score
        .total_cmp(&a.score)
        .then_with(|| a.sku.as_str().cmp(b.sku.as_str()))
}

impl TopKList {
    /// Sorts `items` into the canonical order and checks them.
    ///
    /// # Errors
    /// [`Error::Invalid`] (field `topk`) for more than [`TOPK_MAX`] items, a score that is not
    /// finite, or an item twice.
    pub fn new(generation: u64, mut items: Vec<Scored>) -> Result<TopKList> {
        if items.len() > TOPK_MAX {
            return Err(Error::invalid(
                "topk",
                format!("{} items, at most {TOPK_MAX}", items.len()),
            ));
        }
        if let Some(bad) = items.iter().find(|s| !s.score.is_finite()) {
            return Err(Error::invalid(
                "topk",
                format!("score of {} is not finite", bad.sku),
            ));
        }
        items.sort_by(rank_order);
        let mut skus: Vec<&str> = items.iter().map(|s| s.sku.as_str()).collect();
        skus.sort_unstable();
        if let Some(w) = skus.windows(2).find(|w| w[0] == w[1]) {
            return Err(Error::invalid("topk", format!("{} listed twice", w[0])));
        }
        Ok(TopKList { generation, items })
    }

    /// An empty list of `generation` (an item with no partners: writing it clears an older
    /// list).
    pub fn empty(generation: u64) -> TopKList {
        TopKList {
            generation,
            items: Vec::new(),
        }
    }

    /// The generation that produced the list.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The items, best first.
    pub fn items(&self) -> &[Scored] {
        &self.items
    }

    /// The list's length.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when the list has no item.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// Ranked lists by key: what the co-purchase build writes and the product page reads.
///
/// Contract (checked by `recs::topk_store_conformance!`):
/// - `put` writes each `(key, list)` of the batch whole or not at all: it replaces the stored
///   list unless that one has a **higher** generation (an equal generation replaces, so a
///   retried write is harmless); it returns how many lists it wrote. A batch is not atomic
///   across keys. More than [`crate::limits::TOPK_BATCH_MAX`] lists is `Invalid`.
/// - `get` returns exactly the list last written (items, scores bit for bit, order,
///   generation), or `None`; `get_many` answers each key in the order asked (same bound).
/// - `remove` deletes the list if its generation is at most `generation`, and says whether it
///   did; removing a missing key is `false`, not an error.
/// - Item and user keys are separate namespaces.
#[async_trait]
pub trait TopKStore: Send + Sync + Debug {
    /// Writes the lists not older than the stored ones; returns how many it wrote.
    async fn put(&self, lists: &[(ListKey, TopKList)]) -> PortResult<usize>;
    /// The list under `key`.
    async fn get(&self, key: &ListKey) -> PortResult<Option<TopKList>>;
    /// The lists under `keys`, in the order asked.
    async fn get_many(&self, keys: &[ListKey]) -> PortResult<Vec<Option<TopKList>>>;
    /// Removes the list under `key` if its generation is at most `generation`.
    async fn remove(&self, key: &ListKey, generation: u64) -> PortResult<bool>;
}

/// A product viewed in a session, or one that came back in stock for a user, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Viewed {
    /// The product's SKU.
    pub sku: Sku,
    /// When (stores keep millisecond precision).
    pub at: DateTime<Utc>,
}

/// Per session, the most recent products viewed: each SKU once, at its latest view.
///
/// Contract (checked by `recs::recently_viewed_conformance!`):
/// - A session keeps each SKU once, with the latest `at` recorded for it (a redelivered older
///   view changes nothing), and only the [`RecentlyViewedStore::capacity`] greatest by
///   `(at, sku)`; times compare at millisecond precision.
/// - `recent` lists a session newest first, ties by descending SKU, at most `limit`; an
///   unknown session is empty. Sessions are independent.
/// - `clear` forgets a session.
/// - A store may forget a session idle longer than its own expiry (a Redis TTL); the in-memory
///   store keeps sessions until cleared.
#[async_trait]
pub trait RecentlyViewedStore: Send + Sync + Debug {
    /// How many SKUs a session keeps (1 to [`crate::limits::RECENTLY_VIEWED_MAX`]).
    fn capacity(&self) -> usize;
    /// Records a view.
    async fn record(&self, session: &SessionId, view: &Viewed) -> PortResult<()>;
    /// The session's views, newest first, at most `limit`.
    async fn recent(&self, session: &SessionId, limit: usize) -> PortResult<Vec<Viewed>>;
    /// Forgets the session.
    async fn clear(&self, session: &SessionId) -> PortResult<()>;
}

/// Back-in-stock watchers: who waits for which SKU, and, once it is back, the arrivals each
/// user has not dismissed.
///
/// Contract (checked by `recs::back_in_stock_conformance!`):
/// - `watch` adds the user to the SKU's watchers: `true` if new, `false` if already watching.
///   A user watching [`crate::limits::WATCHES_PER_USER_MAX`] SKUs, or a SKU with
///   [`crate::limits::WATCHERS_PER_SKU_MAX`] watchers, is `Refused` and nothing changes.
/// - `unwatch` removes it (`false` if it was not there).
/// - `watchers` lists a SKU's watchers in ascending id order, at most `limit`.
/// - `back_in_stock(sku, at)` moves every watcher of the SKU to an arrival `(sku, at)` in
///   their list, stops their watching, and returns them in ascending order: atomically, so a
///   watcher is returned by exactly one call; a repeat (a redelivered event) finds no watcher
///   and returns nothing. A user's arrivals keep each SKU once (the latest) and the
///   [`crate::limits::ARRIVALS_PER_USER_MAX`] newest.
/// - `arrivals` lists a user's arrivals newest first (ties by descending SKU), at most `limit`;
///   `dismiss` removes one (`false` if absent).
#[async_trait]
pub trait BackInStockStore: Send + Sync + Debug {
    /// `user` waits for `sku`.
    async fn watch(&self, user: &UserId, sku: &Sku) -> PortResult<bool>;
    /// `user` no longer waits for `sku`.
    async fn unwatch(&self, user: &UserId, sku: &Sku) -> PortResult<bool>;
    /// Who waits for `sku`, ascending, at most `limit`.
    async fn watchers(&self, sku: &Sku, limit: usize) -> PortResult<Vec<UserId>>;
    /// `sku` is back: its watchers get an arrival and stop watching; returns them.
    async fn back_in_stock(&self, sku: &Sku, at: DateTime<Utc>) -> PortResult<Vec<UserId>>;
    /// What came back for `user`, newest first, at most `limit`.
    async fn arrivals(&self, user: &UserId, limit: usize) -> PortResult<Vec<Viewed>>;
    /// Removes an arrival from `user`'s list.
    async fn dismiss(&self, user: &UserId, sku: &Sku) -> PortResult<bool>;
}

/// What happened to a user in an experiment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ExperimentEvent {
    /// The user saw the arm's variant (a recommendation widget rendered).
    Exposure {
        /// The arm they were assigned.
        arm: ArmName,
    },
    /// The user clicked a recommendation.
    Click {
        /// The recommended SKU clicked.
        sku: Sku,
    },
    /// The user bought.
    Conversion {
        /// The order.
        order_id: OrderId,
    },
}

/// One line of an experiment's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExperimentRecord {
    /// Unique within the experiment; appending an id the log holds changes nothing.
    pub id: EventId,
    /// The experiment.
    pub experiment: ExperimentId,
    /// The user.
    pub user: UserId,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// What happened.
    pub event: ExperimentEvent,
}

/// A record with its position in its experiment's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedRecord {
    /// Position within the experiment: 0, 1, 2, … in append order.
    pub seq: u64,
    /// The record.
    pub record: ExperimentRecord,
}

/// The append-only log of A/B exposures and outcomes, one sequence per experiment.
///
/// Contract (checked by `recs::experiment_log_conformance!`):
/// - `append` adds the records whose `(experiment, id)` the log does not hold, in the order
///   given, each at the next position of its experiment; it returns how many it added. A
///   batch over [`crate::limits::EXPERIMENT_BATCH_MAX`] is `Invalid` and adds nothing.
/// - `read(experiment, from, limit)` returns that experiment's records at positions `from..`,
///   at most `min(limit, EXPERIMENT_BATCH_MAX)`, the same ones every time; experiments are
///   independent.
#[async_trait]
pub trait ExperimentLog: Send + Sync + Debug {
    /// Appends the records not yet logged; returns how many were new.
    async fn append(&self, records: &[ExperimentRecord]) -> PortResult<usize>;
    /// An experiment's records from position `from`.
    async fn read(
        &self,
        experiment: &ExperimentId,
        from: u64,
        limit: usize,
    ) -> PortResult<Vec<LoggedRecord>>;
}
