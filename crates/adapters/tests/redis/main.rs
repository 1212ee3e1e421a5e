//! The Redis stores against real servers: the local single node (`REDIS_URL`, default
//! `redis://127.0.0.1:6379`) and the three-master cluster `.ci/run` starts
//! (`REDIS_CLUSTER_URLS`, default ports 7001–7003). Every suite runs against both. Each test
//! works in a namespace of its own. Without a server the tests skip with the reason printed;
//! under `CI=true` a missing server fails them.
#![cfg(feature = "redis")]

mod admission;
mod carts;
mod harness;
mod projection;
mod ratelimit;
mod recs;
mod reshard;
