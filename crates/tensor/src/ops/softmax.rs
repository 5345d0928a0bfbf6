//! Row-wise log-softmax (logprobs): `x - (max + ln Σ exp(x - max))`, rows in parallel.

use crate::Tensor;
use rayon::prelude::*;

/// `[rows, n]` → `[rows, n]` of `x - logsumexp(x)`.
pub fn log_softmax_rows(x: &Tensor) -> Tensor {
    let n = x.shape().last().copied().unwrap_or(1).max(1);
    let mut out = x.clone();
    out.data_mut().par_chunks_mut(n).for_each(|row| {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let lse = max + row.iter().map(|v| (v - max).exp()).sum::<f32>().ln();
        row.iter_mut().for_each(|v| *v -= lse);
    });
    out
}
