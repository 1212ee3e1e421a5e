//! The in-memory store runs the conformance suite, as a database adapter will.

reviews::review_store_conformance!({
    let log = std::sync::Arc::new(commerce_core::memory::InMemoryEventLog::new());
    (reviews::InMemoryReviewStore::with_outbox(log.clone()), log)
});
