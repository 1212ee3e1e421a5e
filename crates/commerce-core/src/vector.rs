//! Numeric helpers shared by the engines that compare vectors (search's product embeddings,
//! recs' latent factors). Never used for money.
// Vectors are floats by nature; nothing here touches money.
#![allow(clippy::float_arithmetic)]

/// The dot product of the common prefix of `a` and `b`, summed in eight lanes so the compiler
/// vectorizes it (a plain float sum is one serial chain of additions by IEEE rules, about four
/// times slower).
///
/// ```
/// use commerce_core::vector::dot;
/// assert_eq!(dot(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]), 32.0);
/// assert_eq!(dot(&[1.0, 2.0], &[3.0]), 3.0);
/// ```
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (a.get(..n).unwrap_or(&[]), b.get(..n).unwrap_or(&[]));
    let mut lanes = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for ((s, &p), &q) in lanes.iter_mut().zip(x).zip(y) {
            *s += p * q;
        }
    }
    lanes.iter().sum::<f32>() + tail
}
