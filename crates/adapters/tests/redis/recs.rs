//! The recommendations' stores on a single node and on the cluster: the recs crate's
//! conformance suites.

use crate::harness::{cluster, single};

mod topk_single_node {
    use super::*;
    recs::topk_store_conformance!({
        let Some(r) = single().await else { return };
        r.topk_store()
    });
}

mod topk_on_cluster {
    use super::*;
    recs::topk_store_conformance!({
        let Some(r) = cluster().await else { return };
        r.topk_store()
    });
}

mod recently_viewed_single_node {
    use super::*;
    recs::recently_viewed_conformance!({
        let Some(r) = single().await else { return };
        r.recently_viewed(5)
    });
}

mod recently_viewed_on_cluster {
    use super::*;
    recs::recently_viewed_conformance!({
        let Some(r) = cluster().await else { return };
        r.recently_viewed(5)
    });
}

mod back_in_stock_single_node {
    use super::*;
    recs::back_in_stock_conformance!({
        let Some(r) = single().await else { return };
        r.back_in_stock()
    });
}

mod back_in_stock_on_cluster {
    use super::*;
    recs::back_in_stock_conformance!({
        let Some(r) = cluster().await else { return };
        r.back_in_stock()
    });
}
