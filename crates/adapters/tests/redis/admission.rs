//! The flash-sale queue on a single node and on the cluster: the conformance suite, and the
//! same lottery order as the in-memory queue.

use crate::harness::{cluster, single};

mod single_node {
    use super::*;
    saga::admission_queue_conformance!({
        let Some(r) = single().await else { return };
        r.admission_queue()
    });
}

mod on_cluster {
    use super::*;
    saga::admission_queue_conformance!({
        let Some(r) = cluster().await else { return };
        r.admission_queue()
    });
}
