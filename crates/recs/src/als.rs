//! Personalized recommendations: implicit-feedback matrix factorization (Hu, Koren and
//! Volinsky 2008), fitted by alternating least squares with a conjugate-gradient solver per
//! row (Takács et al.), as the `implicit` library does.
//!
//! Each interaction `r` (a purchase count, optionally BM25 or TF-IDF weighted) becomes a
//! preference 1 with confidence `1 + alpha·r`; everything else is a preference 0 with
//! confidence 1. Each half-iteration solves, for every user `u`,
//! `(YᵀY + Yᵀ(Cᵤ − I)Y + λI) xᵤ = YᵀCᵤpᵤ` with `cg_steps` conjugate-gradient steps warm-started
//! from the current factors (then the same for items), rows in parallel across cores.
//!
//! A fitted [`AlsModel`] recommends for a known user excluding what they have, lists similar
//! items (cosine of item factors), and folds in a new user's history without a refit (the
//! same solve against the fixed item factors). [`AlsModel::save`] gives a [`SavedAls`]
//! (serde, carrying [`SavedAls::FORMAT_VERSION`]), [`AlsModel::load`] checks it back.

use std::collections::{HashMap, HashSet};

use commerce_core::vector::dot;
use commerce_core::{Sku, UserId};
use pulp::{Arch, Simd, WithSimd};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::limits::{
    CG_STEPS_MAX, FACTORS_MAX, FOLD_IN_HISTORY_MAX, ITERATIONS_MAX, RECOMMEND_MAX,
};
use crate::store::rank_order;
use crate::{Error, Result, Scored};

/// How interaction values are weighted before they become confidences.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Weighting {
    /// The values as given.
    None,
    /// Okapi BM25 over users as documents (`implicit`'s `bm25_weight`; customary `k1` 100,
    /// `b` 0.8): `r·(k1 + 1) / (k1·norm + r) · idf`.
    Bm25 {
        /// Saturation.
        k1: f32,
        /// Length normalization, in `[0, 1]`.
        b: f32,
    },
    /// `√r · idf`.
    TfIdf,
}

/// How an [`AlsModel`] is fitted.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AlsConfig {
    /// Latent factors (1 to [`FACTORS_MAX`]).
    pub factors: usize,
    /// L2 regularization λ (not scaled by row counts); non-negative.
    pub regularization: f32,
    /// Confidence slope α: an interaction `r` has confidence `1 + α·r`; non-negative.
    pub alpha: f32,
    /// Alternations (1 to [`ITERATIONS_MAX`]).
    pub iterations: usize,
    /// Conjugate-gradient steps per row and half-iteration (1 to [`CG_STEPS_MAX`]).
    pub cg_steps: usize,
    /// Weighting of the interaction values.
    pub weighting: Weighting,
    /// Seed of the initial factors: the same seed and data give the same model.
    pub seed: u64,
}

impl Default for AlsConfig {
    /// 24 factors, λ 20, α 0.5, 15 iterations, 3 CG steps, BM25 (k1 100, b 0.8), seed 42:
    /// the best of a grid (factors 16–64, λ 5–100, α 0.25–4, BM25 or raw values) on a
    /// validation split carved from MovieLens-100k's training part only (a seeded 75/25
    /// per-user split of it); see the example `movielens`, which also scores the test split.
    fn default() -> AlsConfig {
        AlsConfig {
            factors: 24,
            regularization: 20.0,
            alpha: 0.5,
            iterations: 15,
            cg_steps: 3,
            weighting: Weighting::Bm25 { k1: 100.0, b: 0.8 },
            seed: 42,
        }
    }
}

impl AlsConfig {
    /// Checks the configuration.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the field out of range.
    pub fn check(&self) -> Result<()> {
        let range = |field, v: usize, max: usize| {
            if v == 0 || v > max {
                Err(Error::invalid(field, format!("{v} is outside 1..={max}")))
            } else {
                Ok(())
            }
        };
        range("factors", self.factors, FACTORS_MAX)?;
        range("iterations", self.iterations, ITERATIONS_MAX)?;
        range("cg_steps", self.cg_steps, CG_STEPS_MAX)?;
        let nonneg = |field, v: f32| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(Error::invalid(
                    field,
                    format!("{v} is not a non-negative number"),
                ))
            }
        };
        nonneg("regularization", self.regularization)?;
        nonneg("alpha", self.alpha)?;
        if let Weighting::Bm25 { k1, b } = self.weighting {
            nonneg("k1", k1)?;
            if !(0.0..=1.0).contains(&b) {
                return Err(Error::invalid("b", format!("{b} is outside [0, 1]")));
            }
        }
        Ok(())
    }
}

/// Compressed rows: row `r` holds `cols[ptr[r]..ptr[r + 1]]` with `vals` beside.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Csr {
    ptr: Vec<usize>,
    cols: Vec<u32>,
    vals: Vec<f32>,
}

impl Csr {
    fn from_triplets(rows: usize, mut t: Vec<(u32, u32, f32)>) -> Csr {
        t.sort_by_key(|a| (a.0, a.1));
        // Repeated (row, col) pairs add up.
        let mut merged: Vec<(u32, u32, f32)> = Vec::with_capacity(t.len());
        for (r, c, v) in t {
            match merged.last_mut() {
                Some(last) if last.0 == r && last.1 == c => last.2 += v,
                _ => merged.push((r, c, v)),
            }
        }
        let mut ptr = vec![0usize; rows + 1];
        for &(r, _, _) in &merged {
            if let Some(p) = ptr.get_mut(ix(r) + 1) {
                *p += 1;
            }
        }
        for i in 0..rows {
            let prev = ptr.get(i).copied().unwrap_or(0);
            if let Some(p) = ptr.get_mut(i + 1) {
                *p += prev;
            }
        }
        Csr {
            ptr,
            cols: merged.iter().map(|x| x.1).collect(),
            vals: merged.iter().map(|x| x.2).collect(),
        }
    }

    fn rows(&self) -> usize {
        self.ptr.len().saturating_sub(1)
    }

    fn row(&self, r: usize) -> (&[u32], &[f32]) {
        let (a, b) = (
            self.ptr.get(r).copied().unwrap_or(0),
            self.ptr.get(r + 1).copied().unwrap_or(0),
        );
        (
            self.cols.get(a..b).unwrap_or(&[]),
            self.vals.get(a..b).unwrap_or(&[]),
        )
    }

    fn transpose(&self, cols: usize) -> Csr {
        let mut t = Vec::with_capacity(self.cols.len());
        for r in 0..self.rows() {
            let (c, v) = self.row(r);
            let r = u32::try_from(r).unwrap_or(u32::MAX);
            t.extend(c.iter().zip(v).map(|(&c, &v)| (c, r, v)));
        }
        Csr::from_triplets(cols, t)
    }
}

fn ix(i: u32) -> usize {
    usize::try_from(i).unwrap_or(usize::MAX)
}

/// SplitMix64: a tiny seeded generator for the initial factors.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix(pub(crate) u64);

impl SplitMix {
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)` with 53 bits.
    pub(crate) fn next_f64(&mut self) -> f64 {
        #[allow(clippy::cast_precision_loss, reason = "53 bits are exact in an f64")]
        let x = (self.next_u64() >> 11) as f64;
        x / 9_007_199_254_740_992.0
    }
}

/// What every row's solve in a half-iteration shares: the Gram matrix `G = YᵀY + λI`
/// (row-major `f × f`), the fixed factors `Y`, α and the CG steps.
struct Problem<'a> {
    g: &'a [f32],
    y: &'a [f32],
    f: usize,
    alpha: f32,
    steps: usize,
}

/// `G = YᵀY + λI` into `g`, with the instruction set of `arch`.
fn gram(arch: Arch, y: &[f32], f: usize, reg: f32, g: &mut Vec<f32>) {
    struct Gram<'a> {
        y: &'a [f32],
        f: usize,
        reg: f32,
        g: &'a mut [f32],
    }
    impl WithSimd for Gram<'_> {
        type Output = ();
        #[inline(always)]
        fn with_simd<S: Simd>(self, s: S) {
            kernel::gram(s, self.y, self.f, self.reg, self.g);
        }
    }
    g.resize(f * f, 0.0);
    arch.dispatch(Gram { y, f, reg, g });
}

/// Consecutive rows of `x` from row `first`, each solved against `m`'s row of the same
/// index, with scratch vectors allocated once for the whole block.
struct SolveRows<'a> {
    pb: &'a Problem<'a>,
    m: &'a Csr,
    first: usize,
    x: &'a mut [f32],
}

impl WithSimd for SolveRows<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, s: S) {
        let f = self.pb.f;
        let mut scratch = vec![0f32; 3 * f];
        let (r, rest) = scratch.split_at_mut(f);
        let (p, ap) = rest.split_at_mut(f);
        for (k, xu) in self.x.chunks_exact_mut(f).enumerate() {
            let (cols, vals) = self.m.row(self.first + k);
            kernel::cg_row(s, self.pb, cols, vals, xu, [&mut *r, &mut *p, &mut *ap]);
        }
    }
}

/// Rows per parallel task: enough to amortize the task and its scratch vectors.
const ROWS_PER_TASK: usize = 32;

/// One half-iteration: solve every row of `x` against fixed `y`; `g` is reused storage for
/// the Gram matrix.
fn solve_all(arch: Arch, x: &mut [f32], y: &[f32], m: &Csr, g: &mut Vec<f32>, cfg: &AlsConfig) {
    let f = cfg.factors;
    gram(arch, y, f, cfg.regularization, g);
    let pb = Problem {
        g,
        y,
        f,
        alpha: cfg.alpha,
        steps: cfg.cg_steps,
    };
    x.par_chunks_mut(f * ROWS_PER_TASK)
        .enumerate()
        .for_each(|(b, xs)| {
            arch.dispatch(SolveRows {
                pb: &pb,
                m,
                first: b * ROWS_PER_TASK,
                x: xs,
            });
        });
}

/// The hot loops of the fit, generic over the instruction set that [`pulp::Arch`] picks at
/// run time (AVX2 with FMA where the CPU has it, NEON on ARM, scalar otherwise): the SDK
/// ships generic builds, and the workspace forbids `unsafe`, so run-time dispatch goes
/// through `pulp`'s safe API. Every helper is `#[inline(always)]` so that it is compiled
/// inside the dispatched, feature-enabled function.
mod kernel {
    use pulp::Simd;

    /// `a · b` over the common length (four vector accumulators, then the scalar tail).
    #[inline(always)]
    pub(super) fn dot<S: Simd>(s: S, a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (a, b) = (a.get(..n).unwrap_or(&[]), b.get(..n).unwrap_or(&[]));
        let ((av, at), (bv, bt)) = (S::as_simd_f32s(a), S::as_simd_f32s(b));
        let (a4, ar) = av.as_chunks::<4>();
        let (b4, br) = bv.as_chunks::<4>();
        let z = s.splat_f32s(0.0);
        let mut acc = [z; 4];
        for (x, y) in a4.iter().zip(b4) {
            for ((c, &p), &q) in acc.iter_mut().zip(x).zip(y) {
                *c = s.mul_add_e_f32s(p, q, *c);
            }
        }
        let [c0, c1, c2, mut c3] = acc;
        for (&p, &q) in ar.iter().zip(br) {
            c3 = s.mul_add_e_f32s(p, q, c3);
        }
        let sum = s.add_f32s(s.add_f32s(c0, c1), s.add_f32s(c2, c3));
        let tail: f32 = at.iter().zip(bt).map(|(&p, &q)| p * q).sum();
        s.reduce_sum_f32s(sum) + tail
    }

    /// `y += a·x` over the common length.
    #[inline(always)]
    pub(super) fn axpy<S: Simd>(s: S, a: f32, x: &[f32], y: &mut [f32]) {
        let n = x.len().min(y.len());
        let (x, y) = (x.get(..n).unwrap_or(&[]), y.get_mut(..n).unwrap_or(&mut []));
        let ((xv, xt), (yv, yt)) = (S::as_simd_f32s(x), S::as_mut_simd_f32s(y));
        let av = s.splat_f32s(a);
        for (o, &p) in yv.iter_mut().zip(xv) {
            *o = s.mul_add_e_f32s(av, p, *o);
        }
        for (o, &p) in yt.iter_mut().zip(xt) {
            *o += a * p;
        }
    }

    /// `out = G·v` for a symmetric row-major `G` (`f × f`, `f = v.len()`), computed as
    /// `Σⱼ vⱼ·G[j, ·]` (rows for columns): four vector accumulators of the output stay in
    /// registers while the rows stream by, and no horizontal sum is needed.
    #[inline(always)]
    pub(super) fn symv<S: Simd>(s: S, g: &[f32], v: &[f32], out: &mut [f32]) {
        let f = v.len();
        let lanes = S::F32_LANES;
        let z = s.splat_f32s(0.0);
        let row = |j: usize| S::as_simd_f32s(g.get(j * f..(j + 1) * f).unwrap_or(&[]));
        let (ov, ot) = S::as_mut_simd_f32s(out.get_mut(..f).unwrap_or(&mut []));
        let (o4, or) = ov.as_chunks_mut::<4>();
        for (q, o) in o4.iter_mut().enumerate() {
            let mut acc = [z; 4];
            for (j, &vj) in v.iter().enumerate() {
                let vs = s.splat_f32s(vj);
                if let Some(gq) = row(j).0.get(4 * q..4 * q + 4) {
                    for (c, &gv) in acc.iter_mut().zip(gq) {
                        *c = s.mul_add_e_f32s(vs, gv, *c);
                    }
                }
            }
            *o = acc;
        }
        let done = o4.len() * 4;
        for (k, o) in or.iter_mut().enumerate() {
            let mut acc = z;
            for (j, &vj) in v.iter().enumerate() {
                if let Some(&gv) = row(j).0.get(done + k) {
                    acc = s.mul_add_e_f32s(s.splat_f32s(vj), gv, acc);
                }
            }
            *o = acc;
        }
        let start = ov_len(f, lanes);
        for (k, o) in ot.iter_mut().enumerate() {
            *o = v
                .iter()
                .enumerate()
                .map(|(j, &vj)| vj * g.get(j * f + start + k).copied().unwrap_or(0.0))
                .sum();
        }
    }

    /// Lanes covered by whole vectors in a row of `f`.
    #[inline(always)]
    fn ov_len(f: usize, lanes: usize) -> usize {
        f / lanes * lanes
    }

    /// `G = YᵀY + λI` into `g` (row-major `f × f`), the whole square (no mirroring), four
    /// rows of `Y` per pass over `G`.
    #[inline(always)]
    pub(super) fn gram<S: Simd>(s: S, y: &[f32], f: usize, reg: f32, g: &mut [f32]) {
        g.fill(0.0);
        let rows: Vec<&[f32]> = y.chunks_exact(f).collect();
        let (r4, rr) = rows.as_chunks::<4>();
        for quad in r4 {
            let [a, b, c, d] = *quad;
            let (av, at) = S::as_simd_f32s(a);
            let (bv, bt) = S::as_simd_f32s(b);
            let (cv, ct) = S::as_simd_f32s(c);
            let (dv, dt) = S::as_simd_f32s(d);
            for (i, gi) in g.chunks_exact_mut(f).enumerate() {
                let (Some(&ai), Some(&bi), Some(&ci), Some(&di)) =
                    (a.get(i), b.get(i), c.get(i), d.get(i))
                else {
                    continue;
                };
                let (sa, sb, sc, sd) = (
                    s.splat_f32s(ai),
                    s.splat_f32s(bi),
                    s.splat_f32s(ci),
                    s.splat_f32s(di),
                );
                let (gv, gt) = S::as_mut_simd_f32s(gi);
                for ((((o, &p), &q), &r), &t) in gv.iter_mut().zip(av).zip(bv).zip(cv).zip(dv) {
                    let acc = s.mul_add_e_f32s(sa, p, *o);
                    let acc = s.mul_add_e_f32s(sb, q, acc);
                    let acc = s.mul_add_e_f32s(sc, r, acc);
                    *o = s.mul_add_e_f32s(sd, t, acc);
                }
                for ((((o, &p), &q), &r), &t) in gt.iter_mut().zip(at).zip(bt).zip(ct).zip(dt) {
                    *o += ai * p + bi * q + ci * r + di * t;
                }
            }
        }
        for &a in rr {
            for (i, gi) in g.chunks_exact_mut(f).enumerate() {
                if let Some(&ai) = a.get(i) {
                    axpy(s, ai, a, gi);
                }
            }
        }
        for (i, gi) in g.chunks_exact_mut(f).enumerate() {
            if let Some(d) = gi.get_mut(i) {
                *d += reg;
            }
        }
    }

    /// `pb.steps` of conjugate gradient on one row `x`, in place, warm-started from `x`:
    /// `(G + Yᵀ(C − I)Y) x = YᵀC·1` where the row's items `cols` have values `vals`
    /// (confidence `1 + α·v`, preference 1). `scratch` is `[r, p, Ap]`, each `f` long.
    #[inline(always)]
    pub(super) fn cg_row<S: Simd>(
        s: S,
        pb: &super::Problem<'_>,
        cols: &[u32],
        vals: &[f32],
        x: &mut [f32],
        scratch: [&mut [f32]; 3],
    ) {
        let [r, p, ap] = scratch;
        let f = x.len();
        let item = |i: u32| {
            let i = super::ix(i);
            pb.y.get(i * f..(i + 1) * f).unwrap_or(&[])
        };
        // r = YᵀC·1 − (G + Yᵀ(C − I)Y) x
        symv(s, pb.g, x, r);
        for v in r.iter_mut() {
            *v = -*v;
        }
        for (&i, &v) in cols.iter().zip(vals) {
            let yi = item(i);
            let a = pb.alpha * v;
            axpy(s, (1.0 + a) - a * dot(s, yi, x), yi, r);
        }
        p.copy_from_slice(r);
        let mut rs_old = dot(s, r, r);
        for _ in 0..pb.steps {
            if rs_old < 1e-20 {
                break;
            }
            symv(s, pb.g, p, ap);
            for (&i, &v) in cols.iter().zip(vals) {
                let yi = item(i);
                axpy(s, pb.alpha * v * dot(s, yi, p), yi, ap);
            }
            let pap = dot(s, p, ap);
            if pap <= 0.0 || !pap.is_finite() {
                break;
            }
            let a = rs_old / pap;
            axpy(s, a, p, x);
            axpy(s, -a, ap, r);
            let rs_new = dot(s, r, r);
            let beta = rs_new / rs_old;
            // p = r + β·p
            let ((pv, pt), (rv, rt)) = (S::as_mut_simd_f32s(p), S::as_simd_f32s(r));
            let bv = s.splat_f32s(beta);
            for (o, &q) in pv.iter_mut().zip(rv) {
                *o = s.mul_add_e_f32s(bv, *o, q);
            }
            for (o, &q) in pt.iter_mut().zip(rt) {
                *o = q + beta * *o;
            }
            rs_old = rs_new;
        }
    }
}

/// A fitted implicit-feedback model.
///
/// ```
/// use commerce_core::{Sku, UserId};
/// use recs::als::{AlsConfig, AlsModel};
/// let (u, s) = (|x: &str| UserId::new(x).unwrap(), |x: &str| Sku::new(x).unwrap());
/// // Two tastes: tea people and coffee people.
/// let mut data = Vec::new();
/// for n in 0..6 {
///     let items = if n % 2 == 0 { ["TEA", "KETTLE", "MUG"] } else { ["COFFEE", "GRINDER", "CUP"] };
///     for (i, item) in items.iter().enumerate() {
///         if i != n / 2 { data.push((u(&format!("user-{n}")), s(item), 1.0)); }
///     }
/// }
/// let config = AlsConfig { factors: 2, iterations: 10, regularization: 1.0, ..AlsConfig::default() };
/// let model = AlsModel::fit(&data, config)?;
/// // user-0 has KETTLE and MUG: TEA comes first, owned items never come.
/// let recs = model.recommend(&u("user-0"), 2)?;
/// assert_eq!(recs[0].sku, s("TEA"));
/// assert!(recs.iter().all(|r| r.sku != s("KETTLE") && r.sku != s("MUG")));
/// // A new user who bought a grinder, folded in without a refit.
/// let new = model.recommend_for_history(&[(s("GRINDER"), 1.0)], 2)?;
/// assert!(new.iter().all(|r| ["COFFEE", "CUP"].contains(&r.sku.as_str())));
/// # Ok::<(), recs::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct AlsModel {
    config: AlsConfig,
    users: Vec<UserId>,
    user_index: HashMap<UserId, u32>,
    items: Vec<Sku>,
    item_index: HashMap<Sku, u32>,
    user_factors: Vec<f32>,
    item_factors: Vec<f32>,
    owned: Csr,
    idf: Vec<f32>,
    avg_len: f32,
}

impl AlsModel {
    /// Fits a model to `(user, item, value)` interactions (repeated pairs add up; values are
    /// counts or strengths, non-negative).
    ///
    /// # Errors
    /// As [`AlsConfig::check`]; [`Error::Invalid`] (field `interactions`) for no interaction
    /// or a value that is negative or not finite.
    pub fn fit(interactions: &[(UserId, Sku, f32)], config: AlsConfig) -> Result<AlsModel> {
        config.check()?;
        if interactions.is_empty() {
            return Err(Error::invalid("interactions", "nothing to fit"));
        }
        let mut users = Vec::new();
        let mut user_index = HashMap::new();
        let mut items = Vec::new();
        let mut item_index = HashMap::new();
        let mut triplets = Vec::with_capacity(interactions.len());
        for (user, sku, value) in interactions {
            if !value.is_finite() || *value < 0.0 {
                return Err(Error::invalid(
                    "interactions",
                    format!("value {value} of {user}/{sku} is not a non-negative number"),
                ));
            }
            let u = intern(&mut users, &mut user_index, user)?;
            let i = intern(&mut items, &mut item_index, sku)?;
            triplets.push((u, i, *value));
        }
        let raw = Csr::from_triplets(users.len(), triplets);
        let (idf, avg_len) = stats(&raw, items.len());
        let mut weighted = raw.clone();
        for u in 0..raw.rows() {
            let (a, b) = (
                raw.ptr.get(u).copied().unwrap_or(0),
                raw.ptr.get(u + 1).copied().unwrap_or(0),
            );
            let len: f32 = raw.vals.get(a..b).unwrap_or(&[]).iter().sum();
            for k in a..b {
                let (Some(&c), Some(v)) = (raw.cols.get(k), weighted.vals.get_mut(k)) else {
                    continue;
                };
                *v = weigh(
                    config.weighting,
                    *v,
                    idf.get(ix(c)).copied().unwrap_or(0.0),
                    len,
                    avg_len,
                );
            }
        }
        let by_item = weighted.transpose(items.len());
        let f = config.factors;
        let mut rng = SplitMix(config.seed);
        // Small random starts, scaled by 1/√f like `implicit`, so dot products start near 0.
        #[allow(clippy::cast_possible_truncation, reason = "a small random start")]
        let scale = 0.01 / (f64::from(u32::try_from(f).unwrap_or(1))).sqrt();
        #[allow(clippy::cast_possible_truncation, reason = "a small random start")]
        let mut init = |n: usize| -> Vec<f32> {
            (0..n * f)
                .map(|_| (rng.next_f64() * scale) as f32)
                .collect()
        };
        let mut user_factors = init(users.len());
        let mut item_factors = init(items.len());
        let arch = Arch::new();
        let mut g = Vec::new();
        for _ in 0..config.iterations {
            solve_all(
                arch,
                &mut user_factors,
                &item_factors,
                &weighted,
                &mut g,
                &config,
            );
            solve_all(
                arch,
                &mut item_factors,
                &user_factors,
                &by_item,
                &mut g,
                &config,
            );
        }
        Ok(AlsModel {
            config,
            users,
            user_index,
            items,
            item_index,
            user_factors,
            item_factors,
            owned: raw,
            idf,
            avg_len,
        })
    }

    /// The configuration it was fitted with.
    pub fn config(&self) -> &AlsConfig {
        &self.config
    }

    /// The users it knows, in index order.
    pub fn users(&self) -> &[UserId] {
        &self.users
    }

    /// The items it knows, in index order.
    pub fn items(&self) -> &[Sku] {
        &self.items
    }

    /// A known user's factors.
    ///
    /// # Errors
    /// [`Error::UnknownUser`].
    pub fn user_factors(&self, user: &UserId) -> Result<&[f32]> {
        let &u = self
            .user_index
            .get(user)
            .ok_or_else(|| Error::UnknownUser(user.clone()))?;
        let f = self.config.factors;
        Ok(self
            .user_factors
            .get(ix(u) * f..(ix(u) + 1) * f)
            .unwrap_or(&[]))
    }

    /// The top `k` items for a known user, best first, excluding the items they interacted
    /// with.
    ///
    /// # Errors
    /// [`Error::UnknownUser`]; [`Error::Invalid`] for `k` over [`RECOMMEND_MAX`].
    pub fn recommend(&self, user: &UserId, k: usize) -> Result<Vec<Scored>> {
        let x = self.user_factors(user)?;
        let u = self.user_index.get(user).copied().unwrap_or(0);
        let exclude: HashSet<u32> = self.owned.row(ix(u)).0.iter().copied().collect();
        self.rank(x, &exclude, k)
    }

    /// The top `k` items for a new user's `history` (items and values; unknown items are
    /// ignored), folded in without a refit, excluding the history's items.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a history over [`FOLD_IN_HISTORY_MAX`], a negative or non-finite
    /// value, or `k` over [`RECOMMEND_MAX`].
    pub fn recommend_for_history(&self, history: &[(Sku, f32)], k: usize) -> Result<Vec<Scored>> {
        let x = self.fold_in(history)?;
        let exclude: HashSet<u32> = history
            .iter()
            .filter_map(|(s, _)| self.item_index.get(s).copied())
            .collect();
        self.rank(&x, &exclude, k)
    }

    /// The factors of a new user with `history`, solved against the fixed item factors (the
    /// same weighting and confidence as the fit; more CG steps, from zero).
    ///
    /// # Errors
    /// As [`AlsModel::recommend_for_history`].
    pub fn fold_in(&self, history: &[(Sku, f32)]) -> Result<Vec<f32>> {
        if history.len() > FOLD_IN_HISTORY_MAX {
            return Err(Error::invalid(
                "history",
                format!("{} items, at most {FOLD_IN_HISTORY_MAX}", history.len()),
            ));
        }
        let mut row: Vec<(u32, u32, f32)> = Vec::new();
        for (sku, v) in history {
            if !v.is_finite() || *v < 0.0 {
                return Err(Error::invalid("history", format!("value {v} of {sku}")));
            }
            if let Some(&i) = self.item_index.get(sku) {
                row.push((0, i, *v));
            }
        }
        let m = Csr::from_triplets(1, row);
        let len: f32 = m.vals.iter().sum();
        let (cols, vals) = m.row(0);
        let weighted: Vec<f32> = cols
            .iter()
            .zip(vals)
            .map(|(&c, &v)| {
                weigh(
                    self.config.weighting,
                    v,
                    self.idf.get(ix(c)).copied().unwrap_or(0.0),
                    len,
                    self.avg_len,
                )
            })
            .collect();
        let f = self.config.factors;
        let arch = Arch::new();
        let mut g = Vec::new();
        gram(
            arch,
            &self.item_factors,
            f,
            self.config.regularization,
            &mut g,
        );
        let pb = Problem {
            g: &g,
            y: &self.item_factors,
            f,
            alpha: self.config.alpha,
            steps: f.min(CG_STEPS_MAX),
        };
        let weighted = Csr {
            ptr: vec![0, cols.len()],
            cols: cols.to_vec(),
            vals: weighted,
        };
        let mut x = vec![0f32; f];
        arch.dispatch(SolveRows {
            pb: &pb,
            m: &weighted,
            first: 0,
            x: &mut x,
        });
        Ok(x)
    }

    /// The `k` items most similar to `sku` (cosine of item factors), best first, without
    /// `sku` itself.
    ///
    /// # Errors
    /// [`Error::UnknownItem`]; [`Error::Invalid`] for `k` over [`RECOMMEND_MAX`].
    pub fn similar_items(&self, sku: &Sku, k: usize) -> Result<Vec<Scored>> {
        let &i = self
            .item_index
            .get(sku)
            .ok_or_else(|| Error::UnknownItem(sku.clone()))?;
        let f = self.config.factors;
        let norm = |v: &[f32]| dot(v, v).sqrt();
        let yi = self
            .item_factors
            .get(ix(i) * f..(ix(i) + 1) * f)
            .unwrap_or(&[]);
        let ni = norm(yi);
        let mut unit: Vec<f32> = yi
            .iter()
            .map(|v| if ni > 0.0 { v / ni } else { 0.0 })
            .collect();
        // Cosine = the dot product of unit vectors: rank with the anchor's unit vector, then
        // divide each score by the candidate's norm.
        let exclude: HashSet<u32> = std::iter::once(i).collect();
        let mut scored = self.rank_with(&mut unit, &exclude, k, true)?;
        scored.retain(|s| s.score.is_finite());
        Ok(scored)
    }

    fn rank(&self, x: &[f32], exclude: &HashSet<u32>, k: usize) -> Result<Vec<Scored>> {
        let mut x = x.to_vec();
        self.rank_with(&mut x, exclude, k, false)
    }

    fn rank_with(
        &self,
        x: &mut [f32],
        exclude: &HashSet<u32>,
        k: usize,
        cosine: bool,
    ) -> Result<Vec<Scored>> {
        if k > RECOMMEND_MAX {
            return Err(Error::invalid("k", format!("{k} is over {RECOMMEND_MAX}")));
        }
        let f = self.config.factors;
        let mut scored: Vec<(u32, f32)> = self
            .item_factors
            .chunks_exact(f)
            .enumerate()
            .filter_map(|(i, y)| {
                let i = u32::try_from(i).ok()?;
                if exclude.contains(&i) {
                    return None;
                }
                let mut s = dot(x, y);
                if cosine {
                    let n = dot(y, y).sqrt();
                    s = if n > 0.0 { s / n } else { 0.0 };
                }
                s.is_finite().then_some((i, s))
            })
            .collect();
        let cmp = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        if k == 0 {
            return Ok(Vec::new());
        }
        if scored.len() > k {
            scored.select_nth_unstable_by(k - 1, cmp);
            scored.truncate(k);
        }
        let mut out: Vec<Scored> = scored
            .into_iter()
            .filter_map(|(i, s)| Some(Scored::new(self.items.get(ix(i))?.clone(), s)))
            .collect();
        out.sort_by(rank_order);
        Ok(out)
    }

    /// The model as a versioned, serializable value.
    pub fn save(&self) -> SavedAls {
        SavedAls {
            format_version: SavedAls::FORMAT_VERSION,
            config: self.config,
            users: self.users.clone(),
            items: self.items.clone(),
            user_factors: self.user_factors.clone(),
            item_factors: self.item_factors.clone(),
            owned_ptr: self.owned.ptr.clone(),
            owned_cols: self.owned.cols.clone(),
            owned_vals: self.owned.vals.clone(),
            idf: self.idf.clone(),
            avg_len: self.avg_len,
        }
    }

    /// A model back from a [`SavedAls`].
    ///
    /// # Errors
    /// [`Error::ModelFormat`] for another format version or inconsistent lengths.
    ///
    /// ```
    /// # use commerce_core::{Sku, UserId};
    /// # use recs::als::{AlsConfig, AlsModel};
    /// # let data = vec![(UserId::new("u")?, Sku::new("A")?, 1.0)];
    /// let model = AlsModel::fit(&data, AlsConfig { factors: 2, ..AlsConfig::default() })?;
    /// let json = serde_json::to_string(&model.save()).expect("serializable");
    /// let back = AlsModel::load(serde_json::from_str(&json).expect("readable"))?;
    /// assert_eq!(back, model);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn load(saved: SavedAls) -> Result<AlsModel> {
        if saved.format_version != SavedAls::FORMAT_VERSION {
            return Err(Error::ModelFormat(format!(
                "format version {}, this release reads {}",
                saved.format_version,
                SavedAls::FORMAT_VERSION
            )));
        }
        saved
            .config
            .check()
            .map_err(|e| Error::ModelFormat(e.to_string()))?;
        let f = saved.config.factors;
        let owned = Csr {
            ptr: saved.owned_ptr,
            cols: saved.owned_cols,
            vals: saved.owned_vals,
        };
        let consistent = saved.user_factors.len() == saved.users.len() * f
            && saved.item_factors.len() == saved.items.len() * f
            && saved.idf.len() == saved.items.len()
            && owned.rows() == saved.users.len()
            && owned.cols.len() == owned.vals.len()
            && owned.ptr.first() == Some(&0)
            && owned.ptr.last() == Some(&owned.cols.len())
            && owned.ptr.windows(2).all(|w| w[0] <= w[1])
            && owned.cols.iter().all(|&c| ix(c) < saved.items.len());
        if !consistent {
            return Err(Error::ModelFormat("inconsistent lengths".into()));
        }
        let index_of =
            |n: usize| u32::try_from(n).map_err(|_| Error::ModelFormat("too many rows".into()));
        let mut user_index = HashMap::with_capacity(saved.users.len());
        for (n, u) in saved.users.iter().enumerate() {
            if user_index.insert(u.clone(), index_of(n)?).is_some() {
                return Err(Error::ModelFormat(format!("user {u} twice")));
            }
        }
        let mut item_index = HashMap::with_capacity(saved.items.len());
        for (n, s) in saved.items.iter().enumerate() {
            if item_index.insert(s.clone(), index_of(n)?).is_some() {
                return Err(Error::ModelFormat(format!("item {s} twice")));
            }
        }
        Ok(AlsModel {
            config: saved.config,
            users: saved.users,
            user_index,
            items: saved.items,
            item_index,
            user_factors: saved.user_factors,
            item_factors: saved.item_factors,
            owned,
            idf: saved.idf,
            avg_len: saved.avg_len,
        })
    }
}

/// A saved [`AlsModel`]: serialize it with any serde format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedAls {
    /// [`SavedAls::FORMAT_VERSION`] when written by this release.
    pub format_version: u32,
    config: AlsConfig,
    users: Vec<UserId>,
    items: Vec<Sku>,
    user_factors: Vec<f32>,
    item_factors: Vec<f32>,
    owned_ptr: Vec<usize>,
    owned_cols: Vec<u32>,
    owned_vals: Vec<f32>,
    idf: Vec<f32>,
    avg_len: f32,
}

impl SavedAls {
    /// The format this release writes and reads.
    pub const FORMAT_VERSION: u32 = 1;
}

fn intern<K: Clone + std::hash::Hash + Eq>(
    list: &mut Vec<K>,
    index: &mut HashMap<K, u32>,
    key: &K,
) -> Result<u32> {
    if let Some(&i) = index.get(key) {
        return Ok(i);
    }
    let i =
        u32::try_from(list.len()).map_err(|_| Error::invalid("interactions", "over 2^32 rows"))?;
    list.push(key.clone());
    index.insert(key.clone(), i);
    Ok(i)
}

/// Per item `ln(users) − ln(1 + users with the item)`, and the mean row sum.
fn stats(m: &Csr, items: usize) -> (Vec<f32>, f32) {
    let mut df = vec![0u32; items];
    for &c in &m.cols {
        if let Some(d) = df.get_mut(ix(c)) {
            *d += 1;
        }
    }
    let n = f64::from(u32::try_from(m.rows()).unwrap_or(u32::MAX)).max(1.0);
    #[allow(clippy::cast_possible_truncation, reason = "weights are f32")]
    let idf = df
        .iter()
        .map(|&d| (n.ln() - f64::from(d).ln_1p()) as f32)
        .collect();
    let total: f32 = m.vals.iter().sum();
    #[allow(clippy::cast_possible_truncation, reason = "weights are f32")]
    let avg = total / (n as f32);
    (idf, avg)
}

fn weigh(w: Weighting, v: f32, idf: f32, len: f32, avg_len: f32) -> f32 {
    match w {
        Weighting::None => v,
        Weighting::TfIdf => v.sqrt() * idf,
        Weighting::Bm25 { k1, b } => {
            let norm = (1.0 - b) + b * if avg_len > 0.0 { len / avg_len } else { 1.0 };
            let d = k1 * norm + v;
            if d > 0.0 {
                v * (k1 + 1.0) / d * idf
            } else {
                0.0
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(x: &str) -> UserId {
        UserId::new(x).unwrap()
    }
    fn s(x: &str) -> Sku {
        Sku::new(x).unwrap()
    }

    /// Two tastes of 5 items; 20 users, each with 3 or 4 items of their taste.
    fn world() -> Vec<(UserId, Sku, f32)> {
        let mut d = Vec::new();
        for n in 0..20usize {
            let taste = if n % 2 == 0 { "A" } else { "B" };
            for i in 0..5usize {
                if i != n % 5 && (i + n) % 7 != 0 {
                    d.push((u(&format!("u{n}")), s(&format!("{taste}{i}")), 1.0));
                }
            }
        }
        d
    }

    fn cfg() -> AlsConfig {
        // Two factors for two tastes: more would fit each user's own items exactly.
        AlsConfig {
            factors: 2,
            iterations: 10,
            regularization: 1.0,
            ..AlsConfig::default()
        }
    }

    #[test]
    fn recommends_the_users_taste_without_owned_items() {
        for weighting in [
            Weighting::None,
            Weighting::TfIdf,
            Weighting::Bm25 { k1: 100.0, b: 0.8 },
        ] {
            let m = AlsModel::fit(&world(), AlsConfig { weighting, ..cfg() }).unwrap();
            for n in 0..20usize {
                let user = u(&format!("u{n}"));
                let recs = m.recommend(&user, 1).unwrap();
                let taste = if n % 2 == 0 { "A" } else { "B" };
                assert!(
                    recs[0].sku.as_str().starts_with(taste),
                    "{weighting:?} {n}: {recs:?}"
                );
                let owned: Vec<_> = world()
                    .into_iter()
                    .filter(|x| x.0 == user)
                    .map(|x| x.1)
                    .collect();
                assert!(
                    m.recommend(&user, 10)
                        .unwrap()
                        .iter()
                        .all(|r| !owned.contains(&r.sku))
                );
            }
        }
    }

    #[test]
    fn similar_items_share_a_taste() {
        let m = AlsModel::fit(&world(), cfg()).unwrap();
        let sim = m.similar_items(&s("A1"), 3).unwrap();
        assert!(
            sim.iter()
                .all(|x| x.sku.as_str().starts_with('A') && x.sku != s("A1")),
            "{sim:?}"
        );
        assert!(sim.iter().all(|x| x.score <= 1.0 + 1e-5));
        assert!(matches!(
            m.similar_items(&s("ZZ"), 3),
            Err(Error::UnknownItem(_))
        ));
    }

    #[test]
    fn fold_in_recovers_a_known_users_recommendations() {
        let m = AlsModel::fit(&world(), cfg()).unwrap();
        let hist: Vec<(Sku, f32)> = world()
            .into_iter()
            .filter(|x| x.0 == u("u3"))
            .map(|x| (x.1, x.2))
            .collect();
        let a: Vec<Sku> = m
            .recommend(&u("u3"), 2)
            .unwrap()
            .into_iter()
            .map(|x| x.sku)
            .collect();
        let b: Vec<Sku> = m
            .recommend_for_history(&hist, 2)
            .unwrap()
            .into_iter()
            .map(|x| x.sku)
            .collect();
        assert_eq!(a, b);
        assert!(matches!(
            m.recommend(&u("nobody"), 2),
            Err(Error::UnknownUser(_))
        ));
    }

    #[test]
    fn fits_are_deterministic_and_saves_are_versioned() {
        let a = AlsModel::fit(&world(), cfg()).unwrap();
        let b = AlsModel::fit(&world(), cfg()).unwrap();
        assert_eq!(a, b);
        let mut saved = a.save();
        assert_eq!(AlsModel::load(saved.clone()).unwrap(), a);
        saved.format_version = 99;
        assert!(matches!(AlsModel::load(saved), Err(Error::ModelFormat(_))));
        let mut bad = a.save();
        bad.item_factors.pop();
        assert_eq!(AlsModel::load(bad).unwrap_err().field(), Some("model"));
    }

    /// The implicit-feedback objective, computed densely from the model's own data:
    /// `Σ c·(p − x·y)² + λ(‖X‖² + ‖Y‖²)`.
    fn objective(m: &AlsModel) -> f64 {
        let f = m.config.factors;
        let mut total = 0.0f64;
        for u in 0..m.users.len() {
            let (cols, vals) = m.owned.row(u);
            let len: f32 = vals.iter().sum();
            let xu = &m.user_factors[u * f..(u + 1) * f];
            for (i, yi) in m.item_factors.chunks_exact(f).enumerate() {
                let pred = f64::from(dot(xu, yi));
                let (p, c) = match cols.iter().position(|&c| ix(c) == i) {
                    Some(k) => {
                        let w = weigh(m.config.weighting, vals[k], m.idf[i], len, m.avg_len);
                        (1.0, 1.0 + f64::from(m.config.alpha * w))
                    }
                    None => (0.0, 1.0),
                };
                total += c * (p - pred).powi(2);
            }
        }
        let sq: f64 = m
            .user_factors
            .iter()
            .chain(&m.item_factors)
            .map(|v| f64::from(v * v))
            .sum();
        total + f64::from(m.config.regularization) * sq
    }

    #[test]
    fn more_iterations_never_raise_the_objective() {
        for weighting in [Weighting::None, Weighting::Bm25 { k1: 100.0, b: 0.8 }] {
            let mut last = f64::INFINITY;
            let mut first = None;
            for iterations in [1, 2, 4, 8] {
                let m = AlsModel::fit(
                    &world(),
                    AlsConfig {
                        iterations,
                        weighting,
                        factors: 3,
                        ..cfg()
                    },
                )
                .unwrap();
                let o = objective(&m);
                assert!(
                    o <= last * (1.0 + 1e-4),
                    "{weighting:?}: {o} after {iterations}, {last} before"
                );
                last = o;
                first.get_or_insert(o);
            }
            assert!(
                last < first.unwrap_or(f64::INFINITY),
                "the fit made progress"
            );
        }
    }

    /// The dispatched kernel (AVX2/FMA here) and the scalar fallback solve the same system:
    /// the Gram matrix as a plain triple loop, and `f` CG steps from zero reaching the exact
    /// solution of `(YᵀY + λI + Yᵀ(C − I)Y) x = YᵀC·1`, for sizes with and without a vector
    /// tail.
    #[test]
    fn the_simd_kernel_and_the_scalar_fallback_solve_the_same_system() {
        let mut rng = SplitMix(7);
        #[allow(clippy::cast_possible_truncation, reason = "test data")]
        let mut rand = || (rng.next_f64() - 0.5) as f32;
        for f in [1usize, 3, 13, 24, 64] {
            let n = 50;
            let y: Vec<f32> = (0..n * f).map(|_| rand()).collect();
            let reg = 0.5;
            let naive: Vec<f32> = (0..f * f)
                .map(|k| {
                    let (i, j) = (k / f, k % f);
                    let s: f32 = y.chunks_exact(f).map(|r| r[i] * r[j]).sum();
                    s + if i == j { reg } else { 0.0 }
                })
                .collect();
            let cols: Vec<u32> = (0..20).map(|k| k * 2).collect();
            let vals: Vec<f32> = (0..20u8).map(|k| 1.0 + f32::from(k % 3)).collect();
            let alpha = 0.7;
            let m = Csr {
                ptr: vec![0, cols.len()],
                cols: cols.clone(),
                vals: vals.clone(),
            };
            let mut solutions = Vec::new();
            for arch in [Arch::new(), Arch::Scalar] {
                let mut g = Vec::new();
                gram(arch, &y, f, reg, &mut g);
                for (a, b) in g.iter().zip(&naive) {
                    assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "f {f}: {a} vs {b}");
                }
                let pb = Problem {
                    g: &g,
                    y: &y,
                    f,
                    alpha,
                    steps: f + 5,
                };
                let mut x = vec![0f32; f];
                arch.dispatch(SolveRows {
                    pb: &pb,
                    m: &m,
                    first: 0,
                    x: &mut x,
                });
                // The residual of the whole system, computed densely.
                let mut worst = 0f32;
                for i in 0..f {
                    let mut lhs: f32 = (0..f).map(|j| naive[i * f + j] * x[j]).sum();
                    let mut rhs = 0.0;
                    for (&c, &v) in cols.iter().zip(&vals) {
                        let yc = &y[ix(c) * f..(ix(c) + 1) * f];
                        lhs += alpha * v * yc[i] * dot(yc, &x);
                        rhs += (1.0 + alpha * v) * yc[i];
                    }
                    worst = worst.max((lhs - rhs).abs() / (1.0 + rhs.abs()));
                }
                assert!(worst < 1e-3, "f {f}: residual {worst}");
                solutions.push(x);
            }
            for (a, b) in solutions[0].iter().zip(&solutions[1]) {
                assert!((a - b).abs() <= 1e-3 * (1.0 + b.abs()), "f {f}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn bad_input_is_refused() {
        assert_eq!(
            AlsModel::fit(&[], cfg()).unwrap_err().field(),
            Some("interactions")
        );
        let neg = vec![(u("a"), s("b"), -1.0)];
        assert_eq!(
            AlsModel::fit(&neg, cfg()).unwrap_err().field(),
            Some("interactions")
        );
        assert_eq!(
            AlsConfig {
                factors: 0,
                ..cfg()
            }
            .check()
            .unwrap_err()
            .field(),
            Some("factors")
        );
        assert_eq!(
            AlsConfig {
                alpha: f32::NAN,
                ..cfg()
            }
            .check()
            .unwrap_err()
            .field(),
            Some("alpha")
        );
    }
}
