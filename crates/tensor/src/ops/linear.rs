//! Matrix products against weights in any [`crate::DType`], and embedding lookup.
//!
//! `linear` parallelises over tiles of output rows (weight rows) with rayon; each task owns a
//! disjoint set of output columns for all tokens. Per tile:
//! - f32 weights whose bytes are 4-byte aligned are read in place;
//! - few tokens (decode, `n <= SMALL_BATCH_TOKENS`): [`quant::dot_rows`] over contiguous row
//!   ranges (no fork for small ops);
//! - otherwise the tile is dequantised once into a per-task f32 scratch and multiplied against
//!   all tokens by the register-blocked micro-kernel in [`super::gemm`].
//!
//! Invariant: results equal the reference `Σ_i x[t][i]·w[j][i] (+ b[j])` up to f32 summation
//! order; no allocation in the hot loop besides one scratch tile per rayon task.

use super::gemm::gemm_nt;
use crate::{error::shape_err, quant, DType, Result, Tensor, TensorError, Weight};
use rayon::prelude::*;

/// At or below this many tokens, quantised rows are consumed by `quant::dot` directly.
const SMALL_BATCH_TOKENS: usize = 4;
/// Weight rows dequantised and multiplied together.
const TILE_ROWS: usize = 16;
/// Multiply-adds below which a rayon task is not split further.
const MIN_TASK_MACS: usize = 1 << 17;

/// `y = x · wᵀ (+ bias)`.
/// x: `[n, in]`, w: `[out, in]`, bias: `[out]` (f32/bf16/f16) → y: `[n, out]`.
pub fn linear(x: &Tensor, w: &Weight, bias: Option<&Weight>) -> Result<Tensor> {
    let (n, m, _) = dims(x, w)?;
    let mut out = vec![0.0f32; n * m];
    linear_into(x, w, bias, &mut out)?;
    Tensor::from_vec(vec![n, m], out)
}

/// [`linear`] into a caller-owned buffer `out` (`[n, out]`, fully overwritten).
pub fn linear_into(x: &Tensor, w: &Weight, bias: Option<&Weight>, out: &mut [f32]) -> Result<()> {
    let (n, m, k) = dims(x, w)?;
    if out.len() != n * m {
        return shape_err(
            "linear",
            format!("out has {} values, expected {}", out.len(), n * m),
        );
    }
    let bias = bias.map(|b| b.to_f32_vec()).transpose()?;
    if let Some(b) = &bias {
        if b.len() != m {
            return shape_err(
                "linear",
                format!("bias has {} values, expected {m}", b.len()),
            );
        }
    }
    let bias = bias.as_deref();
    if n == 0 || m == 0 {
        return Ok(());
    }
    if k == 0 {
        for row in out.chunks_mut(m) {
            row.iter_mut()
                .enumerate()
                .for_each(|(j, v)| *v = bias.map_or(0.0, |b| b[j]));
        }
        return Ok(());
    }
    let sink = ColumnSink::new(out, m);
    let put = |t: usize, j: usize, v: f32| {
        // SAFETY: each task writes only columns of its own row range (disjoint across tasks);
        // t < n and j < m by construction of the loops below.
        unsafe { sink.write(t, j, v + bias.map_or(0.0, |b| b[j])) }
    };
    let xs = x.data();
    if let Some(wf) = f32_view(w) {
        let min_len = (MIN_TASK_MACS / (TILE_ROWS * k * n)).max(1);
        (0..m.div_ceil(TILE_ROWS))
            .into_par_iter()
            .with_min_len(min_len)
            .for_each(|tile| {
                let (r0, r1) = (tile * TILE_ROWS, ((tile + 1) * TILE_ROWS).min(m));
                gemm_nt(xs, &wf[r0 * k..r1 * k], k, |t, r, v| put(t, r0 + r, v));
            });
        return Ok(());
    }
    let dtype = w.dtype();
    if n <= SMALL_BATCH_TOKENS {
        return matvec(x, w, bias, &sink);
    }
    let min_len = (MIN_TASK_MACS / (TILE_ROWS * k * n)).max(1);
    let row_bytes = w.row_bytes();
    let bytes = w.bytes().as_slice();
    (0..m.div_ceil(TILE_ROWS))
        .into_par_iter()
        .with_min_len(min_len)
        .try_for_each_init(
            || vec![0.0f32; TILE_ROWS * k],
            |scratch, tile| {
                let (r0, r1) = (tile * TILE_ROWS, ((tile + 1) * TILE_ROWS).min(m));
                let tile_f32 = &mut scratch[..(r1 - r0) * k];
                quant::dequantize(dtype, &bytes[r0 * row_bytes..r1 * row_bytes], tile_f32)?;
                gemm_nt(xs, tile_f32, k, |t, r, v| put(t, r0 + r, v));
                Ok::<(), TensorError>(())
            },
        )
}

/// The few-token path: contiguous row ranges of about `MIN_TASK_MACS` each (a small op is one
/// range, run without forking), each consumed by [`quant::dot_rows`] for every token.
/// x: `[n, k]`, w: `[m, k]`, bias: `[m]` → `sink` `[n, m]`.
fn matvec(x: &Tensor, w: &Weight, bias: Option<&[f32]>, sink: &ColumnSink) -> Result<()> {
    let (n, m, k) = dims(x, w)?;
    let (dtype, row_bytes) = (w.dtype(), w.row_bytes());
    let (bytes, xs) = (w.bytes().as_slice(), x.data());
    let cap = std::env::var("XX_CAP")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(rayon::current_num_threads());
    let max_tasks = (m * k * n / MIN_TASK_MACS).clamp(1, cap);
    // Multiples of 4 rows keep every task on the kernel's multi-row pass.
    let rows_per_task = m.div_ceil(max_tasks).next_multiple_of(4);
    let tasks = m.div_ceil(rows_per_task);
    let run = |task: usize| -> Result<()> {
        let (r0, r1) = (task * rows_per_task, ((task + 1) * rows_per_task).min(m));
        let rows = &bytes[r0 * row_bytes..r1 * row_bytes];
        for t in 0..n {
            // SAFETY: this task alone writes columns r0..r1 (task ranges are disjoint).
            let dst = unsafe { sink.columns(t, r0, r1) }?;
            if std::env::var_os("XX_SINGLE").is_some() {
                for (j, o) in dst.iter_mut().enumerate() {
                    *o = quant::dot(
                        dtype,
                        &rows[j * row_bytes..(j + 1) * row_bytes],
                        &xs[t * k..(t + 1) * k],
                    )?;
                }
            } else {
                quant::dot_rows(dtype, rows, &xs[t * k..(t + 1) * k], dst)?;
            }
            if let Some(b) = bias {
                dst.iter_mut().zip(&b[r0..r1]).for_each(|(v, b)| *v += b);
            }
        }
        Ok(())
    };
    if tasks == 1 {
        return run(0);
    }
    (0..tasks).into_par_iter().try_for_each(run)
}

/// Validates x `[n, k]` against w `[m, k]`; returns `(n, m, k)`.
fn dims(x: &Tensor, w: &Weight) -> Result<(usize, usize, usize)> {
    let (n, k) = match x.shape() {
        [n, k] => (*n, *k),
        s => return shape_err("linear", format!("x must be 2-D, got {s:?}")),
    };
    let (m, wk) = match w.shape() {
        [m, wk] => (*m, *wk),
        s => return shape_err("linear", format!("w must be 2-D, got {s:?}")),
    };
    if k != wk {
        return shape_err("linear", format!("x {:?} vs w {:?}", x.shape(), w.shape()));
    }
    Ok((n, m, k))
}

/// The values of an f32 weight, in place, when its bytes are suitably aligned.
fn f32_view(w: &Weight) -> Option<&[f32]> {
    if w.dtype() != DType::F32 || cfg!(target_endian = "big") {
        return None;
    }
    bytemuck::try_cast_slice(w.bytes().as_slice()).ok()
}

/// Shared write access to a row-major `[n, m]` output where concurrent tasks own disjoint
/// column ranges (so no element is written by two tasks).
struct ColumnSink {
    ptr: *mut f32,
    len: usize,
    cols: usize,
}

// SAFETY: the pointer targets a buffer that outlives the parallel section (borrowed mutably by
// `linear_into` for its whole duration); callers write disjoint elements.
unsafe impl Send for ColumnSink {}
unsafe impl Sync for ColumnSink {}

impl ColumnSink {
    fn new(out: &mut [f32], cols: usize) -> Self {
        Self {
            ptr: out.as_mut_ptr(),
            len: out.len(),
            cols,
        }
    }

    /// # Safety
    /// No other thread may access element `(t, j)` concurrently.
    #[inline]
    unsafe fn write(&self, t: usize, j: usize, v: f32) {
        let i = t * self.cols + j;
        if i < self.len {
            // SAFETY: in bounds (checked); exclusive per the caller contract.
            unsafe { *self.ptr.add(i) = v };
        }
    }

    /// Columns `j0..j1` of row `t`, for writing.
    ///
    /// # Safety
    /// No other thread may access these elements while the slice lives.
    #[allow(clippy::mut_from_ref)]
    unsafe fn columns(&self, t: usize, j0: usize, j1: usize) -> Result<&mut [f32]> {
        let start = t * self.cols + j0;
        if j0 > j1 || j1 > self.cols || start + (j1 - j0) > self.len {
            return shape_err(
                "linear",
                format!("columns {j0}..{j1} of row {t} out of range"),
            );
        }
        // SAFETY: in bounds (checked); exclusive per the caller contract.
        Ok(unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start), j1 - j0) })
    }
}

/// Gathers rows of `table` (`[vocab, hidden]`) for `ids` → `[ids.len(), hidden]`.
pub fn embedding(table: &Weight, ids: &[u32]) -> Result<Tensor> {
    let [vocab, hidden] = *table.shape() else {
        return shape_err(
            "embedding",
            format!("table must be 2-D, got {:?}", table.shape()),
        );
    };
    if let Some(&bad) = ids.iter().find(|&&id| id as usize >= vocab) {
        return Err(TensorError::Invalid {
            op: "embedding",
            detail: format!("token id {bad} >= vocab {vocab}"),
        });
    }
    let mut out = vec![0.0f32; ids.len() * hidden];
    if hidden > 0 {
        out.par_chunks_mut(hidden)
            .zip(ids.par_iter())
            .with_min_len(16)
            .try_for_each(|(dst, &id)| {
                quant::dequantize(table.dtype(), table.row(id as usize), dst)
            })?;
    }
    Tensor::from_vec(vec![ids.len(), hidden], out)
}
