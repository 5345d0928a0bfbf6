//! Paged KV append and paged causal GQA attention on the GPU (same contract as
//! `crate::ops::attention`): KV pages `[num_blocks, 16, num_kv_heads, head_dim]` bf16 in
//! [`GpuKv`], allocated on the device by the first append of a GPU tensor.
//!
//! Kernel choice per call: when every sequence has one query token and sequences are in query
//! order, the split-K decode kernel; when some sequence has several and `head_dim` is a multiple
//! of 32 (<= 256), the tiled prefill kernel; otherwise (e.g. `head_dim` 16) each query token
//! becomes its own pseudo-sequence for the decode kernel, with the causal length
//! `context_len - query_len + i + 1` and its sequence's block table (exact, just not tiled).
//! Query rows no sequence covers come out as zeros, as on the CPU. In deterministic mode
//! (`CudaBackend::deterministic`) every query token takes the decode-kernel path, so a token's
//! result depends only on its query and visible context, never on the batch around it.

use std::sync::Arc;

use arle_kernels::cudarc::driver::CudaSlice;
use arle_kernels::ops::attention::{self as kattn, AttentionShape, KvCacheShape};
use half::bf16;

use super::meta_cache::{cached_i32, tags};
use super::ops::gpu_of;
use super::{cuda_err, placement, CudaBackend, GpuData, GpuHandle, GpuKv};
use crate::error::shape_err;
use crate::ops::{AttentionMeta, SeqSpan, PAD_SLOT};
use crate::{KvLayer, Result, Tensor, TensorError, KV_BLOCK_TOKENS};

fn cache_shape(cache: &KvLayer) -> KvCacheShape {
    KvCacheShape {
        num_pages: cache.num_blocks,
        page_size: KV_BLOCK_TOKENS,
        n_kv_heads: cache.num_kv_heads,
        head_dim: cache.head_dim,
    }
}

/// The layer's device pages, allocated (zeroed) on `backend` on first use; host vectors freed.
fn device_kv<'a>(cache: &'a mut KvLayer, backend: &Arc<CudaBackend>) -> Result<&'a mut GpuKv> {
    if cache.gpu.is_none() {
        let n = cache_shape(cache).numel().max(1);
        let zeros = || {
            backend
                .stream()
                .alloc_zeros::<bf16>(n)
                .map_err(cuda_err("KV cache alloc"))
        };
        let kv = GpuKv {
            backend: backend.clone(),
            k: zeros()?,
            v: zeros()?,
        };
        cache.gpu = Some(Arc::new(kv));
        cache.k = Vec::new();
        cache.v = Vec::new();
    }
    cache.gpu.as_mut().and_then(Arc::get_mut).ok_or_else(|| {
        placement(
            "kv_append",
            "KV pages are shared with a clone of this layer",
        )
    })
}

/// Writes k, v (`[n, num_kv_heads, head_dim]`, bf16 on a GPU) into their slots ([`PAD_SLOT`]
/// rows are skipped).
pub fn kv_append(cache: &mut KvLayer, k: &Tensor, v: &Tensor, slot_mapping: &[u32]) -> Result<()> {
    const OP: &str = "kv_append";
    let n = slot_mapping.len();
    if k.shape() != [n, cache.num_kv_heads, cache.head_dim] || v.shape() != k.shape() {
        let detail = format!("k {:?}, v {:?}, {n} slots", k.shape(), v.shape());
        return shape_err(OP, detail);
    }
    let capacity = cache.num_blocks * KV_BLOCK_TOKENS;
    if let Some(&slot) = slot_mapping
        .iter()
        .find(|&&s| s != PAD_SLOT && s as usize >= capacity)
    {
        return Err(TensorError::Invalid {
            op: OP,
            detail: format!("slot {slot} >= capacity {capacity}"),
        });
    }
    if n == 0 || k.elements() == 0 {
        return Ok(());
    }
    let kg = gpu_of(OP, k)?;
    let (ks, vs) = (kg.bf16(OP)?, gpu_of(OP, v)?.bf16(OP)?);
    let backend = kg.backend().clone();
    let shape = cache_shape(cache);
    let width = cache.slot_stride();
    // Every layer appends at the same slots: uploaded once per step.
    let slots = cached_i32(&backend, tags::KV_SLOTS, &slots_i32(slot_mapping)?)?;
    let kv = device_kv(cache, &backend)?;
    kattn::paged_kv_append(
        backend.runtime(),
        &ks.as_view(),
        &vs.as_view(),
        &slots.as_view(),
        &mut kv.k.as_view_mut(),
        &mut kv.v.as_view_mut(),
        shape,
        (width, width),
    )?;
    Ok(())
}

/// Checks a span against the batch and the pool (as the CPU op does).
fn validate_span(s: &SeqSpan, n: usize, num_blocks: usize) -> Result<()> {
    let pages = s.context_len.div_ceil(KV_BLOCK_TOKENS);
    let bad_page = s
        .block_table
        .iter()
        .take(pages)
        .any(|&b| b as usize >= num_blocks);
    if s.query_start + s.query_len > n
        || s.context_len < s.query_len
        || s.context_len > s.block_table.len() * KV_BLOCK_TOKENS
        || bad_page
    {
        return Err(TensorError::Invalid {
            op: "paged_attention",
            detail: format!("bad span {s:?} for {n} tokens and {num_blocks} blocks"),
        });
    }
    Ok(())
}

/// Host-side metadata for one launch in one buffer (one upload, shared by every layer of the
/// step through the metadata cache): `[rows, max_pages]` block tables, then `[rows]` key counts,
/// then whatever the launch appends (the prefill's `[n_seqs + 1]` cu_q_lens).
struct LaunchMeta {
    data: Vec<i32>,
    rows: usize,
    max_pages: usize,
}

impl LaunchMeta {
    fn new(rows: usize, max_pages: usize) -> Self {
        Self {
            data: vec![0; rows * max_pages + rows],
            rows,
            max_pages,
        }
    }

    fn set(&mut self, row: usize, table: &[u32], len: usize) -> Result<()> {
        let pages = len.div_ceil(KV_BLOCK_TOKENS);
        let dst = &mut self.data[row * self.max_pages..][..pages];
        for (d, &b) in dst.iter_mut().zip(&table[..pages]) {
            *d = i32::try_from(b).map_err(|_| TensorError::Invalid {
                op: "paged_attention",
                detail: format!("block id {b} exceeds i32"),
            })?;
        }
        self.data[self.rows * self.max_pages + row] = len as i32;
        Ok(())
    }

    /// Offsets of the block tables, the key counts and the appended tail in `data`.
    fn ranges(&self) -> [std::ops::Range<usize>; 3] {
        let bt = self.rows * self.max_pages;
        let sl = bt + self.rows;
        [0..bt, bt..sl, sl..self.data.len()]
    }

    fn seq_lens(&self) -> &[i32] {
        &self.data[self.ranges()[1].clone()]
    }
}

/// Causal attention of q `[n, num_heads, head_dim]` (bf16, GPU) over the layer's device pages →
/// `[n, num_heads * head_dim]`.
pub fn paged_attention(
    q: &Tensor,
    cache: &KvLayer,
    meta: &AttentionMeta,
    scale: f32,
) -> Result<Tensor> {
    const OP: &str = "paged_attention";
    let [n, num_heads, head_dim] = *q.shape() else {
        return shape_err(OP, format!("q must be 3-D, got {:?}", q.shape()));
    };
    if head_dim != cache.head_dim
        || cache.num_kv_heads == 0
        || !num_heads.is_multiple_of(cache.num_kv_heads)
    {
        let detail = format!("q {:?} vs cache heads {}", q.shape(), cache.num_kv_heads);
        return shape_err(OP, detail);
    }
    for s in &meta.seqs {
        validate_span(s, n, cache.num_blocks)?;
    }
    let width = num_heads * head_dim;
    if n == 0 || width == 0 {
        return Ok(Tensor::zeros(vec![n, width]));
    }
    let qg = gpu_of(OP, q)?;
    let qs = qg.bf16(OP)?;
    let backend = qg.backend().clone();
    let kv = cache
        .gpu
        .as_ref()
        .ok_or_else(|| placement(OP, "KV pages are not on the GPU (no kv_append yet)"))?;
    let is_decode = meta.seqs.len() == n
        && meta
            .seqs
            .iter()
            .enumerate()
            .all(|(i, s)| s.query_len == 1 && s.query_start == i);
    let mut out = if is_decode {
        // SAFETY: row i is sequence i's single query: the decode kernel writes every row.
        unsafe { backend.pool().alloc::<bf16>(n * width)? }
    } else {
        // Rows no span covers stay zero, as on the CPU.
        backend.pool().alloc_zeros::<bf16>(n * width)?
    };
    // A step graph fixes the block-table width (`pad_pages`) for every step it replays.
    let max_pages = launch_pages(meta, backend.graph_pad_pages());
    let shape = |rows: usize| AttentionShape {
        n_seqs: rows,
        n_heads: num_heads,
        q_stride: width,
        max_pages,
        scale,
    };
    let tiled_prefill =
        !is_decode && !backend.deterministic() && head_dim % 32 == 0 && head_dim <= 256;
    if meta.seqs.is_empty() {
        // Nothing attends: zeros, as on the CPU.
    } else if tiled_prefill {
        let n_seqs = meta.seqs.len();
        let mut lm = LaunchMeta::new(n_seqs, max_pages);
        let mut cu_q_lens = vec![0i32; n_seqs + 1];
        let mut max_q_len = 0;
        for (i, s) in meta.seqs.iter().enumerate() {
            lm.set(i, &s.block_table, s.context_len)?;
            cu_q_lens[i] = s.query_start as i32;
            cu_q_lens[i + 1] = (s.query_start + s.query_len) as i32;
            max_q_len = max_q_len.max(s.query_len);
        }
        ensure_contiguous_spans(meta, OP)?;
        lm.data.extend_from_slice(&cu_q_lens);
        let [bt, sl, cu] = lm.ranges();
        let dev = cached_i32(&backend, "paged_attention.prefill", &lm.data)?;
        kattn::paged_attention_prefill(
            backend.runtime(),
            &qs.as_view(),
            &kv.k.as_view(),
            &kv.v.as_view(),
            &dev.slice(bt),
            &dev.slice(cu),
            &dev.slice(sl),
            &mut out.as_view_mut(),
            n,
            max_q_len.max(1),
            shape(meta.seqs.len()),
            cache_shape(cache),
        )?;
    } else {
        let lm = query_rows_meta(meta, n, max_pages)?;
        let max_context = lm.seq_lens().iter().copied().max().unwrap_or(0).max(1) as usize;
        let max_context = max_context.max(max_pages * KV_BLOCK_TOKENS);
        decode(
            &backend,
            qs,
            kv,
            &lm,
            &mut out,
            (n, num_heads, max_context),
            shape(n),
            cache,
        )?;
    }
    let handle = GpuHandle::new(backend, GpuData::Bf16(out));
    Ok(Tensor::from_gpu(vec![n, width], handle))
}

/// Block-table width of a launch: the longest sequence's pages, at least `pad_pages` and 1.
fn launch_pages(meta: &AttentionMeta, pad_pages: usize) -> usize {
    meta.seqs
        .iter()
        .map(|s| s.context_len.div_ceil(KV_BLOCK_TOKENS))
        .max()
        .unwrap_or(0)
        .max(pad_pages)
        .max(1)
}

/// One row per query token (decode: one per sequence, in order) with its causal length.
fn query_rows_meta(meta: &AttentionMeta, n: usize, max_pages: usize) -> Result<LaunchMeta> {
    let mut lm = LaunchMeta::new(n, max_pages);
    for s in &meta.seqs {
        for i in 0..s.query_len {
            let visible = s.context_len - s.query_len + i + 1;
            lm.set(s.query_start + i, &s.block_table, visible)?;
        }
    }
    Ok(lm)
}

/// The `paged_attention.decode` upload of an `n`-token decode step with block tables
/// `pad_pages` wide (what a step graph feeds at replay; spans are validated here too).
pub(crate) fn decode_launch_meta(
    meta: &AttentionMeta,
    n: usize,
    pad_pages: usize,
) -> Result<Vec<i32>> {
    for s in &meta.seqs {
        validate_span(s, n, usize::MAX)?;
    }
    Ok(query_rows_meta(meta, n, launch_pages(meta, pad_pages))?.data)
}

/// The `kv_append.slots` upload: slot ids as i32, [`PAD_SLOT`] (padding rows) as -1.
pub(crate) fn slots_i32(slot_mapping: &[u32]) -> Result<Vec<i32>> {
    slot_mapping
        .iter()
        .map(|&s| match s {
            PAD_SLOT => Ok(-1),
            s => i32::try_from(s).map_err(|_| TensorError::Invalid {
                op: "kv_append",
                detail: format!("slot {s} exceeds i32"),
            }),
        })
        .collect()
}

/// The tiled prefill kernel reads query rows `cu_q_lens[s]..cu_q_lens[s+1]`: spans must be in
/// query order without gaps (as `ForwardBatch` builds them).
fn ensure_contiguous_spans(meta: &AttentionMeta, op: &'static str) -> Result<()> {
    let mut next = meta.seqs.first().map_or(0, |s| s.query_start);
    for s in &meta.seqs {
        if s.query_start != next {
            return Err(placement(
                op,
                "GPU prefill needs spans in query order without gaps",
            ));
        }
        next += s.query_len;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn decode(
    backend: &Arc<CudaBackend>,
    q: &CudaSlice<bf16>,
    kv: &GpuKv,
    lm: &LaunchMeta,
    out: &mut CudaSlice<bf16>,
    (rows, num_heads, max_context): (usize, usize, usize),
    shape: AttentionShape,
    cache: &KvLayer,
) -> Result<()> {
    let dev = cached_i32(backend, tags::DECODE_ATTENTION, &lm.data)?;
    let [bt, sl, _] = lm.ranges();
    let mut guard = backend.decode_workspace(rows, num_heads, cache.head_dim, max_context)?;
    let scratch = guard
        .as_mut()
        .ok_or_else(|| placement("paged_attention", "decode workspace missing"))?;
    kattn::paged_attention_decode(
        backend.runtime(),
        &q.as_view(),
        &kv.k.as_view(),
        &kv.v.as_view(),
        &dev.slice(bt),
        &dev.slice(sl),
        &mut out.as_view_mut(),
        &mut scratch.ws,
        shape,
        cache_shape(cache),
    )?;
    Ok(())
}

/// Copies page `src` onto page `dst` in K and V (device-to-device).
pub fn copy_block(cache: &mut KvLayer, src: usize, dst: usize) -> Result<()> {
    const OP: &str = "KvLayer::copy_block";
    let page = KV_BLOCK_TOKENS * cache.slot_stride();
    if src == dst {
        return Ok(());
    }
    if src.max(dst) >= cache.num_blocks {
        return Err(placement(
            OP,
            format!("page {} out of {}", src.max(dst), cache.num_blocks),
        ));
    }
    let kv = cache
        .gpu
        .as_mut()
        .and_then(Arc::get_mut)
        .ok_or_else(|| placement(OP, "KV pages missing or shared"))?;
    let stream = kv.backend.stream().clone();
    for buf in [&mut kv.k, &mut kv.v] {
        let split = src.max(dst) * page;
        let (mut lo, mut hi) = buf.split_at_mut(split);
        let result = if src < dst {
            let from = lo.slice(src * page..(src + 1) * page);
            stream.memcpy_dtod(&from, &mut hi.slice_mut(0..page))
        } else {
            let from = hi.slice(0..page);
            stream.memcpy_dtod(&from, &mut lo.slice_mut(dst * page..(dst + 1) * page))
        };
        result.map_err(cuda_err(OP))?;
    }
    Ok(())
}
