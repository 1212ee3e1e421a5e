//! ALS on MovieLens-100k against the goal. The data is research-use only and never
//! committed: the test reads `ML100K` (a path to `ml-100k.inter`), or fetches the file from
//! the PyPI wheel `recbole==1.2.1` with pip into the temporary directory. Without it the test
//! skips with a printed reason, and fails under `CI=true`.

#![allow(
    clippy::print_stderr,
    reason = "a skip and the measured figures are printed"
)]

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::Command;

use commerce_core::{Sku, UserId};
use recs::als::{AlsConfig, AlsModel};

const SHA256: &str = "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff";

fn fetch() -> Result<PathBuf, String> {
    if let Ok(p) = std::env::var("ML100K") {
        return Ok(PathBuf::from(p));
    }
    let dir = std::env::temp_dir().join("recs-ml100k");
    let file = dir.join("ml-100k.inter");
    if !file.exists() {
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let pip = Command::new("pip")
            .args(["download", "--no-deps", "recbole==1.2.1", "-d"])
            .arg(&dir)
            .output()
            .map_err(|e| format!("pip: {e}"))?;
        if !pip.status.success() {
            return Err(format!(
                "pip download failed: {}",
                String::from_utf8_lossy(&pip.stderr)
            ));
        }
        let out = Command::new("unzip")
            .arg("-p")
            .arg(dir.join("recbole-1.2.1-py3-none-any.whl"))
            .arg("recbole/dataset_example/ml-100k/ml-100k.inter")
            .output()
            .map_err(|e| format!("unzip: {e}"))?;
        std::fs::write(&file, out.stdout).map_err(|e| e.to_string())?;
    }
    let sum = Command::new("sha256sum")
        .arg(&file)
        .output()
        .map_err(|e| format!("sha256sum: {e}"))?;
    if !String::from_utf8_lossy(&sum.stdout).starts_with(SHA256) {
        return Err(format!("{} has the wrong checksum", file.display()));
    }
    Ok(file)
}

#[test]
fn als_precision_at_10_on_movielens_100k() {
    let path = match fetch() {
        Ok(p) => p,
        Err(why) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "MovieLens-100k unavailable under CI: {why}"
            );
            eprintln!("skipped: MovieLens-100k unavailable: {why}");
            return;
        }
    };
    let text = std::fs::read_to_string(&path).unwrap();
    let rows: Vec<(UserId, Sku)> = text
        .lines()
        .skip(1)
        .map(|l| {
            let mut f = l.split('\t');
            let u = f.next().unwrap();
            let i = f.next().unwrap();
            (
                UserId::new(format!("u{u}")).unwrap(),
                Sku::new(format!("i{i}")).unwrap(),
            )
        })
        .collect();
    assert_eq!(rows.len(), 100_000);
    // A seeded 75/25 per-user split (SplitMix, not numpy's MT19937: the `movielens` example
    // reproduces that one; figures agree within noise).
    let (train, test) = recs::eval::split_per_user(&rows, |r| r.0.clone(), 0.75, 42);
    let data: Vec<(UserId, Sku, f32)> = train.into_iter().map(|(u, s)| (u, s, 1.0)).collect();
    let mut truth: HashMap<UserId, HashSet<Sku>> = HashMap::new();
    for (u, s) in test {
        truth.entry(u).or_default().insert(s);
    }
    // The default (chosen on a validation split of the training part; see the `movielens`
    // example) against the goal.
    {
        let (config, floor) = (AlsConfig::default(), 0.34);
        let model = AlsModel::fit(&data, config).unwrap();
        let ranked: HashMap<UserId, Vec<Sku>> = truth
            .keys()
            .map(|u| {
                (
                    u.clone(),
                    model
                        .recommend(u, 10)
                        .unwrap()
                        .into_iter()
                        .map(|r| r.sku)
                        .collect(),
                )
            })
            .collect();
        let m = recs::eval::evaluate(&ranked, &truth, 10);
        eprintln!(
            "ML-100k {config:?}: P@10 {:.4} nDCG@10 {:.4} MAP {:.4} over {} users",
            m.precision, m.ndcg, m.map, m.users
        );
        assert!(m.precision >= floor, "P@10 {} under {floor}", m.precision);
    }
}
