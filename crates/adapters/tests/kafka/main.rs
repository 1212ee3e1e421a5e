//! The Kafka adapter against a real Kafka-protocol broker (`KAFKA_BROKERS`, default
//! `127.0.0.1:9092`; `.ci/run` starts tansu there) and, for the relay, the PostgreSQL server.
//! Every test uses topics under a prefix of its own. Without a broker the tests skip with the
//! reason printed; under `CI=true` a missing broker fails them.
#![cfg(all(feature = "kafka", feature = "postgres"))]

mod e2e;
mod faults;
mod group;
mod harness;
mod log;
#[allow(
    dead_code,
    unreachable_pub,
    reason = "shared with the PostgreSQL suite"
)]
#[path = "../postgres/harness.rs"]
mod pg;
mod relay;
mod warehouse;
