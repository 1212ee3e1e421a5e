//! E-mail notifications over SMTP (lettre): [`SmtpNotifier`], a [`Notifier`] that renders each
//! [`NotificationKind`] from [`Templates`] as plain text and HTML, sends it with retries, and
//! delivers each notification key once.
//!
//! Once per key: the notifier claims `notify:{key}` in an [`IdempotencyStore`] (the same port
//! the HTTP layer's `Idempotency-Key` uses, so on PostgreSQL the claim is shared by every
//! instance) with a fingerprint of the notification. A key already sent answers `Ok` without
//! sending; the same key with other content is `Conflict`; a key another instance is sending
//! right now is `Unavailable` (retry later). A send that fails gives the claim back, so a later
//! retry sends; so does a send whose caller gave up on it (the future dropped by a step
//! timeout). The whole send, retries included, ends within `deadline`, which must be shorter
//! than the claim's lease and than the caller's own timeout (the saga's step timeout is 10 s;
//! the default deadline 8 s), so a claim is never taken over while its send still runs. A send
//! cut off by the deadline after the message went out is `Indeterminate`: the server may have
//! taken it, and a retry may deliver a second copy. The message's `Message-ID` is derived from
//! the key, so such a copy is recognisable as the same message.
//!
//! Retries: a transient failure (a 4xx reply, a refused or dropped connection, a timeout) is
//! tried again after `backoff`, `2 × backoff`, … up to `attempts` times, then `Unavailable`. A
//! permanent refusal of the mailbox or the message (5.5.x: unknown mailbox, message refused) is
//! `Refused` at once; other permanent replies (authentication, a bad command) are the
//! deployment's fault and `Unavailable`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use adapters::smtp::{EmailUserIds, SmtpConfig, SmtpNotifier};
//! use commerce_core::memory::InMemoryIdempotencyStore;
//! let notifier = SmtpNotifier::new(
//!     SmtpConfig::new("smtp://127.0.0.1:2525", "Shop <shop@example.com>")?,
//!     Arc::new(EmailUserIds),
//!     Arc::new(InMemoryIdempotencyStore::new()),
//!     Arc::new(adapters::SystemClock),
//! )?;
//! # Ok(()) }
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::TimeDelta;
use commerce_core::{
    Begin, Clock, ErrorKind, IdempotencyKey, IdempotencyStore, Notification, NotificationKind,
    Notifier, PortError, PortResult, UserId,
};
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// Where and how to send.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    /// `smtp://[user:password@]host[:port][?tls=required|opportunistic]` or `smtps://…` (TLS
    /// from the first byte); lettre's URL form.
    pub url: String,
    /// The sender, `Name <address>` or `address`.
    pub from: Mailbox,
    /// Sends tried for one notification before it is `Unavailable` (at least 1).
    pub attempts: u32,
    /// The wait before the second try; each later one waits one more `backoff`.
    pub backoff: Duration,
    /// How long a claim on a key lasts while a send runs (a crashed sender's claim is taken
    /// over after it).
    pub lease: TimeDelta,
    /// How long one SMTP exchange may take.
    pub timeout: Duration,
    /// How long one `send` may take, retries included (below `lease`).
    pub deadline: Duration,
    /// What the messages say.
    pub templates: Templates,
}

impl SmtpConfig {
    /// `url` and `from`, 3 attempts 500 ms apart, a 5-minute claim, a 5 s timeout per
    /// exchange, an 8 s deadline per send, the default [`Templates`].
    ///
    /// # Errors
    /// `Invalid` (field `from`) for a sender that is not a mailbox.
    pub fn new(url: &str, from: &str) -> PortResult<SmtpConfig> {
        let from: Mailbox = from.parse().map_err(|e| {
            PortError::new(ErrorKind::Invalid, format!("not a mailbox: {e}")).with_field("from")
        })?;
        Ok(SmtpConfig {
            url: url.to_owned(),
            from,
            attempts: 3,
            backoff: Duration::from_millis(500),
            lease: TimeDelta::minutes(5),
            timeout: Duration::from_secs(5),
            deadline: Duration::from_secs(8),
            templates: Templates::default(),
        })
    }
}

/// Finds a customer's e-mail address.
#[async_trait]
pub trait Directory: Send + Sync + fmt::Debug {
    /// The address of `user`; `None` when there is none.
    async fn email(&self, user: &UserId) -> PortResult<Option<String>>;
}

/// A [`Directory`] for shops whose customer ids are their e-mail addresses (the reference
/// server's): an id with an `@` is the address.
#[derive(Debug, Clone, Copy, Default)]
pub struct EmailUserIds;

#[async_trait]
impl Directory for EmailUserIds {
    async fn email(&self, user: &UserId) -> PortResult<Option<String>> {
        let id = user.as_str();
        Ok(id.contains('@').then(|| id.to_owned()))
    }
}

/// One message's subject, plain text and HTML, with placeholders `{shop}`, `{shop_url}`,
/// `{order_id}` and `{sku}` (empty when the notification has none). Values are HTML-escaped in
/// the HTML part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// The HTML body.
    pub html: String,
}

/// The messages per [`NotificationKind`], and the shop's name and address they mention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Templates {
    /// The shop's name (`{shop}`).
    pub shop: String,
    /// The shop's address on the web (`{shop_url}`).
    pub shop_url: String,
    /// Order confirmed.
    pub order_confirmed: Template,
    /// Order cancelled.
    pub order_cancelled: Template,
    /// Order shipped.
    pub order_shipped: Template,
    /// Order delivered.
    pub order_delivered: Template,
    /// A cart left behind.
    pub abandoned_cart: Template,
    /// A watched product back in stock.
    pub back_in_stock: Template,
}

fn template(subject: &str, line: &str) -> Template {
    Template {
        subject: subject.to_owned(),
        text: format!("Hello,\n\n{line}\n\n-- \n{{shop}}\n{{shop_url}}\n"),
        html: format!(
            "<!doctype html><html><body><p>Hello,</p><p>{line}</p>\
             <p><a href=\"{{shop_url}}\">{{shop}}</a></p></body></html>"
        ),
    }
}

impl Default for Templates {
    fn default() -> Templates {
        Templates {
            shop: "The reference shop".into(),
            shop_url: "http://127.0.0.1:8080/".into(),
            order_confirmed: template(
                "Your order {order_id} is confirmed",
                "Thank you: your order {order_id} is confirmed. We will tell you when it ships.",
            ),
            order_cancelled: template(
                "Your order {order_id} was cancelled",
                "Your order {order_id} was cancelled; any payment taken is refunded.",
            ),
            order_shipped: template(
                "Your order {order_id} is on its way",
                "Your order {order_id} has shipped. Follow it from your order page.",
            ),
            order_delivered: template(
                "Your order {order_id} was delivered",
                "Your order {order_id} was delivered. We hope you enjoy it.",
            ),
            abandoned_cart: template(
                "You left something in your cart",
                "Your cart is waiting for you, with everything you put in it.",
            ),
            back_in_stock: template(
                "{sku} is back in stock",
                "Good news: {sku}, which you asked us to watch, is back in stock.",
            ),
        }
    }
}

impl Templates {
    fn of(&self, kind: NotificationKind) -> &Template {
        match kind {
            NotificationKind::OrderConfirmed => &self.order_confirmed,
            NotificationKind::OrderCancelled => &self.order_cancelled,
            NotificationKind::OrderShipped => &self.order_shipped,
            NotificationKind::OrderDelivered => &self.order_delivered,
            NotificationKind::AbandonedCart => &self.abandoned_cart,
            NotificationKind::BackInStock => &self.back_in_stock,
        }
    }

    /// The subject, text and HTML of `n`.
    pub fn render(&self, n: &Notification) -> (String, String, String) {
        let t = self.of(n.kind);
        let order = n.order_id.as_ref().map_or("", |o| o.as_str());
        let sku = n.sku.as_ref().map_or("", |s| s.as_str());
        let vars = [
            ("{shop_url}", self.shop_url.as_str()),
            ("{shop}", self.shop.as_str()),
            ("{order_id}", order),
            ("{sku}", sku),
        ];
        let fill = |text: &str, escape: bool| {
            let mut out = text.to_owned();
            for (name, value) in vars {
                let value = if escape {
                    html_escape(value)
                } else {
                    value.to_owned()
                };
                out = out.replace(name, &value);
            }
            out
        };
        (
            fill(&t.subject, false),
            fill(&t.text, false),
            fill(&t.html, true),
        )
    }
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A [`Notifier`] sending e-mail over SMTP (see the [module docs](self)).
pub struct SmtpNotifier {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    config: SmtpConfig,
    directory: Arc<dyn Directory>,
    ledger: Arc<dyn IdempotencyStore>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for SmtpNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may hold a password: not printed.
        f.debug_struct("SmtpNotifier")
            .field("from", &self.config.from.to_string())
            .field("attempts", &self.config.attempts)
            .finish_non_exhaustive()
    }
}

impl SmtpNotifier {
    /// A notifier sending through `config.url`, addressing customers through `directory`,
    /// remembering sent keys in `ledger`.
    ///
    /// # Errors
    /// `Invalid` (field `smtp_url`) for a URL lettre cannot read; (field `attempts`) for 0;
    /// (field `deadline`) for a deadline not shorter than the lease.
    pub fn new(
        config: SmtpConfig,
        directory: Arc<dyn Directory>,
        ledger: Arc<dyn IdempotencyStore>,
        clock: Arc<dyn Clock>,
    ) -> PortResult<SmtpNotifier> {
        if config.attempts == 0 {
            return Err(PortError::new(ErrorKind::Invalid, "at least 1").with_field("attempts"));
        }
        let lease = config.lease.to_std().unwrap_or_default();
        if config.deadline.is_zero() || config.deadline >= lease {
            return Err(PortError::new(
                ErrorKind::Invalid,
                "positive and shorter than the claim's lease",
            )
            .with_field("deadline"));
        }
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&config.url)
            .map_err(|e| PortError::new(ErrorKind::Invalid, e.to_string()).with_field("smtp_url"))?
            .timeout(Some(config.timeout))
            .build();
        Ok(SmtpNotifier {
            transport,
            config,
            directory,
            ledger,
            clock,
        })
    }

    fn message(&self, n: &Notification, to: &str) -> PortResult<Message> {
        let to: Mailbox = to.parse().map_err(|e| {
            PortError::new(
                ErrorKind::Refused,
                format!("{}: not an e-mail address: {e}", n.recipient),
            )
        })?;
        let (subject, text, html) = self.config.templates.render(n);
        let domain = self.config.from.email.domain().to_owned();
        Message::builder()
            .from(self.config.from.clone())
            .to(to)
            .subject(subject)
            .message_id(Some(format!("<{}@{domain}>", message_local_part(&n.key))))
            .multipart(MultiPart::alternative_plain_html(text, html))
            .map_err(|e| PortError::new(ErrorKind::Internal, format!("building the message: {e}")))
    }

    /// Sends with retries: `Ok`, or the error of the last try.
    async fn deliver(&self, message: &Message) -> PortResult<()> {
        let mut last = None;
        for attempt in 1..=self.config.attempts {
            match self.transport.send(message.clone()).await {
                Ok(_) => return Ok(()),
                Err(e) if e.is_permanent() => {
                    use lettre::transport::smtp::response::Category;
                    // 5.5.x: this mailbox or this message; anything else permanent
                    // (authentication, syntax) is the deployment's to fix.
                    let kind = match e.status() {
                        Some(code) if code.category == Category::MailSystem => ErrorKind::Refused,
                        _ => ErrorKind::Unavailable,
                    };
                    return Err(PortError::new(
                        kind,
                        format!("the mail server refused the message: {e}"),
                    ));
                }
                Err(e) => {
                    tracing::warn!(attempt, error = %e, "sending a notification failed; retrying");
                    last = Some(e);
                    if attempt < self.config.attempts {
                        tokio::time::sleep(self.config.backoff * attempt).await;
                    }
                }
            }
        }
        Err(PortError::new(
            ErrorKind::Unavailable,
            format!(
                "the mail server did not take the message in {} attempts: {}",
                self.config.attempts,
                last.map(|e| e.to_string()).unwrap_or_default()
            ),
        ))
    }
}

/// The key as the local part of a `Message-ID`: letters, digits and `.-_` kept, the rest as
/// `=XX`, so two keys never share an id.
fn message_local_part(key: &IdempotencyKey) -> String {
    let mut out = String::new();
    for b in key.as_str().bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("={b:02X}"));
        }
    }
    out
}

/// FNV-1a, 64 bits.
fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A stable fingerprint of the notification's content (FNV-1a over its JSON).
fn fingerprint(n: &Notification) -> PortResult<String> {
    let bytes = serde_json::to_vec(n)
        .map_err(|e| PortError::new(ErrorKind::Internal, format!("fingerprint: {e}")))?;
    Ok(format!("{:016x}", fnv(&bytes)))
}

/// The claim's key: `notify:{key}`, or for a key too long for that, `notify-h:` with the key's
/// length, its hash and as much of it as fits (never the form of a short key's claim) (a key is at most
/// [`commerce_core::limits::KEY_LEN_MAX`] bytes).
fn claim_key(key: &IdempotencyKey) -> PortResult<IdempotencyKey> {
    let k = key.as_str();
    let plain = format!("notify:{k}");
    let text = if plain.len() <= commerce_core::limits::KEY_LEN_MAX {
        plain
    } else {
        let head = format!("notify-h:{}:{:016x}:", k.len(), fnv(k.as_bytes()));
        let room = commerce_core::limits::KEY_LEN_MAX.saturating_sub(head.len());
        let mut end = room.min(k.len());
        while !k.is_char_boundary(end) {
            end -= 1;
        }
        format!("{head}{}", &k[..end])
    };
    IdempotencyKey::new(text)
        .map_err(|e| PortError::new(ErrorKind::Invalid, e.to_string()).with_field("key"))
}

/// Gives a claim back if the send holding it is dropped before it finishes (its caller timed
/// out): without it the key would stay "being sent" until the lease ends.
struct Claim {
    ledger: Arc<dyn IdempotencyStore>,
    key: IdempotencyKey,
    token: Option<commerce_core::LeaseToken>,
}

impl Claim {
    /// The token, the guard disarmed: the caller completes or abandons the claim itself.
    fn take(&mut self) -> Option<commerce_core::LeaseToken> {
        self.token.take()
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let Some(token) = self.token.take() else {
            return;
        };
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let (ledger, key) = (self.ledger.clone(), self.key.clone());
            handle.spawn(async move {
                let _ = ledger.abandon(&key, token).await;
            });
        }
    }
}

#[async_trait]
impl Notifier for SmtpNotifier {
    async fn send(&self, n: &Notification) -> PortResult<()> {
        let key = claim_key(&n.key)?;
        let token = match self
            .ledger
            .begin(&key, &fingerprint(n)?, self.clock.now(), self.config.lease)
            .await?
        {
            Begin::Started { token } => token,
            Begin::Completed(_) => return Ok(()),
            Begin::Mismatch => {
                return Err(PortError::new(
                    ErrorKind::Conflict,
                    format!("notification key {} was used for another message", n.key),
                ));
            }
            Begin::InProgress => {
                return Err(PortError::new(
                    ErrorKind::Unavailable,
                    format!("notification {} is being sent; retry later", n.key),
                ));
            }
        };
        let mut claim = Claim {
            ledger: self.ledger.clone(),
            key: key.clone(),
            token: Some(token),
        };
        let mut went_out = false;
        let sent = tokio::time::timeout(self.config.deadline, async {
            let to = self.directory.email(&n.recipient).await?.ok_or_else(|| {
                PortError::new(
                    ErrorKind::Refused,
                    format!("no e-mail address for {}", n.recipient),
                )
            })?;
            let message = self.message(n, &to)?;
            went_out = true;
            self.deliver(&message).await
        })
        .await
        .unwrap_or_else(|_| {
            Err(PortError::new(
                if went_out {
                    ErrorKind::Indeterminate
                } else {
                    ErrorKind::Unavailable
                },
                format!(
                    "sending notification {} took longer than {:?}",
                    n.key, self.config.deadline
                ),
            ))
        });
        let Some(token) = claim.take() else {
            return sent;
        };
        match sent {
            Ok(()) => {
                if let Err(e) = self
                    .ledger
                    .complete(&key, token, b"sent".to_vec(), self.clock.now())
                    .await
                {
                    // Delivered; only the record failed. A retry after the claim's lease
                    // sends again, with the same Message-ID.
                    tracing::warn!(key = %n.key, error = %e, "a sent notification was not recorded");
                }
                Ok(())
            }
            Err(e) => {
                // Not sent: the key is free for a later try.
                if let Err(a) = self.ledger.abandon(&key, token).await {
                    tracing::warn!(key = %n.key, error = %a, "a failed notification's claim was not given back");
                }
                Err(e)
            }
        }
    }
}
