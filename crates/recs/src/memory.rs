//! In-memory implementations of the store ports: for tests, examples, benchmarks and embedded
//! deployments. Each sits behind one mutex (the product page reads a handful of keys per call).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use commerce_core::{EventId, PortError, PortResult, SessionId, Sku, UserId};

use crate::limits::{
    ARRIVALS_PER_USER_MAX, EXPERIMENT_BATCH_MAX, RECENTLY_VIEWED_MAX, TOPK_BATCH_MAX,
    WATCHERS_PER_SKU_MAX, WATCHES_PER_USER_MAX,
};
use crate::{
    BackInStockStore, ExperimentId, ExperimentLog, ExperimentRecord, ListKey, LoggedRecord,
    RecentlyViewedStore, TopKList, TopKStore, Viewed,
};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every write checks before it changes anything, so the data is consistent even if a
    // panicking thread poisoned the lock.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn invalid(field: &str, message: String) -> PortError {
    PortError::new(commerce_core::ErrorKind::Invalid, message).with_field(field)
}

/// Milliseconds since the epoch: the precision stores keep.
fn millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

fn from_millis(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// A [`TopKStore`] in memory.
///
/// ```
/// use commerce_core::Sku;
/// use recs::{InMemoryTopKStore, ListKey, Scored, TopKList, TopKStore};
/// # futures::executor::block_on(async {
/// let store = InMemoryTopKStore::new();
/// let key = ListKey::Item(Sku::new("MUG")?);
/// let list = TopKList::new(2, vec![Scored::new(Sku::new("TEA")?, 0.9)])?;
/// assert_eq!(store.put(&[(key.clone(), list.clone())]).await?, 1);
/// assert_eq!(store.put(&[(key.clone(), TopKList::empty(1))]).await?, 0); // older: kept
/// assert_eq!(store.get(&key).await?, Some(list));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Default)]
pub struct InMemoryTopKStore {
    lists: Mutex<HashMap<ListKey, TopKList>>,
}

impl InMemoryTopKStore {
    /// An empty store.
    pub fn new() -> InMemoryTopKStore {
        InMemoryTopKStore::default()
    }

    /// How many lists it holds.
    pub fn len(&self) -> usize {
        lock(&self.lists).len()
    }

    /// True when it holds no list.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The list under `key`, synchronously (what a hot path embedding the store reads).
    pub fn get_now(&self, key: &ListKey) -> Option<TopKList> {
        lock(&self.lists).get(key).cloned()
    }
}

#[async_trait]
impl TopKStore for InMemoryTopKStore {
    async fn put(&self, lists: &[(ListKey, TopKList)]) -> PortResult<usize> {
        if lists.len() > TOPK_BATCH_MAX {
            return Err(invalid(
                "lists",
                format!("{} lists, at most {TOPK_BATCH_MAX}", lists.len()),
            ));
        }
        let mut map = lock(&self.lists);
        let mut written = 0;
        for (key, list) in lists {
            let newer = map
                .get(key)
                .is_none_or(|old| old.generation() <= list.generation());
            if newer {
                map.insert(key.clone(), list.clone());
                written += 1;
            }
        }
        Ok(written)
    }

    async fn get(&self, key: &ListKey) -> PortResult<Option<TopKList>> {
        Ok(self.get_now(key))
    }

    async fn get_many(&self, keys: &[ListKey]) -> PortResult<Vec<Option<TopKList>>> {
        if keys.len() > TOPK_BATCH_MAX {
            return Err(invalid(
                "keys",
                format!("{} keys, at most {TOPK_BATCH_MAX}", keys.len()),
            ));
        }
        let map = lock(&self.lists);
        Ok(keys.iter().map(|k| map.get(k).cloned()).collect())
    }

    async fn remove(&self, key: &ListKey, generation: u64) -> PortResult<bool> {
        let mut map = lock(&self.lists);
        match map.get(key) {
            Some(old) if old.generation() <= generation => {
                map.remove(key);
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

/// A [`RecentlyViewedStore`] in memory: per session, SKUs by their last view.
#[derive(Debug)]
pub struct InMemoryRecentlyViewed {
    capacity: usize,
    sessions: Mutex<HashMap<SessionId, BTreeSet<(i64, Sku)>>>,
}

impl InMemoryRecentlyViewed {
    /// A store keeping `capacity` SKUs per session (clamped to 1 ..=
    /// [`RECENTLY_VIEWED_MAX`]).
    pub fn new(capacity: usize) -> InMemoryRecentlyViewed {
        InMemoryRecentlyViewed {
            capacity: capacity.clamp(1, RECENTLY_VIEWED_MAX),
            sessions: Mutex::default(),
        }
    }
}

#[async_trait]
impl RecentlyViewedStore for InMemoryRecentlyViewed {
    fn capacity(&self) -> usize {
        self.capacity
    }

    async fn record(&self, session: &SessionId, view: &Viewed) -> PortResult<()> {
        let at = millis(view.at);
        let mut sessions = lock(&self.sessions);
        let set = sessions.entry(session.clone()).or_default();
        let old = set.iter().find(|(_, s)| *s == view.sku).cloned();
        match old {
            Some((old_at, _)) if old_at >= at => return Ok(()),
            Some(old) => {
                set.remove(&old);
            }
            None => {}
        }
        set.insert((at, view.sku.clone()));
        while set.len() > self.capacity {
            set.pop_first();
        }
        Ok(())
    }

    async fn recent(&self, session: &SessionId, limit: usize) -> PortResult<Vec<Viewed>> {
        let sessions = lock(&self.sessions);
        Ok(sessions
            .get(session)
            .map(|set| {
                set.iter()
                    .rev()
                    .take(limit)
                    .map(|(at, sku)| Viewed {
                        sku: sku.clone(),
                        at: from_millis(*at),
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn clear(&self, session: &SessionId) -> PortResult<()> {
        lock(&self.sessions).remove(session);
        Ok(())
    }
}

#[derive(Debug, Default)]
struct Watches {
    by_sku: HashMap<Sku, BTreeSet<UserId>>,
    by_user: HashMap<UserId, HashSet<Sku>>,
    arrivals: HashMap<UserId, BTreeSet<(i64, Sku)>>,
}

/// A [`BackInStockStore`] in memory.
#[derive(Debug, Default)]
pub struct InMemoryBackInStock {
    inner: Mutex<Watches>,
}

impl InMemoryBackInStock {
    /// An empty store.
    pub fn new() -> InMemoryBackInStock {
        InMemoryBackInStock::default()
    }
}

#[async_trait]
impl BackInStockStore for InMemoryBackInStock {
    async fn watch(&self, user: &UserId, sku: &Sku) -> PortResult<bool> {
        let mut w = lock(&self.inner);
        if w.by_sku.get(sku).is_some_and(|s| s.contains(user)) {
            return Ok(false);
        }
        if w.by_user.get(user).map_or(0, HashSet::len) >= WATCHES_PER_USER_MAX {
            return Err(PortError::new(
                commerce_core::ErrorKind::Refused,
                format!("{user} already watches {WATCHES_PER_USER_MAX} SKUs"),
            ));
        }
        if w.by_sku.get(sku).map_or(0, BTreeSet::len) >= WATCHERS_PER_SKU_MAX {
            return Err(PortError::new(
                commerce_core::ErrorKind::Refused,
                format!("{sku} already has {WATCHERS_PER_SKU_MAX} watchers"),
            ));
        }
        w.by_sku
            .entry(sku.clone())
            .or_default()
            .insert(user.clone());
        w.by_user
            .entry(user.clone())
            .or_default()
            .insert(sku.clone());
        Ok(true)
    }

    async fn unwatch(&self, user: &UserId, sku: &Sku) -> PortResult<bool> {
        let mut w = lock(&self.inner);
        let removed = w.by_sku.get_mut(sku).is_some_and(|s| s.remove(user));
        if removed {
            if w.by_sku.get(sku).is_some_and(BTreeSet::is_empty) {
                w.by_sku.remove(sku);
            }
            if let Some(skus) = w.by_user.get_mut(user) {
                skus.remove(sku);
                if skus.is_empty() {
                    w.by_user.remove(user);
                }
            }
        }
        Ok(removed)
    }

    async fn watchers(&self, sku: &Sku, limit: usize) -> PortResult<Vec<UserId>> {
        let w = lock(&self.inner);
        Ok(w.by_sku
            .get(sku)
            .map(|s| s.iter().take(limit).cloned().collect())
            .unwrap_or_default())
    }

    async fn back_in_stock(&self, sku: &Sku, at: DateTime<Utc>) -> PortResult<Vec<UserId>> {
        let at = millis(at);
        let mut w = lock(&self.inner);
        let Some(users) = w.by_sku.remove(sku) else {
            return Ok(Vec::new());
        };
        for user in &users {
            if let Some(skus) = w.by_user.get_mut(user) {
                skus.remove(sku);
                if skus.is_empty() {
                    w.by_user.remove(user);
                }
            }
            let list = w.arrivals.entry(user.clone()).or_default();
            if let Some(old) = list.iter().find(|(_, s)| s == sku).cloned() {
                list.remove(&old);
            }
            list.insert((at, sku.clone()));
            while list.len() > ARRIVALS_PER_USER_MAX {
                list.pop_first();
            }
        }
        Ok(users.into_iter().collect())
    }

    async fn arrivals(&self, user: &UserId, limit: usize) -> PortResult<Vec<Viewed>> {
        let w = lock(&self.inner);
        Ok(w.arrivals
            .get(user)
            .map(|l| {
                l.iter()
                    .rev()
                    .take(limit)
                    .map(|(at, sku)| Viewed {
                        sku: sku.clone(),
                        at: from_millis(*at),
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn dismiss(&self, user: &UserId, sku: &Sku) -> PortResult<bool> {
        let mut w = lock(&self.inner);
        let Some(list) = w.arrivals.get_mut(user) else {
            return Ok(false);
        };
        let Some(old) = list.iter().find(|(_, s)| s == sku).cloned() else {
            return Ok(false);
        };
        list.remove(&old);
        if list.is_empty() {
            w.arrivals.remove(user);
        }
        Ok(true)
    }
}

#[derive(Debug, Default)]
struct Experiments {
    logs: BTreeMap<ExperimentId, Vec<ExperimentRecord>>,
    ids: HashSet<(ExperimentId, EventId)>,
}

/// An [`ExperimentLog`] in memory.
#[derive(Debug, Default)]
pub struct InMemoryExperimentLog {
    inner: Mutex<Experiments>,
}

impl InMemoryExperimentLog {
    /// An empty log.
    pub fn new() -> InMemoryExperimentLog {
        InMemoryExperimentLog::default()
    }
}

#[async_trait]
impl ExperimentLog for InMemoryExperimentLog {
    async fn append(&self, records: &[ExperimentRecord]) -> PortResult<usize> {
        if records.len() > EXPERIMENT_BATCH_MAX {
            return Err(invalid(
                "records",
                format!("{} records, at most {EXPERIMENT_BATCH_MAX}", records.len()),
            ));
        }
        let mut log = lock(&self.inner);
        let mut added = 0;
        for r in records {
            if log.ids.insert((r.experiment.clone(), r.id.clone())) {
                log.logs
                    .entry(r.experiment.clone())
                    .or_default()
                    .push(r.clone());
                added += 1;
            }
        }
        Ok(added)
    }

    async fn read(
        &self,
        experiment: &ExperimentId,
        from: u64,
        limit: usize,
    ) -> PortResult<Vec<LoggedRecord>> {
        let log = lock(&self.inner);
        let Some(records) = log.logs.get(experiment) else {
            return Ok(Vec::new());
        };
        let start = usize::try_from(from)
            .unwrap_or(usize::MAX)
            .min(records.len());
        Ok(records[start..]
            .iter()
            .take(limit.min(EXPERIMENT_BATCH_MAX))
            .zip(from..)
            .map(|(r, seq)| LoggedRecord {
                seq,
                record: r.clone(),
            })
            .collect())
    }
}
