//! Nearest-neighbour search over product vectors (`search::VectorIndex`): the exact scan beside
//! its limit in the same run (one streaming read of the same bytes: a scan cannot beat reading
//! every vector once), and the approximate graph (HNSW, the default from 20,000 vectors): its
//! build time, latency and recall@10 against the exact answers.
//!
//! `cargo bench -p benches --bench vectors`: 100,000 vectors of 384 numbers (the size of
//! all-MiniLM-L6-v2's) clustered around 1,000 centres (as a catalog's products cluster by kind;
//! uniform random vectors have no neighbours worth the name), 200 queries for the best 10:
//! unfiltered, and with a filter letting one product in ten through. Without `--bench` (as
//! under `cargo test --benches`) a small smoke run.
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
use search::{AnnConfig, Neighbour, VectorIndex};

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
    let centres: Vec<Vec<f32>> = (0..1_000)
        .map(|_| (0..DIMS).map(|_| rng.random_range(-1.0f32..1.0)).collect())
        .collect();
    let random = |rng: &mut SmallRng| -> Vec<f32> {
        let c = &centres[rng.random_range(0..centres.len())];
        c.iter()
            .map(|x| x + 0.5 * rng.random_range(-1.0f32..1.0))
            .collect()
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

    let allow = |every: usize| {
        move |id: &ProductId| {
            every == 1 || id.as_str()[1..].parse::<usize>().unwrap_or(1) % every == 0
        }
    };
    let mut rows = Vec::new();
    let mut exact_answers: Vec<Vec<Vec<Neighbour>>> = Vec::new();
    for (name, every) in [("unfiltered", 1usize), ("1 in 10 allowed", 10)] {
        let mut lat = Vec::new();
        let mut answers = Vec::new();
        for q in &qs {
            let t = Instant::now();
            let best = index.nearest(q, 10, allow(every)).expect("nearest");
            lat.push(t.elapsed());
            assert_eq!(best.len(), 10);
            answers.push(best);
        }
        lat.sort();
        rows.push((name, lat));
        exact_answers.push(answers);
    }

    // The same vectors with the graph on.
    let t = Instant::now();
    index
        .set_ann(Some(AnnConfig {
            above: 1,
            ..AnnConfig::default()
        }))
        .expect("graph");
    let build = t.elapsed();
    assert!(index.has_graph());
    let mut graph_rows = Vec::new();
    for ((name, every), exact) in [("unfiltered", 1usize), ("1 in 10 allowed", 10)]
        .into_iter()
        .zip(&exact_answers)
    {
        let mut lat = Vec::new();
        let mut found = 0usize;
        for (q, want) in qs.iter().zip(exact) {
            let t = Instant::now();
            let best = index.nearest(q, 10, allow(every)).expect("nearest");
            lat.push(t.elapsed());
            assert_eq!(best.len(), 10);
            found += best
                .iter()
                .filter(|n| want.iter().any(|w| w.product_id == n.product_id))
                .count();
        }
        lat.sort();
        graph_rows.push((name, lat, found as f64 / (10 * qs.len()) as f64));
    }
    let p50_stream = percentile(&stream, 0.5);
    println!(
        "limit, one streaming read of the same floats: p50 {:.2} ms, p99 {:.2} ms",
        ms(p50_stream),
        ms(percentile(&stream, 0.99))
    );
    let mut exact_p50 = Vec::new();
    for (name, lat) in rows {
        println!(
            "top-10 exact, {name}: p50 {:.2} ms, p99 {:.2} ms ({:.2}x the streaming read at p50)",
            ms(percentile(&lat, 0.5)),
            ms(percentile(&lat, 0.99)),
            ms(percentile(&lat, 0.5)) / ms(p50_stream)
        );
        exact_p50.push(ms(percentile(&lat, 0.5)));
    }
    println!(
        "graph (HNSW, M 16, efConstruction 100, ef 64) built over {n} vectors in {:.1} s ({:.0} vectors/s)",
        build.as_secs_f64(),
        n as f64 / build.as_secs_f64()
    );
    for ((name, lat, recall), exact) in graph_rows.into_iter().zip(exact_p50) {
        println!(
            "top-10 graph, {name}: p50 {:.3} ms, p99 {:.3} ms, recall@10 {recall:.3} against the exact answers ({:.1}x faster than exact at p50)",
            ms(percentile(&lat, 0.5)),
            ms(percentile(&lat, 0.99)),
            exact / ms(percentile(&lat, 0.5))
        );
    }
}
