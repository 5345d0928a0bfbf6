//! Launchers for the paged KV cache and paged attention (`cu/paged_kv.cu`,
//! `cu/paged_attention_decode.cu`, `cu/paged_attention_prefill.cu`).
//!
//! Cache layout: `[num_pages, page_size, n_kv_heads, head_dim]` bf16 for K and for V; a token's
//! slot is `page * page_size + offset`. Block tables are `[n_seqs, max_pages]` i32 page ids.
//! Decode's split-K scratch is a caller-owned [`DecodeWorkspace`] (allocated once, so the decode
//! path makes no per-step allocation).
//!
//! Kernel choice: decode takes the GQA-grouped kernel (`paged_attn_decode_gqa_bf16`: one block per
//! kv head and partition, partition size from the sequence's own length) for head_dim 16..=256 a
//! power of two and 16-byte aligned caches, else the generic per-head kernel ([`DecodeKernel`]).
//! Prefill takes the tensor-core kernel (`paged_attn_prefill_mma_bf16`) for head_dim 64 or 128
//! and aligned buffers, else the CUDA-core tiled kernel ([`PrefillKernel`]; the latter is also
//! the parity reference). Every choice depends on shapes and alignment only, never on the batch.

use cudarc::driver::{CudaSlice, CudaStream, CudaView, CudaViewMut, DevicePtr};
use half::bf16;

mod prefill;

pub use prefill::{
    paged_attention_prefill, paged_attention_prefill_with, prefill_mma_supported, PrefillKernel,
};

use super::{check_len, to_grid, to_i32};
use crate::error::{driver, ensure, Result};
use crate::runtime::{grid, launch_kernel, KernelRuntime};

/// Geometry of the paged KV cache.
#[derive(Debug, Clone, Copy)]
pub struct KvCacheShape {
    pub num_pages: usize,
    pub page_size: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
}

impl KvCacheShape {
    /// Elements of one cache tensor (K or V).
    pub fn numel(&self) -> usize {
        self.num_pages * self.page_size * self.n_kv_heads * self.head_dim
    }
    fn width(&self) -> usize {
        self.n_kv_heads * self.head_dim
    }
}

/// Writes new tokens' K and V rows into their slots. Negative slots are skipped.
#[allow(clippy::too_many_arguments)]
pub fn paged_kv_append(
    rt: &KernelRuntime,
    k: &CudaView<'_, bf16>, // [n_tokens, n_kv_heads*head_dim] (row stride k_stride)
    v: &CudaView<'_, bf16>, // [n_tokens, n_kv_heads*head_dim] (row stride v_stride)
    slot_mapping: &CudaView<'_, i32>, // [n_tokens]
    k_cache: &mut CudaViewMut<'_, bf16>, // [num_pages, page_size, n_kv_heads, head_dim]
    v_cache: &mut CudaViewMut<'_, bf16>, // same
    cache: KvCacheShape,
    strides: (usize, usize),
) -> Result<()> {
    const OP: &str = "paged_kv_append";
    let n_tokens = slot_mapping.len();
    let width = cache.width();
    let (k_stride, v_stride) = strides;
    ensure(k_stride >= width && v_stride >= width, OP, || {
        "row strides must be >= width".into()
    })?;
    check_len(
        OP,
        "k",
        k.len(),
        n_tokens.saturating_sub(1) * k_stride + width,
    )?;
    check_len(
        OP,
        "v",
        v.len(),
        n_tokens.saturating_sub(1) * v_stride + width,
    )?;
    check_len(OP, "k_cache", k_cache.len(), cache.numel())?;
    check_len(OP, "v_cache", v_cache.len(), cache.numel())?;
    let num_slots = (cache.num_pages * cache.page_size) as i64;
    let cfg = grid((to_grid(OP, "n_tokens", n_tokens)?, 1, 1), 128, 0);
    let a = (
        to_i32(OP, "width", width)?,
        to_i32(OP, "k_stride", k_stride)?,
        to_i32(OP, "v_stride", v_stride)?,
    );
    launch_kernel!(
        rt,
        "paged_kv_append_bf16",
        cfg,
        [
            k,
            v,
            slot_mapping,
            k_cache,
            v_cache,
            &a.0,
            &a.1,
            &a.2,
            &num_slots
        ]
    )
}

/// Attention geometry shared by decode and prefill.
#[derive(Debug, Clone, Copy)]
pub struct AttentionShape {
    pub n_seqs: usize,
    pub n_heads: usize,
    /// Row stride of q in elements (>= n_heads * head_dim).
    pub q_stride: usize,
    /// Columns of the block table (pages per sequence, max).
    pub max_pages: usize,
    pub scale: f32,
}

fn check_common(op: &'static str, a: &AttentionShape, c: &KvCacheShape) -> Result<()> {
    ensure(
        c.n_kv_heads > 0 && a.n_heads.is_multiple_of(c.n_kv_heads),
        op,
        || {
            format!(
                "n_heads {} not a multiple of n_kv_heads {}",
                a.n_heads, c.n_kv_heads
            )
        },
    )?;
    ensure(a.q_stride >= a.n_heads * c.head_dim, op, || {
        "q_stride < n_heads*head_dim".into()
    })?;
    ensure(c.page_size > 0 && a.max_pages > 0, op, || {
        "page_size and max_pages must be > 0".into()
    })
}

/// Largest partition of the GQA decode kernel (its shared score buffer holds 8 x 512 f32).
const GQA_MAX_PART: usize = 512;
/// Smallest partition of the GQA decode kernel, and the partition count it aims for.
const GQA_MIN_PART: usize = 64;
const GQA_TARGET_PARTS: usize = 32;
/// Query heads one GQA decode block serves.
const GQA_HEADS_PER_BLOCK: usize = 8;

/// Partitions per (sequence, head) row the workspace must hold for contexts up to `capacity`:
/// the generic kernel needs `capacity / part_tokens`, the GQA kernel at most
/// `max(capacity / min(part_tokens, 512), min(32, capacity / 64))` (see its .cu header).
fn partition_slots(capacity: usize, part_tokens: usize) -> usize {
    let max_part = part_tokens.min(GQA_MAX_PART);
    let min_part = GQA_MIN_PART.min(max_part);
    let fine = capacity.div_ceil(min_part).min(GQA_TARGET_PARTS);
    capacity.div_ceil(max_part).max(fine).max(1)
}

/// Split-K scratch for decode, sized for `max_seqs` sequences of at most `max_context` tokens.
#[derive(Debug)]
pub struct DecodeWorkspace {
    part_acc: CudaSlice<f32>, // [max_seqs, n_heads, slots, head_dim]
    part_max: CudaSlice<f32>, // [max_seqs, n_heads, slots]
    part_sum: CudaSlice<f32>, // [max_seqs, n_heads, slots]
    /// Keys per partition of the generic kernel; the GQA kernel's cap (with 512).
    pub part_tokens: usize,
    /// Partitions of `part_tokens` keys: `max_parts * part_tokens` is the context capacity.
    pub max_parts: usize,
    /// Partition rows per (sequence, head) in the scratch (>= max_parts).
    slots: usize,
}

impl DecodeWorkspace {
    /// Allocates the scratch once. `part_tokens` keys per split (e.g. 512).
    pub fn new(
        stream: &std::sync::Arc<CudaStream>,
        max_seqs: usize,
        n_heads: usize,
        head_dim: usize,
        max_context: usize,
        part_tokens: usize,
    ) -> Result<Self> {
        const OP: &str = "DecodeWorkspace::new";
        ensure(part_tokens > 0 && part_tokens <= 8192, OP, || {
            "part_tokens must be in 1..=8192".into()
        })?;
        let max_parts = max_context.div_ceil(part_tokens).max(1);
        let slots = partition_slots(max_parts * part_tokens, part_tokens);
        let rows = max_seqs * n_heads * slots;
        let alloc = |n: usize| stream.alloc_zeros::<f32>(n.max(1)).map_err(driver(OP));
        Ok(Self {
            part_acc: alloc(rows * head_dim)?,
            part_max: alloc(rows)?,
            part_sum: alloc(rows)?,
            part_tokens,
            max_parts,
            slots,
        })
    }
}

/// Which decode pass-1 kernel runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeKernel {
    /// GQA-grouped kernel where it applies, else generic.
    Auto,
    /// The per-query-head kernel (fixed `part_tokens` partitions), any head_dim.
    Generic,
}

/// Whether the GQA decode kernel takes this head_dim.
pub fn decode_gqa_supported(head_dim: usize) -> bool {
    matches!(head_dim, 16 | 32 | 64 | 128 | 256)
}

/// Whether a device buffer starts on a multiple of `bytes`.
fn aligned<P: DevicePtr<T>, T>(rt: &KernelRuntime, buf: &P, bytes: u64) -> bool {
    let (ptr, _sync) = buf.device_ptr(rt.stream());
    ptr % bytes == 0
}

/// Decode attention: one query token per sequence (`q` row s is sequence s).
#[allow(clippy::too_many_arguments)]
pub fn paged_attention_decode(
    rt: &KernelRuntime,
    q: &CudaView<'_, bf16>, // [n_seqs, n_heads, head_dim] (row stride q_stride)
    k_cache: &CudaView<'_, bf16>, // [num_pages, page_size, n_kv_heads, head_dim]
    v_cache: &CudaView<'_, bf16>, // same
    block_tables: &CudaView<'_, i32>, // [n_seqs, max_pages]
    seq_lens: &CudaView<'_, i32>, // [n_seqs], each <= max_parts*part_tokens
    out: &mut CudaViewMut<'_, bf16>, // [n_seqs, n_heads, head_dim]
    ws: &mut DecodeWorkspace,
    shape: AttentionShape,
    cache: KvCacheShape,
) -> Result<()> {
    paged_attention_decode_with(
        rt,
        DecodeKernel::Auto,
        q,
        k_cache,
        v_cache,
        block_tables,
        seq_lens,
        out,
        ws,
        shape,
        cache,
    )
}

/// [`paged_attention_decode`] with an explicit pass-1 kernel choice (tests, benchmarks).
#[allow(clippy::too_many_arguments)]
pub fn paged_attention_decode_with(
    rt: &KernelRuntime,
    kernel: DecodeKernel,
    q: &CudaView<'_, bf16>, // [n_seqs, n_heads, head_dim] (row stride q_stride)
    k_cache: &CudaView<'_, bf16>, // [num_pages, page_size, n_kv_heads, head_dim]
    v_cache: &CudaView<'_, bf16>, // same
    block_tables: &CudaView<'_, i32>, // [n_seqs, max_pages]
    seq_lens: &CudaView<'_, i32>, // [n_seqs], each <= max_parts*part_tokens
    out: &mut CudaViewMut<'_, bf16>, // [n_seqs, n_heads, head_dim]
    ws: &mut DecodeWorkspace,
    shape: AttentionShape,
    cache: KvCacheShape,
) -> Result<()> {
    const OP: &str = "paged_attention_decode";
    check_common(OP, &shape, &cache)?;
    let AttentionShape {
        n_seqs,
        n_heads,
        q_stride,
        max_pages,
        scale,
    } = shape;
    let d = cache.head_dim;
    check_len(
        OP,
        "q",
        q.len(),
        n_seqs.saturating_sub(1) * q_stride + n_heads * d,
    )?;
    check_len(OP, "k_cache", k_cache.len(), cache.numel())?;
    check_len(OP, "v_cache", v_cache.len(), cache.numel())?;
    check_len(OP, "block_tables", block_tables.len(), n_seqs * max_pages)?;
    check_len(OP, "seq_lens", seq_lens.len(), n_seqs)?;
    check_len(OP, "out", out.len(), n_seqs * n_heads * d)?;
    let rows = n_seqs * n_heads * ws.slots;
    check_len(OP, "workspace.part_acc", ws.part_acc.len(), rows * d)?;
    check_len(OP, "workspace.part_max", ws.part_max.len(), rows)?;
    check_len(OP, "workspace.part_sum", ws.part_sum.len(), rows)?;
    let gqa = kernel == DecodeKernel::Auto
        && decode_gqa_supported(d)
        && aligned(rt, k_cache, 16)
        && aligned(rt, v_cache, 16);
    let i = |what, v| to_i32(OP, what, v);
    let (nh, nkv, hd, qs, ps, mp, slots) = (
        i("n_heads", n_heads)?,
        i("n_kv_heads", cache.n_kv_heads)?,
        i("head_dim", d)?,
        i("q_stride", q_stride)?,
        i("page_size", cache.page_size)?,
        i("max_pages", max_pages)?,
        i("slots", ws.slots)?,
    );
    // Partition size the reduce pass recomputes: adaptive (GQA) or fixed (generic).
    let (pt, adaptive) = if gqa {
        let group = n_heads / cache.n_kv_heads;
        let blocks_x = cache.n_kv_heads * group.div_ceil(GQA_HEADS_PER_BLOCK);
        let cfg1 = grid(
            (
                to_grid(OP, "kv head blocks", blocks_x)?,
                to_grid(OP, "n_seqs", n_seqs)?,
                to_grid(OP, "parts", ws.slots)?,
            ),
            128,
            0,
        );
        let pt = i("part_tokens", ws.part_tokens.min(GQA_MAX_PART))?;
        launch_kernel!(
            rt,
            "paged_attn_decode_gqa_bf16",
            cfg1,
            [
                q,
                k_cache,
                v_cache,
                block_tables,
                seq_lens,
                &mut ws.part_acc,
                &mut ws.part_max,
                &mut ws.part_sum,
                &nh,
                &nkv,
                &hd,
                &qs,
                &ps,
                &mp,
                &pt,
                &slots,
                &scale
            ]
        )?;
        (pt, 1i32)
    } else {
        let smem = ((d + ws.part_tokens) * 4) as u32;
        ensure(smem <= 48 * 1024, OP, || {
            format!("shared memory {smem} B > 48 KiB")
        })?;
        let cfg1 = grid(
            (
                to_grid(OP, "n_heads", n_heads)?,
                to_grid(OP, "n_seqs", n_seqs)?,
                to_grid(OP, "parts", ws.max_parts)?,
            ),
            128,
            smem,
        );
        let pt = i("part_tokens", ws.part_tokens)?;
        launch_kernel!(
            rt,
            "paged_attn_decode_partial_bf16",
            cfg1,
            [
                q,
                k_cache,
                v_cache,
                block_tables,
                seq_lens,
                &mut ws.part_acc,
                &mut ws.part_max,
                &mut ws.part_sum,
                &nh,
                &nkv,
                &hd,
                &qs,
                &ps,
                &mp,
                &pt,
                &slots,
                &scale
            ]
        )?;
        (pt, 0i32)
    };
    let cfg2 = grid(
        (
            to_grid(OP, "n_heads", n_heads)?,
            to_grid(OP, "n_seqs", n_seqs)?,
            1,
        ),
        128,
        0,
    );
    launch_kernel!(
        rt,
        "paged_attn_decode_reduce_bf16",
        cfg2,
        [
            &ws.part_acc,
            &ws.part_max,
            &ws.part_sum,
            seq_lens,
            out,
            &nh,
            &hd,
            &pt,
            &slots,
            &adaptive
        ]
    )
}
