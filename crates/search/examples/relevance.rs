//! Relevance on the labelled sets shipped with the tests, per pattern: the default request
//! (every word, partial matches filling the page), any word, and a plain BM25 over title and
//! description computed in the same run.
//!
//! `cargo run --release -p search --example relevance [-- --queries]`

#![allow(clippy::print_stdout, reason = "an example prints its report")]

use search::{LabelledSet, Matching, RelevanceReport};

fn main() {
    // `--queries` adds a row per query.
    let per_query = std::env::args().any(|a| a == "--queries");
    let sets = [
        ("patterns.json", include_str!("../tests/data/patterns.json")),
        (
            "patterns-de.json",
            include_str!("../tests/data/patterns-de.json"),
        ),
        ("labelled.json", include_str!("../tests/data/labelled.json")),
    ];
    for (name, text) in sets {
        let set = LabelledSet::from_json(text).expect("a labelled set");
        let index = set
            .index(set.config().expect("a known locale"))
            .expect("indexed");
        #[allow(unused_mut, reason = "one more run with the minilm feature")]
        let mut runs: Vec<(&str, RelevanceReport)> = vec![
            (
                "default (all words, partial fill)",
                set.evaluate(&index, Matching::All).expect("evaluated"),
            ),
            (
                "any word",
                set.evaluate(&index, Matching::Any).expect("evaluated"),
            ),
            ("plain BM25", set.evaluate_bm25().expect("evaluated")),
        ];
        // With `--features minilm` and MINILM_DIR: the default fused with all-MiniLM-L6-v2's
        // nearest products (reciprocal rank fusion).
        #[cfg(feature = "minilm")]
        if let Some(dir) = std::env::var_os("MINILM_DIR") {
            let mut config = set.config().expect("a known locale");
            config.embedder = Some(std::sync::Arc::new(
                search::MiniLm::load(dir).expect("all-MiniLM-L6-v2"),
            ));
            config.min_similarity = 0.3;
            let index = set.index(config).expect("indexed");
            runs.push((
                "hybrid, all-MiniLM-L6-v2",
                set.evaluate_with(&index, |req| {
                    req.semantic = search::Semantic::Hybrid;
                })
                .expect("evaluated"),
            ));
        }
        println!(
            "\n{name}: {} products, {} queries\n",
            set.products.len(),
            set.queries.len()
        );
        println!("| pattern | queries | ranking | nDCG@10 | MRR | recall@100 |");
        println!("|---|---|---|---|---|---|");
        let patterns = runs[0].1.by_pattern();
        for (pattern, first) in &patterns {
            for (label, report) in &runs {
                let s = &report.by_pattern()[pattern];
                println!(
                    "| {} | {} | {label} | {:.3} | {:.3} | {:.3} |",
                    if pattern.is_empty() { "(all)" } else { pattern },
                    first.queries,
                    s.ndcg_10,
                    s.mrr,
                    s.recall_100
                );
            }
        }
        if per_query {
            let labels: Vec<&str> = runs.iter().map(|(l, _)| *l).collect();
            println!("\n| query | pattern | nDCG@10: {} |", labels.join(" / "));
            println!("|---|---|---|");
            for (i, q) in set.queries.iter().enumerate() {
                let scores: Vec<String> = runs
                    .iter()
                    .map(|(_, r)| format!("{:.3}", r.queries[i].ndcg_10.abs()))
                    .collect();
                println!(
                    "| {} | {} | {} |",
                    q.text,
                    q.pattern.as_deref().unwrap_or(""),
                    scores.join(" / ")
                );
            }
        }
        for (label, report) in &runs {
            println!(
                "| all | {} | {label} | {:.3} | {:.3} | {:.3} |",
                report.queries.len(),
                report.ndcg_10,
                report.mrr,
                report.recall_100
            );
        }
    }
}
