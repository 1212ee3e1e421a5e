//! In-memory notifier.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::lock;
use crate::IdempotencyKey;
use crate::ports::{ErrorKind, Notification, Notifier, PortError, PortResult};

/// A [`Notifier`] that records what it "sent".
#[derive(Debug, Default)]
pub struct InMemoryNotifier {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    by_key: HashMap<IdempotencyKey, Notification>,
    sent: Vec<Notification>,
}

impl InMemoryNotifier {
    /// A notifier that has sent nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every delivery, in order.
    pub fn sent(&self) -> Vec<Notification> {
        lock(&self.inner).sent.clone()
    }
}

#[async_trait]
impl Notifier for InMemoryNotifier {
    async fn send(&self, notification: &Notification) -> PortResult<()> {
        let mut inner = lock(&self.inner);
        if let Some(first) = inner.by_key.get(&notification.key) {
            return if first == notification {
                Ok(())
            } else {
                Err(PortError::new(
                    ErrorKind::Conflict,
                    format!("key {} was used for another notification", notification.key),
                ))
            };
        }
        inner
            .by_key
            .insert(notification.key.clone(), notification.clone());
        inner.sent.push(notification.clone());
        Ok(())
    }
}
