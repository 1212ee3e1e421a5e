//! The payment gateway: authorize, capture, refund, void — each under an idempotency key.

use std::fmt::Debug;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::PortResult;
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
    /// A page of payments after `after`, in reference order.
    async fn list(&self, after: Option<&PaymentRef>, limit: usize) -> PortResult<Vec<Payment>>;
}
