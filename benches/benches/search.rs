//! Product search at catalog scale, printed as figures:
//! - index build rate over 1,000,000 generated products with Zipf-skewed brands, categories,
//!   attributes and vocabulary (goal ≥ 50,000 docs/s), with progress while building;
//! - resident memory per million products (goal ≤ 1 GiB);
//! - latency of a top-10 query with three facets (brand, category, price buckets) and a total
//!   count over the 480 WANDS shopper queries (goal p50 ≤ 2 ms, p99 ≤ 10 ms);
//! - queries per second on two threads;
//! - freshness: time from a price change entering the change log to being searchable, while
//!   10,000 changes/s stream in (goal p99 ≤ 1 s).
//!
//! `cargo bench -p benches --bench search` (without `--bench`, as under `cargo test --benches`,
//! it smoke-runs on 20,000 products).

#![allow(clippy::print_stdout, reason = "a bench binary prints its figures")]
#![allow(clippy::disallowed_methods, reason = "a benchmark measures wall time")]
#![allow(
    clippy::float_arithmetic,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "rates and samples for display only"
)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use benches::ready;
use commerce_core::memory::InMemoryEventLog;
use commerce_core::{Currency, DomainEvent, Money, ProductId, ProductProjection, Sku};
use commerce_core::{EventEnvelope, EventId};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use search::{
    FacetRequest, Indexer, LabelledSet, Matching, SearchIndex, SearchRequest, Semantic, Storage,
    TenantConfig, TenantId,
};

/// The instant the generated price changes say they happened (the bench times real delays).
const T0: chrono::DateTime<chrono::Utc> = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;

#[path = "common/catalog.rs"]
mod catalog;
use catalog::{Catalog, queries};

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn request(text: &str) -> SearchRequest {
    let eur = |m: i64| Money::from_minor(m, Currency::EUR);
    let mut req = SearchRequest::new(text, Currency::EUR);
    // SEARCH_BENCH_LIMIT: hits per page (default 10; the storefront asks for 24).
    if let Some(limit) = std::env::var("SEARCH_BENCH_LIMIT")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        req.limit = limit;
    }
    req.facets = FacetRequest {
        brand: true,
        category: true,
        price_buckets: Some(vec![eur(5_000), eur(10_000), eur(25_000), eur(50_000)]),
        ..FacetRequest::default()
    };
    req
}

fn dir_size(path: &std::path::Path) -> u64 {
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .filter(std::fs::Metadata::is_file)
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Child process: open the directory index at `dir` (memory-mapped), serve every WANDS query
/// twice, print the resident memory the process grew by.
fn probe_memory_dir(dir: &str) {
    let before = rss_bytes();
    let index = SearchIndex::create(
        TenantId::new("bench").expect("tenant"),
        TenantConfig::new(&[Currency::EUR, Currency::USD]),
        Storage::Dir(dir.into()),
    )
    .expect("open index");
    for _ in 0..2 {
        for q in queries() {
            index.search(&request(&q)).expect("search");
        }
    }
    let n = index.num_docs().expect("count");
    let grown = rss_bytes().saturating_sub(before);
    println!(
        "serving memory: {:.0} MiB resident for {n} products = {:.0} MiB per million (fresh process, directory index memory-mapped with its 64 MB writer, every WANDS query run twice)",
        grown as f64 / 1_048_576.0,
        grown as f64 * 1e6 / n.max(1) as f64 / 1_048_576.0
    );
}

/// Child process: build a RAM index of `n` products with the default (serving) writer, one
/// thread and 64 MB, streaming the products from the generator; serve every WANDS query twice;
/// print the resident memory the process grew by. That is what a process serving the catalog
/// from memory holds, its live writer included.
fn probe_memory(n: u64) {
    let catalog = Catalog::new();
    let before = rss_bytes();
    let index = SearchIndex::create(
        TenantId::new("bench").expect("tenant"),
        TenantConfig::new(&[Currency::EUR, Currency::USD]),
        Storage::Ram,
    )
    .expect("index");
    let mut writer = index.writer();
    for i in 0..n {
        writer.upsert(&catalog.product(i)).expect("upsert");
    }
    writer.commit(Some(0)).expect("commit");
    for _ in 0..2 {
        for q in queries() {
            index.search(&request(&q)).expect("search");
        }
    }
    let grown = rss_bytes().saturating_sub(before);
    println!(
        "serving memory: {:.0} MiB resident for {n} products = {:.0} MiB per million (fresh process, RAM index and its 64 MB writer, every WANDS query run twice)",
        grown as f64 / 1_048_576.0,
        grown as f64 * 1e6 / n.max(1) as f64 / 1_048_576.0
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--probe-memory-dir") {
        probe_memory_dir(&args[i + 1]);
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--probe-memory") {
        probe_memory(args[i + 1].parse().expect("product count"));
        return;
    }
    let full = args.iter().any(|a| a == "--bench");
    // SEARCH_BENCH_PRODUCTS and SEARCH_BENCH_PASSES resize a run (for profiling);
    // SEARCH_BENCH_LIMIT sets the page size.
    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    let n: u64 = env("SEARCH_BENCH_PRODUCTS").unwrap_or(if full { 1_000_000 } else { 20_000 });
    if !full {
        println!("smoke run on {n} products (use `cargo bench` for figures)");
    }

    // 1. Generate (not timed), then build a directory index (timed).
    let catalog = Catalog::new();
    let t = Instant::now();
    let products: Vec<ProductProjection> = (0..n).map(|i| catalog.product(i)).collect();
    println!(
        "generated {n} products in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    // SEARCH_BENCH_STORAGE=dir builds in a temporary directory (memory-mapped, fsync on commit).
    let on_disk = std::env::var("SEARCH_BENCH_STORAGE").is_ok_and(|v| v == "dir");
    let dir = std::env::temp_dir().join(format!("search-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let storage = if on_disk {
        Storage::Dir(dir.clone())
    } else {
        Storage::Ram
    };
    let mut config = TenantConfig::new(&[Currency::EUR, Currency::USD]);
    config.writer_threads = 2;
    config.writer_memory_bytes = 1_000_000_000;
    // SEARCH_BENCH_QUERY_THREADS: threads one query may use (default 1).
    config.query_threads = env("SEARCH_BENCH_QUERY_THREADS").map_or(1, |t| t as usize);
    let query_threads = config.query_threads;
    let index = Arc::new(
        SearchIndex::create(TenantId::new("bench").expect("tenant"), config, storage)
            .expect("index"),
    );
    let start = Instant::now();
    {
        let mut writer = index.writer();
        for (i, p) in products.iter().enumerate() {
            writer.upsert(p).expect("upsert");
            if (i + 1) % 100_000 == 0 {
                let s = start.elapsed().as_secs_f64();
                println!(
                    "  indexed {:>9} products in {s:6.1} s ({:.0} docs/s)",
                    i + 1,
                    (i + 1) as f64 / s
                );
            }
        }
        writer.commit(Some(0)).expect("commit");
    }
    let build = start.elapsed();
    drop(products);
    println!(
        "index build ({}): {n} products in {:.1} s = {:.0} docs/s, {} segments{}",
        if on_disk { "directory" } else { "RAM" },
        build.as_secs_f64(),
        n as f64 / build.as_secs_f64(),
        index.segment_count(),
        if on_disk {
            format!(", {:.0} MiB on disk", dir_size(&dir) as f64 / 1_048_576.0)
        } else {
            String::new()
        }
    );
    // 2. Latency: every WANDS query, three passes, one thread.
    let qs = queries();
    let passes = env("SEARCH_BENCH_PASSES").map_or(if full { 3 } else { 1 }, |p| p as usize);
    let mut lat = Vec::new();
    let mut zero = 0;
    let mut slowest: Vec<(Duration, u64, &str)> = Vec::new();
    for _ in 0..passes {
        for q in &qs {
            let req = request(q);
            let t = Instant::now();
            let r = index.search(&req).expect("search");
            let took = t.elapsed();
            lat.push(took);
            slowest.push((took, r.total, q));
            if r.total == 0 {
                zero += 1;
            }
        }
    }
    slowest.sort_by_key(|s| std::cmp::Reverse(s.0));
    let matched: u64 = qs
        .iter()
        .map(|q| index.search(&request(q)).expect("search").total)
        .sum();
    println!(
        "  mean products matched per query: {:.0}; slowest: {}",
        matched as f64 / qs.len() as f64,
        slowest
            .iter()
            .take(5)
            .map(|(d, n, q)| format!("{q:?} {:.1} ms, {n} matches", ms(*d)))
            .collect::<Vec<_>>()
            .join("; ")
    );
    lat.sort();
    let mean = lat.iter().sum::<Duration>() / lat.len() as u32;
    println!(
        "top-{} + brand, category and price facets + count, {} WANDS queries, {query_threads} thread(s) per query: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, mean {:.2} ms ({} of {} found nothing)",
        request("").limit,
        qs.len(),
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99)),
        ms(*lat.last().expect("latencies")),
        ms(mean),
        zero / passes,
        qs.len()
    );

    // 3. Throughput on two threads.
    let run = if full {
        Duration::from_secs(10)
    } else {
        Duration::from_millis(300)
    };
    let done = Arc::new(AtomicU64::new(0));
    let t = Instant::now();
    std::thread::scope(|s| {
        for th in 0..2 {
            let (index, qs, done) = (&index, &qs, &done);
            s.spawn(move || {
                let mut i = th * 240;
                while t.elapsed() < run {
                    index.search(&request(&qs[i % qs.len()])).expect("search");
                    done.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
            });
        }
    });
    println!(
        "throughput: {:.0} queries/s on 2 threads",
        done.load(Ordering::Relaxed) as f64 / t.elapsed().as_secs_f64()
    );
    // 4. Freshness under 10,000 price changes per second.
    freshness(&index, n, full);

    // 5. Memory, in a fresh process (after this one let go of the index's writer lock).
    drop(index);
    let mut probe = std::process::Command::new(std::env::current_exe().expect("self"));
    if on_disk {
        probe.arg("--probe-memory-dir").arg(&dir);
    } else {
        probe.arg("--probe-memory").arg(n.to_string());
    }
    let child = probe.output().expect("memory probe");
    print!("{}", String::from_utf8_lossy(&child.stdout));
    if !child.status.success() {
        println!(
            "memory probe failed: {}",
            String::from_utf8_lossy(&child.stderr)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);

    // 6. Hybrid search beside words alone (SEARCH_BENCH_HYBRID products; 100,000 in a full
    // run).
    let hybrid_n = env("SEARCH_BENCH_HYBRID").unwrap_or(if full { 100_000 } else { 2_000 });
    if hybrid_n > 0 {
        hybrid(&catalog, hybrid_n, passes);
    }

    // 7. Relevance on the hand-labelled set (the same the tests hold to their thresholds).
    let set = LabelledSet::from_json(include_str!("../../crates/search/tests/data/labelled.json"))
        .expect("labelled set");
    let labelled = set
        .index(TenantConfig::new(&[set.currency]))
        .expect("index");
    for matching in [Matching::All, Matching::Any] {
        let r = set.evaluate(&labelled, matching).expect("evaluate");
        println!(
            "relevance, labelled set ({} queries, {matching:?} words): nDCG@10 {:.3}, MRR {:.3}, recall@100 {:.3}",
            set.queries.len(),
            r.ndcg_10,
            r.mrr,
            r.recall_100
        );
    }
}

/// Hybrid search (words fused with the nearest product vectors) beside words alone, on the
/// first `n` products of the same catalog, every WANDS query, one thread: the hashing embedder
/// (384 numbers), so the figure is the search's and not a model's; the graph is on (from
/// 20,000 vectors). With the `minilm` feature and `MINILM_DIR`, also the time
/// all-MiniLM-L6-v2 takes to embed each query, which a hybrid request adds.
fn hybrid(catalog: &Catalog, n: u64, passes: usize) {
    let mut config = TenantConfig::new(&[Currency::EUR, Currency::USD]);
    config.writer_threads = 2;
    config.writer_memory_bytes = 1_000_000_000;
    config.embedder = Some(Arc::new(
        search::HashingEmbedder::new(384).expect("embedder"),
    ));
    config.min_similarity = 0.1;
    let index = SearchIndex::create(
        TenantId::new("hybrid").expect("tenant"),
        config,
        Storage::Ram,
    )
    .expect("index");
    let t = Instant::now();
    {
        let mut writer = index.writer();
        for i in 0..n {
            writer.upsert(&catalog.product(i)).expect("upsert");
        }
        writer.commit(Some(0)).expect("commit");
    }
    println!(
        "hybrid: {n} products indexed and embedded (hashing, 384) in {:.1} s, graph built",
        t.elapsed().as_secs_f64()
    );
    let qs = queries();
    let mut rows = Vec::new();
    for semantic in [Semantic::Off, Semantic::Hybrid, Semantic::Vector] {
        let mut lat = Vec::new();
        for _ in 0..passes {
            for q in &qs {
                let mut req = request(q);
                req.semantic = semantic;
                let t = Instant::now();
                index.search(&req).expect("search");
                lat.push(t.elapsed());
            }
        }
        lat.sort();
        rows.push((
            semantic,
            ms(percentile(&lat, 0.5)),
            ms(percentile(&lat, 0.99)),
        ));
    }
    let (off50, off99) = (rows[0].1, rows[0].2);
    for (semantic, p50, p99) in rows {
        println!(
            "hybrid: {semantic:?}, {} WANDS queries on {n} products: p50 {p50:.2} ms, p99 {p99:.2} ms ({:.2}x / {:.2}x words alone)",
            qs.len(),
            p50 / off50,
            p99 / off99
        );
    }
    #[cfg(feature = "minilm")]
    if let Some(dir) = std::env::var_os("MINILM_DIR") {
        use search::Embedder;
        let model = search::MiniLm::load(dir).expect("all-MiniLM-L6-v2");
        let mut lat = Vec::new();
        for q in &qs {
            let t = Instant::now();
            model.embed(&[q.as_str()]).expect("embed");
            lat.push(t.elapsed());
        }
        lat.sort();
        println!(
            "hybrid: all-MiniLM-L6-v2 embeds a WANDS query in p50 {:.2} ms, p99 {:.2} ms (one thread of the process's pool)",
            ms(percentile(&lat, 0.5)),
            ms(percentile(&lat, 0.99))
        );
    }
}

fn freshness(index: &Arc<SearchIndex>, n: u64, full: bool) {
    const RATE: u64 = 10_000;
    let run = if full {
        Duration::from_secs(20)
    } else {
        Duration::from_secs(1)
    };
    let log = Arc::new(InMemoryEventLog::new());
    let appended: Arc<Mutex<Vec<Instant>>> = Arc::new(Mutex::new(Vec::new()));
    let first = index.next_offset();
    let stop = Arc::new(AtomicBool::new(false));
    let mut latencies: Vec<Duration> = Vec::new();
    let mut batches = 0u64;
    let mut max_lag = 0u64;
    let start = Instant::now();
    std::thread::scope(|s| {
        let (log2, appended2, stop2) = (Arc::clone(&log), Arc::clone(&appended), Arc::clone(&stop));
        let producer = s.spawn(move || {
            let mut rng = SmallRng::seed_from_u64(99);
            let mut versions: BTreeMap<u64, u64> = BTreeMap::new();
            let mut sent = 0u64;
            while start.elapsed() < run {
                // Pace to RATE: append whatever is due by now, in 1 ms steps.
                let due = (start.elapsed().as_secs_f64() * RATE as f64) as u64;
                while sent < due {
                    let i = rng.random_range(0..n);
                    let v = versions.entry(i).or_insert(1);
                    *v += 1;
                    let event = DomainEvent::PriceChanged {
                        product_id: ProductId::new(format!("p{i}")).expect("id"),
                        sku: Sku::new(format!("SKU-{i:08}")).expect("sku"),
                        old: None,
                        new: Money::from_minor(rng.random_range(199..200_000), Currency::EUR),
                        version: *v,
                    };
                    let envelope = EventEnvelope::new(
                        EventId::new(format!("price-{sent}")).expect("event id"),
                        T0,
                        event,
                    );
                    let mut times = appended2.lock().expect("times");
                    log2.append(&[envelope]);
                    times.push(Instant::now());
                    drop(times);
                    sent += 1;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            stop2.store(true, Ordering::Release);
            (sent, versions)
        });
        let indexer = Indexer::new(index, 20_000);
        loop {
            let lag = ready(indexer.lag(&*log)).expect("lag");
            max_lag = max_lag.max(lag);
            let report = ready(indexer.run_once(&*log)).expect("index batch");
            let visible = Instant::now();
            if report.read > 0 {
                batches += 1;
                let times = appended.lock().expect("times");
                let lo = (report.next_offset - report.read as u64 - first) as usize;
                let hi = (report.next_offset - first) as usize;
                latencies.extend(times[lo..hi].iter().map(|t| visible - *t));
            } else if stop.load(Ordering::Acquire) {
                break;
            } else {
                // Caught up: wait for the next change (polled, so the producer's last one is
                // never waited for in vain).
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        let (sent, versions) = producer.join().expect("producer");
        // Every change landed: each changed product is indexed at its last version.
        for (i, v) in &versions {
            let id = ProductId::new(format!("p{i}")).expect("id");
            assert_eq!(
                index.indexed_version(&id).expect("version"),
                Some(*v),
                "p{i}"
            );
        }
        let elapsed = start.elapsed();
        latencies.sort();
        println!(
            "freshness at {RATE} price changes/s for {:.0} s ({sent} changes, {batches} commits, max lag {max_lag}): p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            elapsed.as_secs_f64(),
            ms(percentile(&latencies, 0.5)),
            ms(percentile(&latencies, 0.99)),
            ms(*latencies.last().unwrap_or(&Duration::ZERO)),
        );
    });
}
