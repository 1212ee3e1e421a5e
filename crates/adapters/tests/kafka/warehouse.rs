//! The Parquet warehouse sink: partitioned by day, idempotent on redelivery, unfinished
//! batches removed, and fed by a consumer group from the broker.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use adapters::kafka::{Family, GroupConsumer, ParquetSink, PartitionBatch};
use commerce_core::testkit::sample_product;
use commerce_core::{EventEnvelope, LoggedEvent};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::RowAccessor;

use crate::harness::{at, config, order_event, publisher, stock_event};

fn logged(offset: u64, envelope: EventEnvelope) -> LoggedEvent {
    LoggedEvent { offset, envelope }
}

fn batch(partition: i32, events: Vec<LoggedEvent>) -> PartitionBatch {
    let next_offset = events
        .last()
        .map_or(0, |e| i64::try_from(e.offset).unwrap() + 1);
    PartitionBatch {
        topic: "orders".to_owned(),
        partition,
        events,
        next_offset,
    }
}

/// Every row under `root` (all Parquet files): (file's folder, event id).
fn rows(root: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                let reader =
                    SerializedFileReader::new(std::fs::File::open(&path).unwrap()).unwrap();
                let folder = path
                    .parent()
                    .unwrap()
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                for row in reader.get_row_iter(None).unwrap() {
                    let row = row.unwrap();
                    out.push((folder.clone(), row.get_string(0).unwrap().clone()));
                }
            }
        }
    }
    out.sort();
    out
}

fn tmp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("warehouse-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn order_and_inventory_events_land_by_family_and_day() {
    let root = tmp("days");
    let mut sink = ParquetSink::open(&root).unwrap();
    let mut late = order_event("o-2", 1);
    late.occurred_at = at(86_400);
    let product = sample_product("p-1", "SKU-1");
    let catalog = product.change_events(None, at(0)).unwrap().remove(0);
    let written = sink
        .write(&[batch(
            0,
            vec![
                logged(0, order_event("o-1", 0)),
                logged(1, stock_event("SKU-1", 0)),
                logged(2, catalog),
                logged(3, late),
            ],
        )])
        .unwrap();
    assert_eq!(written, 3, "the catalog event is not the warehouse's");
    assert_eq!(
        rows(&root),
        [
            (
                "inventory/date=2026-11-30".to_owned(),
                "SKU-1-st-0".to_owned()
            ),
            ("orders/date=2026-11-30".to_owned(), "o-1-ev-0".to_owned()),
            ("orders/date=2026-12-01".to_owned(), "o-2-ev-1".to_owned()),
        ]
    );
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn redelivery_writes_nothing_twice() {
    let root = tmp("redelivery");
    let mut sink = ParquetSink::open(&root).unwrap();
    let first: Vec<_> = (0..10)
        .map(|n| logged(u64::from(n), order_event("o-r", n)))
        .collect();
    assert_eq!(sink.write(&[batch(0, first.clone())]).unwrap(), 10);
    // The same batch again (a commit lost), then one overlapping it, then a relay's re-sent
    // copy of an event at a later offset.
    assert_eq!(sink.write(&[batch(0, first)]).unwrap(), 0);
    let overlap: Vec<_> = (5..15)
        .map(|n| logged(u64::from(n), order_event("o-r", n)))
        .collect();
    assert_eq!(sink.write(&[batch(0, overlap)]).unwrap(), 5);
    assert_eq!(
        sink.write(&[batch(0, vec![logged(15, order_event("o-r", 3))])])
            .unwrap(),
        0
    );
    // Reopened (a restart): the offsets written hold.
    drop(sink);
    let mut sink = ParquetSink::open(&root).unwrap();
    assert_eq!(sink.written_through("orders", 0), Some(16));
    let again: Vec<_> = (10..20)
        .map(|n| logged(u64::from(n), order_event("o-r", n)))
        .collect();
    assert_eq!(sink.write(&[batch(0, again)]).unwrap(), 4);
    let ids: Vec<String> = rows(&root).into_iter().map(|r| r.1).collect();
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(ids.len(), 19);
    assert_eq!(unique.len(), 19);
    let _ = std::fs::remove_dir_all(root);
}

/// Files written by a batch whose state was never recorded (a crash between them) are removed
/// on open, so the redelivered batch is not counted twice.
#[test]
fn an_unfinished_batch_is_removed_on_open() {
    let root = tmp("unfinished");
    let mut sink = ParquetSink::open(&root).unwrap();
    sink.write(&[batch(0, vec![logged(0, order_event("o-u", 0))])])
        .unwrap();
    drop(sink);
    let day = root.join("orders").join("date=2026-11-30");
    std::fs::copy(
        day.join("part-0000000000.parquet"),
        day.join("part-0000000001.parquet"),
    )
    .unwrap();
    std::fs::write(day.join("part-0000000002.parquet.tmp"), b"half").unwrap();
    let mut sink = ParquetSink::open(&root).unwrap();
    assert_eq!(rows(&root).len(), 1);
    assert!(!day.join("part-0000000002.parquet.tmp").exists());
    sink.write(&[batch(0, vec![logged(1, order_event("o-u", 1))])])
        .unwrap();
    assert_eq!(rows(&root).len(), 2);
    let _ = std::fs::remove_dir_all(root);
}

/// The warehouse consumer on the broker: order events published over six partitions end up,
/// once each, in the Parquet files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_warehouse_consumer_writes_what_the_broker_holds() {
    let Some(config) = config(6).await else {
        return;
    };
    let root = tmp("consumer");
    let topic = config.topics.topic(Family::Orders);
    let events: Vec<_> = (0..300)
        .map(|n| order_event(&format!("o-{}", n % 37), n))
        .collect();
    publisher(&config).publish(&events).await.unwrap();
    let sink = ParquetSink::open(&root).unwrap();
    let group = format!("{}warehouse", config.topics.prefix);
    let member = GroupConsumer::start(&config, &group, &[topic], sink, 500).unwrap();
    for _ in 0..600 {
        if member
            .stats()
            .applied
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 300
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    member.stop().unwrap();
    let ids: BTreeSet<String> = rows(&root).into_iter().map(|r| r.1).collect();
    let want: BTreeSet<String> = events.iter().map(|e| e.event_id.to_string()).collect();
    assert_eq!(ids, want);
    assert_eq!(rows(&root).len(), 300);
    duckdb_reads(&root, 300);
    let _ = std::fs::remove_dir_all(root);
}

/// DuckDB (Python's `duckdb` package, which `.ci/run` installs) reads the files with their
/// day partitions: `count`, distinct event ids and the `date` column from the folder names.
/// Skips with the reason without the package, unless `CI=true`.
fn duckdb_reads(root: &Path, rows: usize) {
    let query = format!(
        "import duckdb; print(duckdb.sql(\"SELECT count(*), count(DISTINCT event_id), \
         min(date)::VARCHAR, max(event_type) FROM read_parquet('{}/orders/*/*.parquet', \
         hive_partitioning = true)\").fetchall()[0])",
        root.display()
    );
    let has_duckdb = std::process::Command::new("python3")
        .args(["-c", "import duckdb"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_duckdb {
        let why = "DuckDB unavailable (pip install duckdb)";
        assert!(!std::env::var("CI").is_ok_and(|v| v == "true"), "{why}");
        #[allow(clippy::print_stderr, reason = "the reason a check is skipped")]
        {
            eprintln!("skipped the DuckDB read: {why}");
        }
        return;
    }
    let out = std::process::Command::new("python3")
        .args(["-c", &query])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("({rows}, {rows}, '2026-11-30', 'OrderStatusChanged')")
    );
}
