//! The in-memory stores run the conformance suites, as the Redis adapters will.

mod topk {
    recs::topk_store_conformance!(recs::InMemoryTopKStore::new());
}

mod recently_viewed {
    recs::recently_viewed_conformance!(recs::InMemoryRecentlyViewed::new(5));
}

mod back_in_stock {
    recs::back_in_stock_conformance!(recs::InMemoryBackInStock::new());
}

mod experiment_log {
    recs::experiment_log_conformance!(recs::InMemoryExperimentLog::new());
}
