//! A durable saga orchestrator and the checkout saga.
//!
//! **Status: skeleton.** This crate will own a journal-driven orchestrator (compensatable steps,
//! a pivot, retriable steps; retries with backoff, idempotency, recovery under a lease) and the
//! checkout saga that turns a priced cart into a confirmed order without ever charging without an
//! order. It talks to the outside only through [`commerce_core`]'s ports
//! (`PaymentGateway`, `OrderStore`, `EventPublisher`, `Carrier`, `Notifier`, `Clock`).
