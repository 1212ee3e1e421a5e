//! A payment provider's sandbox on PostgreSQL: the [`PaymentGateway`] port with the guards of
//! a real provider ([`Payment::capture`] and friends, shared with the in-memory gateway), its
//! books in tables so they outlive the process. For demos, crash tests and benchmarks; in
//! production the provider's own API sits behind the port.
//!
//! Each call is one transaction. It first claims its idempotency key (a row inserted, or the
//! existing row locked), so two calls with one key run one after the other: the second replays
//! the first's answer. A call refused by validation or a guard rolls back and remembers
//! nothing; an approved or declined call is remembered. The method token `tok_decline` is
//! declined.

use commerce_core::memory::DECLINED_TOKEN;
use commerce_core::{
    AuthorizeRequest, ErrorKind, IdempotencyKey, Money, Payment, PaymentGateway, PaymentRef,
    PortError, PortResult, request_fingerprint,
};
use futures::FutureExt;
use sqlx::PgConnection;

use super::{Postgres, UnitOutcome, error, page, with_retries};

/// The sandbox gateway.
#[derive(Debug, Clone)]
pub struct PgPaymentSandbox {
    pg: Postgres,
}

/// What claiming a key found.
enum Claimed {
    /// New: the call runs.
    Fresh,
    /// Ran before with this fingerprint: its answer.
    Replay(PortResult<Payment>),
}

impl PgPaymentSandbox {
    pub(crate) fn new(pg: Postgres) -> Self {
        PgPaymentSandbox { pg }
    }

    async fn claim(
        tx: &mut PgConnection,
        key: &IdempotencyKey,
        fingerprint: &str,
    ) -> PortResult<Claimed> {
        let inserted = sqlx::query(
            "INSERT INTO psp_calls (key, fingerprint) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key.as_str())
        .bind(fingerprint)
        .execute(&mut *tx)
        .await
        .map_err(error::db)?;
        if inserted.rows_affected() == 1 {
            return Ok(Claimed::Fresh);
        }
        let (stored, payment_ref, declined): (String, Option<String>, Option<String>) =
            sqlx::query_as(
                "SELECT fingerprint, payment_ref, declined FROM psp_calls WHERE key = $1 FOR UPDATE",
            )
            .bind(key.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(error::db)?;
        if stored != fingerprint {
            return Err(PortError::new(
                ErrorKind::Conflict,
                format!("idempotency key {key} was used for another request"),
            ));
        }
        if let Some(message) = declined {
            return Ok(Claimed::Replay(Err(PortError::new(
                ErrorKind::Refused,
                message,
            ))));
        }
        let Some(payment_ref) = payment_ref else {
            return Err(error::corrupt(
                "payment call",
                "neither approved nor declined",
            ));
        };
        Ok(Claimed::Replay(Ok(Self::load(tx, &payment_ref).await?)))
    }

    async fn load(tx: &mut PgConnection, payment_ref: &str) -> PortResult<Payment> {
        let body: Option<serde_json::Value> =
            sqlx::query_scalar("SELECT body FROM psp_payments WHERE payment_ref = $1 FOR UPDATE")
                .bind(payment_ref)
                .fetch_optional(&mut *tx)
                .await
                .map_err(error::db)?;
        let body = body
            .ok_or_else(|| PortError::new(ErrorKind::NotFound, format!("payment {payment_ref}")))?;
        decode(body)
    }

    async fn save(tx: &mut PgConnection, payment: &Payment) -> PortResult<()> {
        let body = serde_json::to_value(payment)
            .map_err(|e| PortError::caused_by(ErrorKind::Internal, e))?;
        sqlx::query(
            "INSERT INTO psp_payments (payment_ref, body) VALUES ($1, $2) \
             ON CONFLICT (payment_ref) DO UPDATE SET body = EXCLUDED.body",
        )
        .bind(payment.payment_ref.as_str())
        .bind(body)
        .execute(&mut *tx)
        .await
        .map_err(error::db)?;
        Ok(())
    }

    async fn remember(
        tx: &mut PgConnection,
        key: &IdempotencyKey,
        outcome: &PortResult<Payment>,
    ) -> PortResult<()> {
        let (payment_ref, declined) = match outcome {
            Ok(p) => (Some(p.payment_ref.as_str()), None),
            Err(e) => (None, Some(e.message.as_str())),
        };
        sqlx::query("UPDATE psp_calls SET payment_ref = $2, declined = $3 WHERE key = $1")
            .bind(key.as_str())
            .bind(payment_ref)
            .bind(declined)
            .execute(&mut *tx)
            .await
            .map_err(error::db)?;
        Ok(())
    }

    /// Runs one keyed call: `op` changes the books inside the transaction; an approved or
    /// declined outcome is remembered with the key, any other error rolls everything back.
    async fn once(&self, key: &IdempotencyKey, fingerprint: &str, op: Op) -> PortResult<Payment> {
        with_retries(|| {
            let (key, fingerprint, op) = (key.clone(), fingerprint.to_owned(), op.clone());
            self.pg.combiner().run(move |conn| {
                async move { Self::try_once(conn, &key, &fingerprint, &op).await }.boxed()
            })
        })
        .await?
    }

    /// One attempt at a keyed call, as a unit of group commit.
    async fn try_once(
        tx: &mut PgConnection,
        key: &IdempotencyKey,
        fingerprint: &str,
        op: &Op,
    ) -> PortResult<UnitOutcome<PortResult<Payment>>> {
        if let Claimed::Replay(answer) = Self::claim(tx, key, fingerprint).await? {
            return Ok(UnitOutcome::Commit(answer));
        }
        let outcome = Self::run(tx, op).await;
        match &outcome {
            Err(e) if e.kind != ErrorKind::Refused => return Err(e.clone()),
            _ => {}
        }
        Self::remember(tx, key, &outcome).await?;
        Ok(UnitOutcome::Commit(outcome))
    }

    /// What the provider does for `op`, on its books.
    async fn run(tx: &mut PgConnection, op: &Op) -> PortResult<Payment> {
        let (payment_ref, change) = match op {
            Op::Authorize(request) => {
                request.validate()?;
                if request.method_token == DECLINED_TOKEN {
                    return Err(PortError::new(ErrorKind::Refused, "card declined"));
                }
                let n: i64 = sqlx::query_scalar("SELECT nextval('psp_payment_refs')")
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(error::db)?;
                let payment =
                    Payment::authorized(request, PaymentRef::new(format!("pay_{n:08}"))?)?;
                Self::save(tx, &payment).await?;
                return Ok(payment);
            }
            Op::Capture(r, _) | Op::Refund(r, _) | Op::Void(r) => (r, op),
        };
        let mut p = Self::load(tx, payment_ref.as_str()).await?;
        match change {
            Op::Capture(_, amount) => p.capture(amount)?,
            Op::Refund(_, amount) => p.refund(amount)?,
            _ => p.void()?,
        }
        Self::save(tx, &p).await?;
        Ok(p)
    }
}

/// One keyed call to the provider.
#[derive(Clone)]
enum Op {
    Authorize(AuthorizeRequest),
    Capture(PaymentRef, Money),
    Refund(PaymentRef, Money),
    Void(PaymentRef),
}

#[async_trait::async_trait]
impl PaymentGateway for PgPaymentSandbox {
    async fn authorize(&self, request: &AuthorizeRequest) -> PortResult<Payment> {
        let fingerprint = request_fingerprint(
            "authorize",
            &format!(
                "{}|{}|{}",
                request.order_id, request.method_token, request.capture
            ),
            Some(&request.amount),
        );
        self.once(
            &request.idempotency_key,
            &fingerprint,
            Op::Authorize(request.clone()),
        )
        .await
    }

    async fn capture(
        &self,
        key: &IdempotencyKey,
        payment_ref: &PaymentRef,
        amount: Money,
    ) -> PortResult<Payment> {
        let fingerprint = request_fingerprint("capture", payment_ref.as_str(), Some(&amount));
        self.once(key, &fingerprint, Op::Capture(payment_ref.clone(), amount))
            .await
    }

    async fn refund(
        &self,
        key: &IdempotencyKey,
        payment_ref: &PaymentRef,
        amount: Money,
    ) -> PortResult<Payment> {
        let fingerprint = request_fingerprint("refund", payment_ref.as_str(), Some(&amount));
        self.once(key, &fingerprint, Op::Refund(payment_ref.clone(), amount))
            .await
    }

    async fn void(&self, key: &IdempotencyKey, payment_ref: &PaymentRef) -> PortResult<Payment> {
        let fingerprint = request_fingerprint("void", payment_ref.as_str(), None);
        self.once(key, &fingerprint, Op::Void(payment_ref.clone()))
            .await
    }

    async fn lookup(&self, key: &IdempotencyKey) -> PortResult<Option<Payment>> {
        let body: Option<serde_json::Value> = sqlx::query_scalar(
            "SELECT p.body FROM psp_calls c JOIN psp_payments p ON p.payment_ref = c.payment_ref \
             WHERE c.key = $1",
        )
        .bind(key.as_str())
        .fetch_optional(self.pg.primary())
        .await
        .map_err(error::db)?;
        body.map(decode).transpose()
    }

    async fn get(&self, payment_ref: &PaymentRef) -> PortResult<Option<Payment>> {
        let body: Option<serde_json::Value> =
            sqlx::query_scalar("SELECT body FROM psp_payments WHERE payment_ref = $1")
                .bind(payment_ref.as_str())
                .fetch_optional(self.pg.primary())
                .await
                .map_err(error::db)?;
        body.map(decode).transpose()
    }

    async fn list(&self, after: Option<&PaymentRef>, limit: usize) -> PortResult<Vec<Payment>> {
        let bodies: Vec<serde_json::Value> = sqlx::query_scalar(
            "SELECT body FROM psp_payments WHERE payment_ref > $1 ORDER BY payment_ref LIMIT $2",
        )
        .bind(after.map(PaymentRef::as_str).unwrap_or(""))
        .bind(page(limit))
        .fetch_all(self.pg.primary())
        .await
        .map_err(error::db)?;
        bodies.into_iter().map(decode).collect()
    }
}

/// A stored payment body back as a payment.
fn decode(body: serde_json::Value) -> PortResult<Payment> {
    serde_json::from_value(body).map_err(|e| error::corrupt("payment", e))
}
