//! The payment gateway: authorize, capture, refund, void — each under an idempotency key.

use std::fmt::Debug;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{PortError, PortResult};
use crate::ErrorKind;
use crate::{IdempotencyKey, Money, OrderId, PaymentRef};

/// A request to authorize a payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizeRequest {
    /// Makes the call safe to repeat; derive it from the order id.
    pub idempotency_key: IdempotencyKey,
    /// The order being paid for.
    pub order_id: OrderId,
    /// The amount to authorize, rounded to the currency's minor unit.
    pub amount: Money,
    /// The tokenized payment method from the provider's client SDK.
    pub method_token: String,
    /// Capture at once (a sale) instead of authorizing only.
    pub capture: bool,
}

/// Where a payment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// Authorized, nothing captured yet.
    Authorized,
    /// Some or all captured; refunds may follow.
    Captured,
    /// Voided before capture: no money moved.
    Voided,
}

/// A payment as the provider holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    /// The provider's reference.
    pub payment_ref: PaymentRef,
    /// The order it pays for.
    pub order_id: OrderId,
    /// Authorized amount.
    pub authorized: Money,
    /// Captured so far (≤ authorized).
    pub captured: Money,
    /// Refunded so far (≤ captured).
    pub refunded: Money,
    /// Status.
    pub status: PaymentStatus,
}

impl AuthorizeRequest {
    /// Checks the amount: positive and in minor units.
    ///
    /// # Errors
    /// `Invalid`.
    pub fn validate(&self) -> PortResult<()> {
        check_positive(&self.amount, self.amount.currency())
    }
}

/// How a provider's books move: the guards every [`PaymentGateway`] enforces, as functions of
/// one payment, so every implementation (in memory, a durable sandbox) applies the same ones.
impl Payment {
    /// A new payment for `request`, referenced `payment_ref`: authorized, and captured at once
    /// when asked.
    ///
    /// # Errors
    /// `Invalid` for an amount that is not positive or not in minor units.
    pub fn authorized(request: &AuthorizeRequest, payment_ref: PaymentRef) -> PortResult<Payment> {
        check_positive(&request.amount, request.amount.currency())?;
        let zero = Money::zero(request.amount.currency());
        Ok(Payment {
            payment_ref,
            order_id: request.order_id.clone(),
            authorized: request.amount,
            captured: if request.capture {
                request.amount
            } else {
                zero
            },
            refunded: zero,
            status: if request.capture {
                PaymentStatus::Captured
            } else {
                PaymentStatus::Authorized
            },
        })
    }

    /// Captures `amount` more.
    ///
    /// # Errors
    /// `Invalid` for a bad amount; `Conflict` for a voided payment or a capture beyond the
    /// authorization. Nothing changes on error.
    pub fn capture(&mut self, amount: &Money) -> PortResult<()> {
        check_positive(amount, self.authorized.currency())?;
        if self.status == PaymentStatus::Voided {
            return Err(PortError::new(ErrorKind::Conflict, "payment was voided"));
        }
        let captured = self.captured.checked_add(amount)?;
        if captured.amount() > self.authorized.amount() {
            return Err(PortError::new(
                ErrorKind::Conflict,
                "capture exceeds the authorization",
            ));
        }
        self.captured = captured;
        self.status = PaymentStatus::Captured;
        Ok(())
    }

    /// Refunds `amount` of what was captured.
    ///
    /// # Errors
    /// `Invalid` for a bad amount; `Conflict` for a refund beyond the captured amount.
    pub fn refund(&mut self, amount: &Money) -> PortResult<()> {
        check_positive(amount, self.authorized.currency())?;
        let refunded = self.refunded.checked_add(amount)?;
        if refunded.amount() > self.captured.amount() {
            return Err(PortError::new(
                ErrorKind::Conflict,
                "refund exceeds the captured amount",
            ));
        }
        self.refunded = refunded;
        Ok(())
    }

    /// Voids an authorization never captured (voiding twice changes nothing).
    ///
    /// # Errors
    /// `Conflict` for a captured payment.
    pub fn void(&mut self) -> PortResult<()> {
        match self.status {
            PaymentStatus::Captured => Err(PortError::new(
                ErrorKind::Conflict,
                "a captured payment cannot be voided",
            )),
            PaymentStatus::Authorized | PaymentStatus::Voided => {
                self.status = PaymentStatus::Voided;
                Ok(())
            }
        }
    }
}

/// What makes two calls the same request, for idempotency keys: the operation, the payment (or
/// order and method) and the amount's value (10.00 EUR and 10.000 EUR are one request).
pub fn request_fingerprint(operation: &str, subject: &str, amount: Option<&Money>) -> String {
    match amount {
        Some(m) => format!(
            "{operation}|{subject}|{} {}",
            m.amount().normalize(),
            m.currency()
        ),
        None => format!("{operation}|{subject}"),
    }
}

fn check_positive(amount: &Money, currency: crate::Currency) -> PortResult<()> {
    if amount.currency() != currency {
        return Err(PortError::new(
            ErrorKind::Invalid,
            "amount in another currency",
        ));
    }
    if !amount.is_positive() || !amount.is_rounded() {
        return Err(PortError::new(
            ErrorKind::Invalid,
            "amount must be positive and in minor units",
        ));
    }
    Ok(())
}

/// A payment service provider.
///
/// Contract (checked by `testkit::payment_gateway_conformance!`):
/// - Every call carries an idempotency key. Repeating a call with the same key and the same
///   arguments returns the first result and moves no more money; the same key with different
///   arguments is `Conflict`.
/// - Guards, enforced atomically even under concurrent calls: captured ≤ authorized, refunded ≤
///   captured, a voided payment captures nothing, a captured payment cannot be voided. A breach
///   is `Conflict`; amounts in another currency or not positive are `Invalid`.
/// - A decline is `Refused`. A call whose outcome is unknown (timeout after sending) is
///   `Indeterminate`; [`PaymentGateway::lookup`] then tells what the key did.
/// - `list` pages payments in ascending reference order, for reconciliation.
#[async_trait]
pub trait PaymentGateway: Send + Sync + Debug {
    /// Authorizes (and with `capture`, captures) a payment.
    async fn authorize(&self, request: &AuthorizeRequest) -> PortResult<Payment>;
    /// Captures `amount` of an authorized payment.
    async fn capture(
        &self,
        key: &IdempotencyKey,
        payment_ref: &PaymentRef,
        amount: Money,
    ) -> PortResult<Payment>;
    /// Refunds `amount` of the captured money.
    async fn refund(
        &self,
        key: &IdempotencyKey,
        payment_ref: &PaymentRef,
        amount: Money,
    ) -> PortResult<Payment>;
    /// Voids an uncaptured authorization.
    async fn void(&self, key: &IdempotencyKey, payment_ref: &PaymentRef) -> PortResult<Payment>;
    /// What the call made with `key` did, if it took effect: the payment as it is now.
    async fn lookup(&self, key: &IdempotencyKey) -> PortResult<Option<Payment>>;
    /// The payment `payment_ref` as the provider holds it now (what a provider's notification
    /// is checked against, rather than trusting the amounts the notification carries).
    async fn get(&self, payment_ref: &PaymentRef) -> PortResult<Option<Payment>>;
    /// A page of payments after `after`, in reference order.
    async fn list(&self, after: Option<&PaymentRef>, limit: usize) -> PortResult<Vec<Payment>>;
}
