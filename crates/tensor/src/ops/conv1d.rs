//! Causal depthwise conv1d + SiLU over time for one sequence, with a carried window
//! (Gated DeltaNet input conv, MODEL-SPECS §4.4 step 2 and §7.1).
//!
//! Per channel `c` with kernel `w[c, 0..K]`: `y_t[c] = silu(Σ_j w[c, j] · x_{t-K+1+j}[c])`, the
//! newest row multiplied by `w[c, K-1]`. Rows before the call come from `window`
//! (`[K-1, channels]`, pre-conv inputs, oldest first; zeros for a fresh sequence). Invariant: on
//! return `window` holds the last `K-1` rows of `concat(window, x)`, so a continuation call sees
//! exactly the left context an uninterrupted run would. No bias.

use crate::{error::shape_err, Result, Tensor};
use rayon::prelude::*;

/// Output rows per rayon task.
const ROWS_PER_TASK: usize = 16;

/// x: `[n, channels]`, window: `[K-1, channels]` (updated), weight: `[channels, K]` →
/// `[n, channels]` after SiLU.
pub fn causal_conv1d_silu(
    x: &Tensor,
    window: &mut [f32],
    weight: &[f32],
    kernel: usize,
) -> Result<Tensor> {
    let [n, channels] = *x.shape() else {
        return shape_err(
            "causal_conv1d_silu",
            format!("x must be 2-D, got {:?}", x.shape()),
        );
    };
    let history = kernel.saturating_sub(1);
    if kernel == 0 || weight.len() != channels * kernel || window.len() != history * channels {
        let detail = format!(
            "x {:?}, kernel {kernel}, weight {} values, window {} values",
            x.shape(),
            weight.len(),
            window.len()
        );
        return shape_err("causal_conv1d_silu", detail);
    }
    // Row r of the extended input: window rows first, then x.
    let ext = |r: usize| -> &[f32] {
        if r < history {
            &window[r * channels..(r + 1) * channels]
        } else {
            &x.data()[(r - history) * channels..(r - history + 1) * channels]
        }
    };
    let mut out = vec![0.0f32; n * channels];
    out.par_chunks_mut(ROWS_PER_TASK * channels)
        .enumerate()
        .for_each(|(task, rows)| {
            for (i, y) in rows.chunks_exact_mut(channels).enumerate() {
                let t = task * ROWS_PER_TASK + i;
                for j in 0..kernel {
                    let src = ext(t + j); // row t-K+1+j in sequence terms
                    for (c, (y, &v)) in y.iter_mut().zip(src).enumerate() {
                        *y += weight[c * kernel + j] * v;
                    }
                }
                y.iter_mut().for_each(|v| *v = *v / (1.0 + (-*v).exp()));
            }
        });
    let new_window = conv_window_after(window, x.data(), channels, n)?;
    window.copy_from_slice(&new_window);
    Tensor::from_vec(vec![n, channels], out)
}

/// The window (`[K-1, channels]`) after the first `rows` rows of `x` (`[>= rows, channels]`):
/// the last `K-1` rows of `concat(window, x[..rows])`.
pub fn conv_window_after(
    window: &[f32],
    x: &[f32],
    channels: usize,
    rows: usize,
) -> Result<Vec<f32>> {
    if channels == 0 || !window.len().is_multiple_of(channels) || x.len() < rows * channels {
        let detail = format!(
            "window {} values, x {} values, {channels} channels, {rows} rows",
            window.len(),
            x.len()
        );
        return shape_err("conv_window_after", detail);
    }
    let history = window.len() / channels;
    let mut out = Vec::with_capacity(history * channels);
    for r in rows..rows + history {
        // Row r of concat(window, x): the new window's row r - rows.
        if r < history {
            out.extend_from_slice(&window[r * channels..(r + 1) * channels]);
        } else {
            out.extend_from_slice(&x[(r - history) * channels..(r - history + 1) * channels]);
        }
    }
    Ok(out)
}
