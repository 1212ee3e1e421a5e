//! In-memory payment gateway.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::Mutex;

use async_trait::async_trait;

use super::{lock, page_limit};
use crate::ports::{
    AuthorizeRequest, ErrorKind, Payment, PaymentGateway, PortError, PortResult,
    request_fingerprint,
};
use crate::{IdempotencyKey, Money, PaymentRef};

/// A [`PaymentGateway`] that moves pretend money, with the guards of a real one.
///
/// The method token `tok_decline` is declined (`Refused`); every other token is approved.
/// References are `pay_00000001`, `pay_00000002`, ... in call order, so runs are reproducible.
///
/// Results are remembered per idempotency key the way providers do it: a call that executed
/// (approved or declined) replays its first result for the same key and arguments; a call refused
/// by validation or a guard (`Invalid`, `Conflict`, `NotFound`) stores nothing.
#[derive(Debug, Default)]
pub struct InMemoryPaymentGateway {
    inner: Mutex<Inner>,
}

/// The token the in-memory gateway declines.
pub const DECLINED_TOKEN: &str = "tok_decline";

#[derive(Debug, Default)]
struct Inner {
    payments: BTreeMap<PaymentRef, Payment>,
    calls: HashMap<IdempotencyKey, Call>,
    next_ref: u64,
}

#[derive(Debug)]
struct Call {
    fingerprint: String,
    result: PortResult<Payment>,
}

fn err(kind: ErrorKind, message: impl Into<String>) -> PortError {
    PortError::new(kind, message)
}

impl InMemoryPaymentGateway {
    /// A gateway with no payments.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every payment, in reference order (for tests and simulation checkers).
    pub fn snapshot(&self) -> Vec<Payment> {
        lock(&self.inner).payments.values().cloned().collect()
    }

    /// Runs `op` once per key: replays a remembered result, refuses a changed request, and
    /// remembers results that executed (success or decline).
    fn once(
        &self,
        key: &IdempotencyKey,
        fingerprint: String,
        op: impl FnOnce(&mut Inner) -> PortResult<Payment>,
    ) -> PortResult<Payment> {
        let mut inner = lock(&self.inner);
        if let Some(call) = inner.calls.get(key) {
            if call.fingerprint != fingerprint {
                return Err(err(
                    ErrorKind::Conflict,
                    format!("idempotency key {key} was used for another request"),
                ));
            }
            return call.result.clone();
        }
        let result = op(&mut inner);
        let executed = match &result {
            Ok(_) => true,
            Err(e) => e.kind == ErrorKind::Refused,
        };
        if executed {
            inner.calls.insert(
                key.clone(),
                Call {
                    fingerprint,
                    result: result.clone(),
                },
            );
        }
        result
    }
}

fn payment_mut<'a>(inner: &'a mut Inner, r: &PaymentRef) -> PortResult<&'a mut Payment> {
    inner
        .payments
        .get_mut(r)
        .ok_or_else(|| err(ErrorKind::NotFound, format!("payment {r}")))
}

#[async_trait]
impl PaymentGateway for InMemoryPaymentGateway {
    async fn authorize(&self, req: &AuthorizeRequest) -> PortResult<Payment> {
        let fingerprint = request_fingerprint(
            "authorize",
            &format!("{}|{}|{}", req.order_id, req.method_token, req.capture),
            Some(&req.amount),
        );
        self.once(&req.idempotency_key, fingerprint, |inner| {
            req.validate()?;
            if req.method_token == DECLINED_TOKEN {
                return Err(err(ErrorKind::Refused, "card declined"));
            }
            let payment_ref = PaymentRef::new(format!("pay_{:08}", inner.next_ref + 1))?;
            let payment = Payment::authorized(req, payment_ref.clone())?;
            inner.next_ref += 1;
            inner.payments.insert(payment_ref, payment.clone());
            Ok(payment)
        })
    }

    async fn capture(
        &self,
        key: &IdempotencyKey,
        payment_ref: &PaymentRef,
        amount: Money,
    ) -> PortResult<Payment> {
        let fingerprint = request_fingerprint("capture", payment_ref.as_str(), Some(&amount));
        self.once(key, fingerprint, |inner| {
            let p = payment_mut(inner, payment_ref)?;
            p.capture(&amount)?;
            Ok(p.clone())
        })
    }

    async fn refund(
        &self,
        key: &IdempotencyKey,
        payment_ref: &PaymentRef,
        amount: Money,
    ) -> PortResult<Payment> {
        let fingerprint = request_fingerprint("refund", payment_ref.as_str(), Some(&amount));
        self.once(key, fingerprint, |inner| {
            let p = payment_mut(inner, payment_ref)?;
            p.refund(&amount)?;
            Ok(p.clone())
        })
    }

    async fn void(&self, key: &IdempotencyKey, payment_ref: &PaymentRef) -> PortResult<Payment> {
        self.once(
            key,
            request_fingerprint("void", payment_ref.as_str(), None),
            |inner| {
                let p = payment_mut(inner, payment_ref)?;
                p.void()?;
                Ok(p.clone())
            },
        )
    }

    async fn lookup(&self, key: &IdempotencyKey) -> PortResult<Option<Payment>> {
        let inner = lock(&self.inner);
        Ok(match inner.calls.get(key) {
            Some(Call { result: Ok(p), .. }) => inner.payments.get(&p.payment_ref).cloned(),
            _ => None,
        })
    }

    async fn get(&self, payment_ref: &PaymentRef) -> PortResult<Option<Payment>> {
        Ok(lock(&self.inner).payments.get(payment_ref).cloned())
    }

    async fn list(&self, after: Option<&PaymentRef>, limit: usize) -> PortResult<Vec<Payment>> {
        let inner = lock(&self.inner);
        let lower = after.map_or(Bound::Unbounded, |a| Bound::Excluded(a.clone()));
        Ok(inner
            .payments
            .range((lower, Bound::Unbounded))
            .take(page_limit(limit))
            .map(|(_, p)| p.clone())
            .collect())
    }
}
