//! The SMTP notifier against a local SMTP sink started by the tests (`sink.rs`, a small
//! server speaking enough SMTP for a client, which records what it accepted and can be told to
//! fail): every message arrives exactly once, with its text and HTML parts, whatever the
//! retries.
#![cfg(feature = "smtp")]

#[cfg(feature = "postgres")]
#[path = "../postgres/harness.rs"]
#[allow(dead_code, reason = "shared with the PostgreSQL suite")]
mod harness;
mod sink;

use std::sync::Arc;
use std::time::Duration;

use adapters::smtp::{EmailUserIds, SmtpConfig, SmtpNotifier};
use commerce_core::memory::InMemoryIdempotencyStore;
use commerce_core::{
    ErrorKind, IdempotencyKey, Notification, NotificationKind, Notifier, OrderId, Sku, UserId,
};
use sink::{Fault, Sink};

fn notifier(sink: &Sink) -> SmtpNotifier {
    notifier_with(sink, Arc::new(InMemoryIdempotencyStore::new()))
}

fn notifier_with(sink: &Sink, ledger: Arc<InMemoryIdempotencyStore>) -> SmtpNotifier {
    let mut config =
        SmtpConfig::new(&sink.url(), "Reference Shop <shop@example.com>").expect("config");
    config.backoff = Duration::from_millis(20);
    config.timeout = Duration::from_secs(5);
    config.templates.shop = "Tea & Cake".into();
    SmtpNotifier::new(
        config,
        Arc::new(EmailUserIds),
        ledger,
        Arc::new(adapters::SystemClock),
    )
    .expect("notifier")
}

fn note(key: &str, kind: NotificationKind, to: &str) -> Notification {
    Notification {
        key: IdempotencyKey::new(key).expect("key"),
        recipient: UserId::new(to).expect("user"),
        kind,
        order_id: Some(OrderId::new("o-1001").expect("order")),
        sku: Some(Sku::new("TEAPOT-2").expect("sku")),
    }
}

/// Every customer at `{id}@example.com`.
#[derive(Debug)]
struct AtExample;

#[async_trait::async_trait]
impl adapters::smtp::Directory for AtExample {
    async fn email(&self, user: &UserId) -> commerce_core::PortResult<Option<String>> {
        Ok(Some(format!("{user}@example.com")))
    }
}

commerce_core::notifier_conformance!({
    let sink = Sink::start().await;
    let n = SmtpNotifier::new(
        SmtpConfig::new(&sink.url(), "shop@example.com").expect("config"),
        Arc::new(AtExample),
        Arc::new(InMemoryIdempotencyStore::new()),
        Arc::new(adapters::SystemClock),
    )
    .expect("notifier");
    // The sink lives as long as the notifier is used: leaked for the case.
    std::mem::forget(sink);
    n
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_arrives_once_with_text_and_html() {
    let sink = Sink::start().await;
    let n = notifier(&sink);
    let kinds = [
        (
            NotificationKind::OrderConfirmed,
            "Your order o-1001 is confirmed",
        ),
        (
            NotificationKind::OrderCancelled,
            "Your order o-1001 was cancelled",
        ),
        (
            NotificationKind::OrderShipped,
            "Your order o-1001 is on its way",
        ),
        (
            NotificationKind::OrderDelivered,
            "Your order o-1001 was delivered",
        ),
        (
            NotificationKind::AbandonedCart,
            "You left something in your cart",
        ),
        (NotificationKind::BackInStock, "TEAPOT-2 is back in stock"),
    ];
    for (i, (kind, _)) in kinds.iter().enumerate() {
        let note = note(&format!("k-{i}"), *kind, "ada@example.com");
        n.send(&note).await.expect("sent");
        // Sent again (a retried saga step): nothing more arrives.
        n.send(&note).await.expect("sent again");
    }
    let got = sink.messages();
    assert_eq!(got.len(), kinds.len(), "each once");
    for (m, (_, subject)) in got.iter().zip(kinds) {
        assert_eq!(m.from, "<shop@example.com>");
        assert_eq!(m.to, ["<ada@example.com>"]);
        assert!(
            m.data.contains(&format!("Subject: {subject}")),
            "{}",
            m.data
        );
        assert!(m.data.contains("multipart/alternative"), "{}", m.data);
        assert!(m.data.contains("Content-Type: text/plain"), "{}", m.data);
        assert!(m.data.contains("Content-Type: text/html"), "{}", m.data);
        // The shop's name, plain in the text and escaped in the HTML.
        let body = m.decoded();
        assert!(body.contains("-- \nTea & Cake\n"), "{body}");
        assert!(body.contains("Tea &amp; Cake</a>"), "{body}");
    }
    // Message-IDs from the keys: distinct, stable.
    let ids: Vec<&str> = got.iter().filter_map(|m| m.header("Message-ID")).collect();
    assert_eq!(ids.len(), kinds.len());
    assert!(
        ids[0].contains("notify") || ids[0].contains("k-0"),
        "{}",
        ids[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_failure_is_retried_and_delivers_once() {
    let sink = Sink::start().await;
    // The server answers 451 to the first two messages' data.
    sink.fail(Fault::TransientData(2));
    let n = notifier(&sink);
    n.send(&note(
        "t-1",
        NotificationKind::OrderShipped,
        "bo@example.com",
    ))
    .await
    .expect("sent on the third try");
    assert_eq!(sink.messages().len(), 1);
    assert_eq!(sink.data_attempts(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_refusal_is_refused_at_once_and_the_key_stays_free() {
    let sink = Sink::start().await;
    sink.fail(Fault::UnknownMailbox("nobody@example.com".into()));
    let n = notifier(&sink);
    let bad = note(
        "p-1",
        NotificationKind::OrderConfirmed,
        "nobody@example.com",
    );
    let err = n.send(&bad).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Refused, "{err}");
    assert_eq!(sink.rcpt_attempts(), 1, "no retry of a permanent refusal");
    assert!(sink.messages().is_empty());
    // Not recorded as sent: once the mailbox exists, the same key delivers.
    sink.fail(Fault::None);
    n.send(&bad).await.expect("delivered now");
    assert_eq!(sink.messages().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mail_server_down_is_unavailable_and_nothing_is_recorded() {
    let sink = Sink::start().await;
    let ledger = Arc::new(InMemoryIdempotencyStore::new());
    let n = notifier_with(&sink, ledger.clone());
    let url_port = sink.port();
    sink.stop().await;
    let note = note("d-1", NotificationKind::OrderConfirmed, "cy@example.com");
    let err = n.send(&note).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
    // Back up on the same port: the retry delivers, once.
    let sink = Sink::start_on(url_port).await;
    n.send(&note).await.expect("delivered after the outage");
    n.send(&note).await.expect("and not again");
    assert_eq!(sink.messages().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sends_of_one_key_deliver_once() {
    let sink = Sink::start().await;
    sink.fail(Fault::SlowData(Duration::from_millis(300)));
    let n = Arc::new(notifier(&sink));
    let note = note("c-1", NotificationKind::OrderConfirmed, "di@example.com");
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (n, note) = (n.clone(), note.clone());
            tokio::spawn(async move { n.send(&note).await })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(()) => ok += 1,
            Err(e) => assert_eq!(e.kind, ErrorKind::Unavailable, "{e}"),
        }
    }
    assert!(ok >= 1);
    assert_eq!(sink.messages().len(), 1, "one delivery for one key");
    // Later, every retry is answered without sending.
    n.send(&note).await.expect("already sent");
    assert_eq!(sink.messages().len(), 1);
}

/// A permanent reply that is not about the mailbox or the message (here: authentication
/// required) is the deployment's to fix: `Unavailable`, so the step is retried, not dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_reply_about_the_deployment_is_unavailable() {
    let sink = Sink::start().await;
    sink.fail(Fault::RejectData(
        "530 5.7.0 authentication required".into(),
    ));
    let n = notifier(&sink);
    let note = note("a-1", NotificationKind::OrderConfirmed, "fa@example.com");
    assert_eq!(
        n.send(&note).await.unwrap_err().kind,
        ErrorKind::Unavailable
    );
    sink.fail(Fault::RejectData("554 5.6.0 message refused".into()));
    assert_eq!(n.send(&note).await.unwrap_err().kind, ErrorKind::Refused);
    sink.fail(Fault::None);
    n.send(&note)
        .await
        .expect("delivered once the server takes it");
    assert_eq!(sink.messages().len(), 1);
}

/// A caller that gives up on a send (the saga's step timeout drops the future) leaves the key
/// free: the next try sends at once instead of answering "being sent" until the lease ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_its_caller_gave_up_on_frees_its_key() {
    let sink = Sink::start().await;
    sink.fail(Fault::SlowGreeting(Duration::from_secs(3)));
    let n = notifier(&sink);
    let note = note("g-1", NotificationKind::OrderConfirmed, "gu@example.com");
    let cut = tokio::time::timeout(Duration::from_millis(200), n.send(&note)).await;
    assert!(cut.is_err(), "the caller gave up");
    sink.fail(Fault::None);
    // The claim is given back by a task the dropped send spawned.
    let mut sent = n.send(&note).await;
    for _ in 0..20 {
        if sent.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        sent = n.send(&note).await;
    }
    sent.expect("sent on a later try");
    assert_eq!(sink.messages().len(), 1);
}

/// The whole send ends within its deadline: a server that stalls makes it `Indeterminate`
/// (the message may have gone out), well before the claim's lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_server_ends_the_send_at_its_deadline() {
    let sink = Sink::start().await;
    sink.fail(Fault::SlowData(Duration::from_secs(5)));
    let mut config = SmtpConfig::new(&sink.url(), "shop@example.com").expect("config");
    config.deadline = Duration::from_millis(500);
    let n = SmtpNotifier::new(
        config,
        Arc::new(EmailUserIds),
        Arc::new(InMemoryIdempotencyStore::new()),
        Arc::new(adapters::SystemClock),
    )
    .expect("notifier");
    let err = n
        .send(&note(
            "s-1",
            NotificationKind::OrderConfirmed,
            "st@example.com",
        ))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Indeterminate, "{err}");
}

/// A key as long as keys may be still gets its own claim.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_longest_keys_are_sent_once_each() {
    let sink = Sink::start().await;
    let n = notifier(&sink);
    let long = |c: char| format!("{}{c}", "k".repeat(commerce_core::limits::KEY_LEN_MAX - 1));
    for c in ['a', 'b'] {
        let note = note(&long(c), NotificationKind::OrderShipped, "lo@example.com");
        n.send(&note).await.expect("sent");
        n.send(&note).await.expect("not again");
    }
    assert_eq!(sink.messages().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_without_an_address_is_refused() {
    let sink = Sink::start().await;
    let n = notifier(&sink);
    let err = n
        .send(&note(
            "n-1",
            NotificationKind::OrderConfirmed,
            "customer-42",
        ))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Refused);
    assert!(sink.messages().is_empty());
}

#[test]
fn bad_settings_are_refused() {
    assert_eq!(
        SmtpConfig::new("smtp://h", "not a mailbox")
            .unwrap_err()
            .kind,
        ErrorKind::Invalid
    );
    let mut c = SmtpConfig::new("smtp://h", "shop@example.com").expect("config");
    c.attempts = 0;
    let err = SmtpNotifier::new(
        c,
        Arc::new(EmailUserIds),
        Arc::new(InMemoryIdempotencyStore::new()),
        Arc::new(adapters::SystemClock),
    )
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Invalid);
    let mut c = SmtpConfig::new("smtp://h", "shop@example.com").expect("config");
    c.deadline = Duration::from_secs(600);
    let err = SmtpNotifier::new(
        c,
        Arc::new(EmailUserIds),
        Arc::new(InMemoryIdempotencyStore::new()),
        Arc::new(adapters::SystemClock),
    )
    .unwrap_err();
    assert_eq!(err.field.as_deref(), Some("deadline"));
}

/// Two server processes share the ledger on PostgreSQL: a notification both try to send at
/// once is delivered once.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_sharing_postgres_deliver_once() {
    let Some(pg) = harness::fresh().await else {
        return;
    };
    let sink = Sink::start().await;
    sink.fail(Fault::SlowData(Duration::from_millis(200)));
    let instance = || {
        let mut config = SmtpConfig::new(&sink.url(), "shop@example.com").expect("config");
        config.backoff = Duration::from_millis(20);
        Arc::new(
            SmtpNotifier::new(
                config,
                Arc::new(EmailUserIds),
                Arc::new(pg.idempotency()),
                Arc::new(adapters::SystemClock),
            )
            .expect("notifier"),
        )
    };
    let (a, b) = (instance(), instance());
    for i in 0..10 {
        let note = note(
            &format!("pg-{i}"),
            NotificationKind::OrderShipped,
            "ed@example.com",
        );
        let (x, y) = tokio::join!(a.send(&note), b.send(&note));
        for r in [x, y] {
            if let Err(e) = r {
                assert_eq!(e.kind, ErrorKind::Unavailable, "{e}");
            }
        }
        // Whichever lost the race retries later and is answered without a send.
        a.send(&note).await.expect("sent once");
        b.send(&note).await.expect("sent once");
    }
    assert_eq!(sink.messages().len(), 10, "each notification once");
}
