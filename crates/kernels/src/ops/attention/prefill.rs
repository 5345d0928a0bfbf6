//! Prefill launchers (`cu/paged_attention_prefill_mma.cu`, `cu/paged_attention_prefill.cu`):
//! causal varlen GQA attention of new query tokens against the paged KV cache. The tensor-core
//! kernel runs for head_dim 64/128 with 16-byte aligned caches and a 4-byte aligned output; the
//! CUDA-core tiled kernel (head_dim a multiple of 32, <= 256) is the fallback and the reference.

use cudarc::driver::{CudaView, CudaViewMut};
use half::bf16;

use super::{aligned, check_common, AttentionShape, KvCacheShape};
use crate::error::{ensure, Result};
use crate::ops::{check_len, to_grid, to_i32};
use crate::runtime::{grid, launch_kernel, KernelRuntime};

/// Tokens per query tile of the tensor-core prefill kernel.
const MMA_BQ: usize = 16 * 4;

/// Which prefill kernel runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrefillKernel {
    /// Tensor-core kernel where it applies ([`prefill_mma_supported`]), else CUDA-core.
    Auto,
    /// Tensor-core kernel; an error where it does not apply.
    Mma,
    /// CUDA-core tiled kernel (head_dim a multiple of 32, <= 256).
    Simt,
}

/// Whether the tensor-core prefill kernel takes this head_dim (alignment is checked per call).
pub fn prefill_mma_supported(head_dim: usize) -> bool {
    matches!(head_dim, 64 | 128)
}

/// Prefill attention over varlen sequences (causal; new tokens' K/V already appended), on the
/// tensor-core kernel where it applies ([`PrefillKernel::Auto`]).
#[allow(clippy::too_many_arguments)]
pub fn paged_attention_prefill(
    rt: &KernelRuntime,
    q: &CudaView<'_, bf16>, // [n_tokens, n_heads, head_dim] (row stride q_stride)
    k_cache: &CudaView<'_, bf16>, // [num_pages, page_size, n_kv_heads, head_dim]
    v_cache: &CudaView<'_, bf16>, // same
    block_tables: &CudaView<'_, i32>, // [n_seqs, max_pages]
    cu_q_lens: &CudaView<'_, i32>, // [n_seqs + 1]
    seq_lens: &CudaView<'_, i32>, // [n_seqs] keys incl. the new tokens
    out: &mut CudaViewMut<'_, bf16>, // [n_tokens, n_heads, head_dim]
    n_tokens: usize,
    max_q_len: usize,
    shape: AttentionShape,
    cache: KvCacheShape,
) -> Result<()> {
    paged_attention_prefill_with(
        rt,
        PrefillKernel::Auto,
        q,
        k_cache,
        v_cache,
        block_tables,
        cu_q_lens,
        seq_lens,
        out,
        n_tokens,
        max_q_len,
        shape,
        cache,
    )
}

/// [`paged_attention_prefill`] with an explicit kernel choice (tests, benchmarks).
#[allow(clippy::too_many_arguments)]
pub fn paged_attention_prefill_with(
    rt: &KernelRuntime,
    kernel: PrefillKernel,
    q: &CudaView<'_, bf16>, // [n_tokens, n_heads, head_dim] (row stride q_stride)
    k_cache: &CudaView<'_, bf16>, // [num_pages, page_size, n_kv_heads, head_dim]
    v_cache: &CudaView<'_, bf16>, // same
    block_tables: &CudaView<'_, i32>, // [n_seqs, max_pages]
    cu_q_lens: &CudaView<'_, i32>, // [n_seqs + 1]
    seq_lens: &CudaView<'_, i32>, // [n_seqs] keys incl. the new tokens
    out: &mut CudaViewMut<'_, bf16>, // [n_tokens, n_heads, head_dim]
    n_tokens: usize,
    max_q_len: usize,
    shape: AttentionShape,
    cache: KvCacheShape,
) -> Result<()> {
    const OP: &str = "paged_attention_prefill";
    check_common(OP, &shape, &cache)?;
    let AttentionShape {
        n_seqs,
        n_heads,
        q_stride,
        max_pages,
        scale,
    } = shape;
    let d = cache.head_dim;
    ensure(d.is_multiple_of(32) && d <= 256, OP, || {
        format!("head_dim {d} must be a multiple of 32, <= 256")
    })?;
    ensure(max_q_len <= n_tokens, OP, || "max_q_len > n_tokens".into())?;
    check_len(
        OP,
        "q",
        q.len(),
        n_tokens.saturating_sub(1) * q_stride + n_heads * d,
    )?;
    check_len(OP, "k_cache", k_cache.len(), cache.numel())?;
    check_len(OP, "v_cache", v_cache.len(), cache.numel())?;
    check_len(OP, "block_tables", block_tables.len(), n_seqs * max_pages)?;
    check_len(OP, "cu_q_lens", cu_q_lens.len(), n_seqs + 1)?;
    check_len(OP, "seq_lens", seq_lens.len(), n_seqs)?;
    check_len(OP, "out", out.len(), n_tokens * n_heads * d)?;
    let mma_ok = prefill_mma_supported(d)
        && aligned(rt, k_cache, 16)
        && aligned(rt, v_cache, 16)
        && aligned(rt, out, 4);
    let mma = match kernel {
        PrefillKernel::Auto => mma_ok,
        PrefillKernel::Simt => false,
        PrefillKernel::Mma => {
            ensure(mma_ok, OP, || {
                format!("tensor-core kernel needs head_dim 64 or 128 and aligned buffers (head_dim {d})")
            })?;
            true
        }
    };
    let tile = if mma { MMA_BQ } else { 16 };
    let cfg = grid(
        (
            to_grid(OP, "q tiles", max_q_len.div_ceil(tile))?,
            to_grid(OP, "n_heads", n_heads)?,
            to_grid(OP, "n_seqs", n_seqs)?,
        ),
        128,
        0,
    );
    let i = |what, v| to_i32(OP, what, v);
    let (nh, nkv, hd, qs, ps, mp) = (
        i("n_heads", n_heads)?,
        i("n_kv_heads", cache.n_kv_heads)?,
        i("head_dim", d)?,
        i("q_stride", q_stride)?,
        i("page_size", cache.page_size)?,
        i("max_pages", max_pages)?,
    );
    if mma {
        launch_kernel!(
            rt,
            "paged_attn_prefill_mma_bf16",
            cfg,
            [
                q,
                k_cache,
                v_cache,
                block_tables,
                cu_q_lens,
                seq_lens,
                out,
                &nh,
                &nkv,
                &hd,
                &qs,
                &ps,
                &mp,
                &scale
            ]
        )
    } else {
        launch_kernel!(
            rt,
            "paged_attn_prefill_bf16",
            cfg,
            [
                q,
                k_cache,
                v_cache,
                block_tables,
                cu_q_lens,
                seq_lens,
                out,
                &nh,
                &nkv,
                &hd,
                &qs,
                &ps,
                &mp,
                &scale
            ]
        )
    }
}
