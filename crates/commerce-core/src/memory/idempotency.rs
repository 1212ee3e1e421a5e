//! In-memory idempotency store.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};

use super::lock;
use crate::IdempotencyKey;
use crate::limits::PURGE_BATCH_MAX;
use crate::ports::{
    Begin, ErrorKind, IdempotencyStore, LeaseToken, PortError, PortResult, purge_cutoff,
};

/// An [`IdempotencyStore`] in a `HashMap`. Lease tokens count up from 1 per store.
#[derive(Debug, Default)]
pub struct InMemoryIdempotencyStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    records: HashMap<IdempotencyKey, Record>,
    /// The last token issued; tokens are never reused, abandoned or purged keys included.
    last_token: u64,
}

#[derive(Debug)]
struct Record {
    fingerprint: String,
    state: State,
}

#[derive(Debug)]
enum State {
    InProgress {
        token: LeaseToken,
        lease_until: DateTime<Utc>,
    },
    Completed {
        response: Vec<u8>,
        completed_at: DateTime<Utc>,
    },
}

impl State {
    /// When the record finished, for purging: its completion, or the end of its lease.
    fn finished_at(&self) -> DateTime<Utc> {
        match self {
            State::InProgress { lease_until, .. } => *lease_until,
            State::Completed { completed_at, .. } => *completed_at,
        }
    }
}

impl InMemoryIdempotencyStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Inner {
    fn next_token(&mut self) -> PortResult<LeaseToken> {
        self.last_token = self
            .last_token
            .checked_add(1)
            .ok_or_else(|| PortError::new(ErrorKind::Internal, "lease tokens exhausted"))?;
        LeaseToken::new(self.last_token).map_err(PortError::from)
    }

    /// The claim `token` names, or why there is none.
    fn claim(&mut self, key: &IdempotencyKey, token: LeaseToken) -> PortResult<&mut Record> {
        match self.records.get_mut(key) {
            None => Err(PortError::new(ErrorKind::NotFound, format!("key {key}"))),
            Some(Record {
                state: State::Completed { .. },
                ..
            }) => Err(PortError::new(
                ErrorKind::Conflict,
                format!("key {key} already completed"),
            )),
            Some(Record {
                state: State::InProgress { token: held, .. },
                ..
            }) if *held != token => Err(PortError::new(
                ErrorKind::Conflict,
                format!("key {key}: lease token {token} is stale (the key was taken over)"),
            )),
            Some(r) => Ok(r),
        }
    }
}

#[async_trait]
impl IdempotencyStore for InMemoryIdempotencyStore {
    async fn begin(
        &self,
        key: &IdempotencyKey,
        fingerprint: &str,
        now: DateTime<Utc>,
        lease: TimeDelta,
    ) -> PortResult<Begin> {
        if lease <= TimeDelta::zero() {
            return Err(PortError::new(ErrorKind::Invalid, "lease must be positive"));
        }
        let lease_until = now
            .checked_add_signed(lease)
            .ok_or_else(|| PortError::new(ErrorKind::Invalid, "lease overflows"))?;
        let mut inner = lock(&self.inner);
        if let Some(r) = inner.records.get(key) {
            if r.fingerprint != fingerprint {
                return Ok(Begin::Mismatch);
            }
            match &r.state {
                State::Completed { response, .. } => return Ok(Begin::Completed(response.clone())),
                State::InProgress {
                    lease_until: held, ..
                } if *held > now => return Ok(Begin::InProgress),
                // The lease ended: the owner crashed or is late; the key is taken over.
                State::InProgress { .. } => {}
            }
        }
        let token = inner.next_token()?;
        inner.records.insert(
            key.clone(),
            Record {
                fingerprint: fingerprint.to_owned(),
                state: State::InProgress { token, lease_until },
            },
        );
        Ok(Begin::Started { token })
    }

    async fn complete(
        &self,
        key: &IdempotencyKey,
        token: LeaseToken,
        response: Vec<u8>,
        now: DateTime<Utc>,
    ) -> PortResult<()> {
        let mut inner = lock(&self.inner);
        inner.claim(key, token)?.state = State::Completed {
            response,
            completed_at: now,
        };
        Ok(())
    }

    async fn abandon(&self, key: &IdempotencyKey, token: LeaseToken) -> PortResult<()> {
        let mut inner = lock(&self.inner);
        inner.claim(key, token)?;
        inner.records.remove(key);
        Ok(())
    }

    async fn purge(
        &self,
        now: DateTime<Utc>,
        retention: TimeDelta,
        limit: usize,
    ) -> PortResult<usize> {
        let cutoff = purge_cutoff(now, retention)?;
        let mut inner = lock(&self.inner);
        // Oldest first, so repeated calls make progress in a fixed order.
        let mut due: Vec<(DateTime<Utc>, IdempotencyKey)> = inner
            .records
            .iter()
            .map(|(k, r)| (r.state.finished_at(), k.clone()))
            .filter(|(at, _)| *at < cutoff)
            .collect();
        due.sort();
        due.truncate(limit.min(PURGE_BATCH_MAX));
        for (_, key) in &due {
            inner.records.remove(key);
        }
        Ok(due.len())
    }
}
