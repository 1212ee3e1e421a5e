//! Exact nearest-neighbour search over product vectors (`search::VectorIndex`), beside its
//! limit in the same run: one streaming read of the same bytes (a scan cannot beat reading
//! every vector once).
//!
//! `cargo bench -p benches --bench vectors`: 100,000 vectors of 384 numbers (the size of
//! all-MiniLM-L6-v2's), 200 queries for the best 10: unfiltered, and with a filter letting one
//! product in ten through. Without `--bench` (as under `cargo test --benches`) a small smoke run.
#![allow(
    clippy::print_stdout,
    clippy::float_arithmetic,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::disallowed_methods,
    reason = "a benchmark: prints figures computed from timings"
)]

use std::time::{Duration, Instant};

use commerce_core::ProductId;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use search::VectorIndex;

const DIMS: usize = 384;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let n: usize = if full { 100_000 } else { 2_000 };
    let queries = if full { 200 } else { 20 };
    let mut rng = SmallRng::seed_from_u64(11);
    let random = |rng: &mut SmallRng| -> Vec<f32> {
        (0..DIMS).map(|_| rng.random_range(-1.0f32..1.0)).collect()
    };
    let mut index = VectorIndex::new(DIMS).expect("index");
    let ids: Vec<ProductId> = (0..n)
        .map(|i| ProductId::new(format!("p{i}")).expect("id"))
        .collect();
    let t = Instant::now();
    for id in &ids {
        let v = random(&mut rng);
        index.upsert(id.clone(), &v).expect("upsert");
    }
    println!(
        "{n} vectors of {DIMS} numbers inserted in {:.2} s ({:.0} MiB)",
        t.elapsed().as_secs_f64(),
        (n * DIMS * 4) as f64 / 1_048_576.0
    );
    let qs: Vec<Vec<f32>> = (0..queries).map(|_| random(&mut rng)).collect();

    // The limit: summing the same number of floats from one array, once per query.
    let flat: Vec<f32> = (0..n * DIMS).map(|i| (i % 7) as f32).collect();
    let mut stream = Vec::new();
    let mut sink = 0.0f32;
    for _ in 0..queries {
        let t = Instant::now();
        let mut lanes = [0.0f32; 8];
        for c in flat.chunks_exact(8) {
            for i in 0..8 {
                lanes[i] += c[i];
            }
        }
        sink += lanes.iter().sum::<f32>();
        stream.push(t.elapsed());
    }
    stream.sort();
    std::hint::black_box(sink);

    let mut rows = Vec::new();
    for (name, every) in [("unfiltered", 1usize), ("1 in 10 allowed", 10)] {
        let mut lat = Vec::new();
        for q in &qs {
            let t = Instant::now();
            let best = index
                .nearest(q, 10, |id| {
                    every == 1 || id.as_str()[1..].parse::<usize>().unwrap_or(1) % every == 0
                })
                .expect("nearest");
            lat.push(t.elapsed());
            assert_eq!(best.len(), 10);
        }
        lat.sort();
        rows.push((name, lat));
    }
    let p50_stream = percentile(&stream, 0.5);
    println!(
        "limit, one streaming read of the same floats: p50 {:.2} ms, p99 {:.2} ms",
        ms(p50_stream),
        ms(percentile(&stream, 0.99))
    );
    for (name, lat) in rows {
        println!(
            "top-10 exact, {name}: p50 {:.2} ms, p99 {:.2} ms ({:.2}x the streaming read at p50)",
            ms(percentile(&lat, 0.5)),
            ms(percentile(&lat, 0.99)),
            ms(percentile(&lat, 0.5)) / ms(p50_stream)
        );
    }
}
