//! The real-time feed: views bounded per session, back-in-stock notifies each watcher once,
//! other events ignored, oversized batches refused.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta};
use commerce_core::{DomainEvent, EventEnvelope, EventId, SessionId, Sku, UserId};
use recs::realtime::RealtimeFeed;
use recs::{BackInStockStore, InMemoryBackInStock, InMemoryRecentlyViewed, RecentlyViewedStore};

fn view(n: u32, session: &SessionId, sku: &str) -> EventEnvelope {
    EventEnvelope::new(
        EventId::new(format!("{session}:view:{n}")).unwrap(),
        DateTime::UNIX_EPOCH + TimeDelta::seconds(i64::from(n)),
        DomainEvent::ProductViewed {
            session: session.clone(),
            user: None,
            sku: Sku::new(sku).unwrap(),
        },
    )
}

#[tokio::test]
async fn views_are_bounded_per_session_and_newest_first() {
    let views = Arc::new(InMemoryRecentlyViewed::new(3));
    let mut feed = RealtimeFeed::new(views.clone(), Arc::new(InMemoryBackInStock::new()));
    let (a, b) = (SessionId::new("a").unwrap(), SessionId::new("b").unwrap());
    let events: Vec<EventEnvelope> = (1..=5)
        .map(|n| view(n, &a, &format!("P{n}")))
        .chain([view(1, &b, "Q"), view(6, &a, "P2")])
        .collect();
    let report = feed.apply(&events).await.unwrap();
    assert_eq!(report.views, 7);
    let recent: Vec<String> = views
        .recent(&a, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.sku.to_string())
        .collect();
    assert_eq!(recent, ["P2", "P5", "P4"]);
    assert_eq!(views.recent(&b, 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn back_in_stock_notifies_watchers_once_and_other_events_are_ignored() {
    let stock = Arc::new(InMemoryBackInStock::new());
    let mut feed = RealtimeFeed::new(Arc::new(InMemoryRecentlyViewed::new(3)), stock.clone());
    let mug = Sku::new("MUG").unwrap();
    for u in ["ada", "bob"] {
        stock.watch(&UserId::new(u).unwrap(), &mug).await.unwrap();
    }
    let bis = |id: &str| {
        EventEnvelope::new(
            EventId::new(id).unwrap(),
            DateTime::UNIX_EPOCH,
            DomainEvent::BackInStock {
                sku: mug.clone(),
                available: 2,
            },
        )
    };
    let other = EventEnvelope::new(
        EventId::new("x").unwrap(),
        DateTime::UNIX_EPOCH,
        DomainEvent::ProductRetired {
            product_id: commerce_core::ProductId::new("p").unwrap(),
            sku: mug.clone(),
            version: 2,
        },
    );
    let report = feed.apply(&[bis("e1"), other, bis("e2")]).await.unwrap();
    assert_eq!(
        report.notified.len(),
        1,
        "the second event finds no watcher"
    );
    assert_eq!(report.notified[0].1.len(), 2);
    assert_eq!(report.ignored, 1);
    assert_eq!(
        stock
            .arrivals(&UserId::new("ada").unwrap(), 5)
            .await
            .unwrap()[0]
            .sku,
        mug
    );
    let many: Vec<EventEnvelope> = (0..=recs::limits::FEED_BATCH_MAX)
        .map(|n| bis(&format!("b{n}")))
        .collect();
    assert_eq!(feed.apply(&many).await.unwrap_err().field(), Some("events"));
}
