//! In-memory idempotency store.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};

use super::lock;
use crate::IdempotencyKey;
use crate::ports::{Begin, ErrorKind, IdempotencyStore, PortError, PortResult};

/// An [`IdempotencyStore`] in a `HashMap`.
#[derive(Debug, Default)]
pub struct InMemoryIdempotencyStore {
    records: Mutex<HashMap<IdempotencyKey, Record>>,
}

#[derive(Debug)]
struct Record {
    fingerprint: String,
    state: State,
}

#[derive(Debug)]
enum State {
    InProgress { lease_until: DateTime<Utc> },
    Completed(Vec<u8>),
}

impl InMemoryIdempotencyStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
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
        let mut records = lock(&self.records);
        match records.get_mut(key) {
            None => {
                records.insert(
                    key.clone(),
                    Record {
                        fingerprint: fingerprint.to_owned(),
                        state: State::InProgress { lease_until },
                    },
                );
                Ok(Begin::Started)
            }
            Some(r) if r.fingerprint != fingerprint => Ok(Begin::Mismatch),
            Some(r) => match &r.state {
                State::Completed(response) => Ok(Begin::Completed(response.clone())),
                State::InProgress { lease_until: held } if *held > now => Ok(Begin::InProgress),
                State::InProgress { .. } => {
                    r.state = State::InProgress { lease_until };
                    Ok(Begin::Started)
                }
            },
        }
    }

    async fn complete(&self, key: &IdempotencyKey, response: Vec<u8>) -> PortResult<()> {
        let mut records = lock(&self.records);
        match records.get_mut(key) {
            None => Err(PortError::new(ErrorKind::NotFound, format!("key {key}"))),
            Some(Record {
                state: State::Completed(_),
                ..
            }) => Err(PortError::new(
                ErrorKind::Conflict,
                format!("key {key} already completed"),
            )),
            Some(r) => {
                r.state = State::Completed(response);
                Ok(())
            }
        }
    }

    async fn abandon(&self, key: &IdempotencyKey) -> PortResult<()> {
        let mut records = lock(&self.records);
        match records.get(key) {
            None => Err(PortError::new(ErrorKind::NotFound, format!("key {key}"))),
            Some(Record {
                state: State::Completed(_),
                ..
            }) => Err(PortError::new(
                ErrorKind::Conflict,
                format!("key {key} already completed"),
            )),
            Some(_) => {
                records.remove(key);
                Ok(())
            }
        }
    }
}
