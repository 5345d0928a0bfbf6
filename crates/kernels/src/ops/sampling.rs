//! Launchers for logits -> logprobs, penalties and sampling (`cu/logprobs.cu`, `cu/sampling.cu`).
//! Per-row parameters live on the device so one launch serves a whole batch; randomness is
//! philox keyed by each request's seed and counter (`offset`, e.g. the decode step), so a
//! request's tokens do not depend on which other requests share the batch.

use cudarc::driver::{CudaView, CudaViewMut};
use half::bf16;

use super::{check_len, to_grid, to_i32};
use crate::error::Result;
use crate::runtime::{grid, launch_kernel, KernelRuntime};

/// `out = log_softmax(logits)` per row, bf16 logits.
pub fn log_softmax_bf16(
    rt: &KernelRuntime,
    logits: &CudaView<'_, bf16>,    // [n_rows, vocab]
    out: &mut CudaViewMut<'_, f32>, // [n_rows, vocab]
    n_rows: usize,
    vocab: usize,
) -> Result<()> {
    const OP: &str = "log_softmax_bf16";
    check_len(OP, "logits", logits.len(), n_rows * vocab)?;
    check_len(OP, "out", out.len(), n_rows * vocab)?;
    let cfg = grid((to_grid(OP, "n_rows", n_rows)?, 1, 1), 1024, 0);
    let v = to_i32(OP, "vocab", vocab)?;
    launch_kernel!(rt, "log_softmax_bf16", cfg, [logits, out, &v])
}

/// `out = log_softmax(logits)` per row, f32 logits.
pub fn log_softmax_f32(
    rt: &KernelRuntime,
    logits: &CudaView<'_, f32>,     // [n_rows, vocab]
    out: &mut CudaViewMut<'_, f32>, // [n_rows, vocab]
    n_rows: usize,
    vocab: usize,
) -> Result<()> {
    const OP: &str = "log_softmax_f32";
    check_len(OP, "logits", logits.len(), n_rows * vocab)?;
    check_len(OP, "out", out.len(), n_rows * vocab)?;
    let cfg = grid((to_grid(OP, "n_rows", n_rows)?, 1, 1), 1024, 0);
    let v = to_i32(OP, "vocab", vocab)?;
    launch_kernel!(rt, "log_softmax_f32", cfg, [logits, out, &v])
}

/// Per-row penalty parameters and token history.
#[derive(Debug)]
pub struct PenaltyInputs<'a, 'b> {
    pub history: &'a CudaView<'b, i32>,      // [n_rows, max_hist]
    pub history_lens: &'a CudaView<'b, i32>, // [n_rows]
    pub repetition: &'a CudaView<'b, f32>,   // [n_rows] (1.0 = off)
    pub presence: &'a CudaView<'b, f32>,     // [n_rows] (0.0 = off)
    pub frequency: &'a CudaView<'b, f32>,    // [n_rows] (0.0 = off)
    pub max_hist: usize,
}

/// Applies repetition/presence/frequency penalties to `logits` in place.
pub fn apply_penalties(
    rt: &KernelRuntime,
    logits: &mut CudaViewMut<'_, f32>, // [n_rows, vocab]
    counts: &mut CudaViewMut<'_, i32>, // [n_rows, vocab] workspace
    p: &PenaltyInputs<'_, '_>,
    n_rows: usize,
    vocab: usize,
) -> Result<()> {
    const OP: &str = "apply_penalties";
    check_len(OP, "logits", logits.len(), n_rows * vocab)?;
    check_len(OP, "counts", counts.len(), n_rows * vocab)?;
    check_len(OP, "history", p.history.len(), n_rows * p.max_hist)?;
    for (what, len) in [
        ("history_lens", p.history_lens.len()),
        ("repetition", p.repetition.len()),
        ("presence", p.presence.len()),
        ("frequency", p.frequency.len()),
    ] {
        check_len(OP, what, len, n_rows)?;
    }
    let cfg = grid((to_grid(OP, "n_rows", n_rows)?, 1, 1), 1024, 0);
    let (v, mh) = (
        to_i32(OP, "vocab", vocab)?,
        to_i32(OP, "max_hist", p.max_hist)?,
    );
    launch_kernel!(
        rt,
        "apply_penalties_f32",
        cfg,
        [
            logits,
            counts,
            p.history,
            p.history_lens,
            p.repetition,
            p.presence,
            p.frequency,
            &v,
            &mh
        ]
    )
}

/// Per-row sampling parameters.
#[derive(Debug)]
pub struct SamplingInputs<'a, 'b> {
    pub temperature: &'a CudaView<'b, f32>, // [n_rows]; <= 0 means greedy
    pub top_k: &'a CudaView<'b, i32>,       // [n_rows]; <= 0 or >= vocab means off
    pub top_p: &'a CudaView<'b, f32>,       // [n_rows]; >= 1 means off
    pub min_p: &'a CudaView<'b, f32>,       // [n_rows]; <= 0 means off
    pub seed: &'a CudaView<'b, u64>,        // [n_rows]
    pub offset: &'a CudaView<'b, u64>,      // [n_rows] philox counter (e.g. step index)
}

/// Samples one token per row of `logits`.
pub fn sample_tokens(
    rt: &KernelRuntime,
    logits: &CudaView<'_, f32>,       // [n_rows, vocab]
    probs: &mut CudaViewMut<'_, f32>, // [n_rows, vocab] workspace
    s: &SamplingInputs<'_, '_>,
    tokens: &mut CudaViewMut<'_, i32>, // [n_rows]
    n_rows: usize,
    vocab: usize,
) -> Result<()> {
    const OP: &str = "sample_tokens";
    check_len(OP, "logits", logits.len(), n_rows * vocab)?;
    check_len(OP, "probs", probs.len(), n_rows * vocab)?;
    for (what, len) in [
        ("temperature", s.temperature.len()),
        ("top_k", s.top_k.len()),
        ("top_p", s.top_p.len()),
        ("min_p", s.min_p.len()),
        ("seed", s.seed.len()),
        ("offset", s.offset.len()),
        ("tokens", tokens.len()),
    ] {
        check_len(OP, what, len, n_rows)?;
    }
    let cfg = grid((to_grid(OP, "n_rows", n_rows)?, 1, 1), 1024, 0);
    let v = to_i32(OP, "vocab", vocab)?;
    launch_kernel!(
        rt,
        "sample_tokens_f32",
        cfg,
        [
            logits,
            probs,
            s.temperature,
            s.top_k,
            s.top_p,
            s.min_p,
            s.seed,
            s.offset,
            tokens,
            &v
        ]
    )
}
