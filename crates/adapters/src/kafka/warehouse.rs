//! The warehouse sink: order and inventory events as Parquet files partitioned by day.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::NaiveDate;
use commerce_core::{Dedupe, ErrorKind, PortError, PortResult};
use parquet::data_type::{ByteArray, ByteArrayType, Int32Type, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use parquet::schema::types::Type;

use super::{Family, GroupSink, PartitionBatch};

/// The files' schema. `payload` is the whole envelope as JSON (DuckDB: `payload->>'$.event'`).
const SCHEMA: &str = "message event {
    REQUIRED BYTE_ARRAY event_id (UTF8);
    REQUIRED BYTE_ARRAY event_type (UTF8);
    REQUIRED INT64 occurred_at (TIMESTAMP(MICROS,true));
    REQUIRED BYTE_ARRAY aggregate_id (UTF8);
    REQUIRED BYTE_ARRAY topic (UTF8);
    REQUIRED INT32 partition;
    REQUIRED INT64 offset;
    REQUIRED BYTE_ARRAY payload (JSON);
}";

/// The sink's own state file: the next batch number and, per topic partition, the offset after
/// the last record written.
const STATE: &str = "_state.json";
/// Event ids remembered to drop a relay's republished copies.
const DEDUPE_WINDOW: usize = 100_000;

/// One row as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarehouseRow {
    /// The event id.
    pub event_id: String,
    /// The event type.
    pub event_type: String,
    /// When it happened, microseconds since the epoch (UTC).
    pub occurred_at_micros: i64,
    /// The aggregate (order or SKU).
    pub aggregate_id: String,
    /// The topic it was read from.
    pub topic: String,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// The envelope as JSON.
    pub payload: String,
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct State {
    next_batch: u64,
    /// `topic/partition` → the offset after the last record written.
    offsets: BTreeMap<String, i64>,
}

/// Writes order and inventory events to `root/<family>/date=YYYY-MM-DD/part-<batch>.parquet`,
/// one file per family and day per batch, readable by DuckDB
/// (`SELECT * FROM read_parquet('root/orders/*/*.parquet', hive_partitioning = true)`) or any
/// Parquet reader.
///
/// Idempotent on redelivery: the sink keeps, in a state file renamed into place after a
/// batch's files, the offset after the last record it wrote per topic partition, and skips
/// records below it; files of a batch whose state never got written are removed when the sink
/// opens. A relay's republished copy of an event (the same event id at a later offset) is
/// dropped within a window of recent ids, and every row carries its event id, so a query can
/// still `DISTINCT` on it across restarts. As a [`GroupSink`] it is the warehouse consumer.
#[derive(Debug)]
pub struct ParquetSink {
    root: PathBuf,
    schema: Arc<Type>,
    state: State,
    seen: Dedupe,
}

impl ParquetSink {
    /// Opens (or creates) the warehouse at `root`, removing files of a batch that did not
    /// finish.
    ///
    /// # Errors
    /// `Unavailable` when the folder cannot be read or written; `Internal` when the state file
    /// does not load.
    pub fn open(root: impl Into<PathBuf>) -> PortResult<ParquetSink> {
        let root = root.into();
        std::fs::create_dir_all(&root).map_err(io)?;
        let state: State = match std::fs::read(root.join(STATE)) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| PortError::new(ErrorKind::Internal, format!("{STATE}: {e}")))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(e) => return Err(io(e)),
        };
        remove_unfinished(&root, state.next_batch)?;
        let schema = Arc::new(
            parse_message_type(SCHEMA).map_err(|e| PortError::caused_by(ErrorKind::Internal, e))?,
        );
        Ok(ParquetSink {
            root,
            schema,
            state,
            seen: Dedupe::new(DEDUPE_WINDOW),
        })
    }

    /// The offset after the last record written from `topic`'s `partition`.
    pub fn written_through(&self, topic: &str, partition: i32) -> Option<i64> {
        self.state
            .offsets
            .get(&format!("{topic}/{partition}"))
            .copied()
    }

    /// Writes the order and inventory events of `batch` not written before; returns how many
    /// rows it wrote.
    ///
    /// # Errors
    /// `Unavailable` when a file cannot be written (nothing of the batch counts as written).
    pub fn write(&mut self, batch: &[PartitionBatch]) -> PortResult<usize> {
        let mut files: BTreeMap<(Family, NaiveDate), Vec<WarehouseRow>> = BTreeMap::new();
        let mut offsets = self.state.offsets.clone();
        for part in batch {
            let key = format!("{}/{}", part.topic, part.partition);
            let done = offsets.get(&key).copied().unwrap_or(0);
            for e in &part.events {
                let offset = i64::try_from(e.offset).unwrap_or(i64::MAX);
                if offset < done {
                    continue;
                }
                let family = Family::of(&e.envelope.event);
                if !matches!(family, Family::Orders | Family::Inventory) {
                    continue;
                }
                if !self.seen.first_time(&e.envelope.event_id) {
                    continue;
                }
                let payload = serde_json::to_string(&e.envelope)
                    .map_err(|e| PortError::caused_by(ErrorKind::Internal, e))?;
                files
                    .entry((family, e.envelope.occurred_at.date_naive()))
                    .or_default()
                    .push(WarehouseRow {
                        event_id: e.envelope.event_id.to_string(),
                        event_type: e.envelope.event_type.clone(),
                        occurred_at_micros: e.envelope.occurred_at.timestamp_micros(),
                        aggregate_id: e.envelope.partition_key.clone(),
                        topic: part.topic.clone(),
                        partition: part.partition,
                        offset,
                        payload,
                    });
            }
            let next = offsets.entry(key).or_insert(0);
            *next = (*next).max(part.next_offset);
        }
        let batch_no = self.state.next_batch;
        let mut written = 0;
        for ((family, day), rows) in &files {
            let dir = self
                .root
                .join(family.name())
                .join(format!("date={}", day.format("%Y-%m-%d")));
            std::fs::create_dir_all(&dir).map_err(io)?;
            let path = dir.join(format!("part-{batch_no:010}.parquet"));
            self.write_file(&path, rows)?;
            written += rows.len();
        }
        let state = State {
            next_batch: batch_no + 1,
            offsets,
        };
        let body =
            serde_json::to_vec(&state).map_err(|e| PortError::caused_by(ErrorKind::Internal, e))?;
        write_atomically(&self.root.join(STATE), &body)?;
        self.state = state;
        Ok(written)
    }

    fn write_file(&self, path: &Path, rows: &[WarehouseRow]) -> PortResult<()> {
        let tmp = path.with_extension("parquet.tmp");
        let file = File::create(&tmp).map_err(io)?;
        let props = Arc::new(
            WriterProperties::builder()
                .set_compression(parquet::basic::Compression::SNAPPY)
                .build(),
        );
        let mut writer = SerializedFileWriter::new(file, Arc::clone(&self.schema), props)
            .map_err(parquet_error)?;
        let mut group = writer.next_row_group().map_err(parquet_error)?;
        let mut column = 0;
        while let Some(mut col) = group.next_column().map_err(parquet_error)? {
            let text = |f: fn(&WarehouseRow) -> &str| -> Vec<ByteArray> {
                rows.iter().map(|r| ByteArray::from(f(r))).collect()
            };
            match column {
                0 => write_bytes(&mut col, &text(|r| &r.event_id))?,
                1 => write_bytes(&mut col, &text(|r| &r.event_type))?,
                2 => {
                    let v: Vec<i64> = rows.iter().map(|r| r.occurred_at_micros).collect();
                    col.typed::<Int64Type>()
                        .write_batch(&v, None, None)
                        .map_err(parquet_error)?;
                }
                3 => write_bytes(&mut col, &text(|r| &r.aggregate_id))?,
                4 => write_bytes(&mut col, &text(|r| &r.topic))?,
                5 => {
                    let v: Vec<i32> = rows.iter().map(|r| r.partition).collect();
                    col.typed::<Int32Type>()
                        .write_batch(&v, None, None)
                        .map_err(parquet_error)?;
                }
                6 => {
                    let v: Vec<i64> = rows.iter().map(|r| r.offset).collect();
                    col.typed::<Int64Type>()
                        .write_batch(&v, None, None)
                        .map_err(parquet_error)?;
                }
                _ => write_bytes(&mut col, &text(|r| &r.payload))?,
            }
            col.close().map_err(parquet_error)?;
            column += 1;
        }
        group.close().map_err(parquet_error)?;
        let file = writer.into_inner().map_err(parquet_error)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)?;
        sync_dir(path.parent().unwrap_or(&self.root))
    }
}

impl GroupSink for ParquetSink {
    fn apply(&mut self, batch: &[PartitionBatch]) -> PortResult<()> {
        self.write(batch).map(|_| ())
    }
}

fn write_bytes(
    col: &mut parquet::file::writer::SerializedColumnWriter<'_>,
    values: &[ByteArray],
) -> PortResult<()> {
    col.typed::<ByteArrayType>()
        .write_batch(values, None, None)
        .map(|_| ())
        .map_err(parquet_error)
}

/// Removes every `part-<n>.parquet` with `n >= next_batch` (and temporary files): written by a
/// batch whose state was never recorded.
fn remove_unfinished(root: &Path, next_batch: u64) -> PortResult<()> {
    let Ok(families) = std::fs::read_dir(root) else {
        return Ok(());
    };
    for family in families.flatten() {
        if !family.path().is_dir() {
            continue;
        }
        for day in std::fs::read_dir(family.path()).map_err(io)?.flatten() {
            if !day.path().is_dir() {
                continue;
            }
            for file in std::fs::read_dir(day.path()).map_err(io)?.flatten() {
                let name = file.file_name().to_string_lossy().into_owned();
                let unfinished = name.ends_with(".tmp")
                    || name
                        .strip_prefix("part-")
                        .and_then(|n| n.strip_suffix(".parquet"))
                        .and_then(|n| n.parse::<u64>().ok())
                        .is_some_and(|n| n >= next_batch);
                if unfinished {
                    std::fs::remove_file(file.path()).map_err(io)?;
                }
            }
        }
    }
    Ok(())
}

fn write_atomically(path: &Path, body: &[u8]) -> PortResult<()> {
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp).map_err(io)?;
    file.write_all(body).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

fn sync_dir(dir: &Path) -> PortResult<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io)
}

fn io(e: std::io::Error) -> PortError {
    PortError::caused_by(ErrorKind::Unavailable, e)
}

fn parquet_error(e: parquet::errors::ParquetError) -> PortError {
    PortError::caused_by(ErrorKind::Internal, e)
}
