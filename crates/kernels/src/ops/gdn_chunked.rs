//! Launcher of the chunked Gated DeltaNet prefill (`cu/gdn_chunked.cu`, MODEL-SPECS §4.4 step 7,
//! C = 64). Same inputs, outputs and state pool as [`super::linear_attn::gdn_prefill`] (the
//! recurrent form); chunks are counted from each sequence's first row of the launch.
//!
//! Invariants: the whole chunk working set (state, q̂/k̂/W, v/U, A) lives in dynamic shared
//! memory, so a shape is supported only when `Dk, Dv <= 128` and [`gdn_chunked_smem_bytes`] fits
//! the device's opt-in limit ([`gdn_chunked_supported`]); callers fall back to the recurrent
//! kernel otherwise. The launcher raises the function's dynamic-smem limit before each launch.

use cudarc::driver::sys::{CUdevice_attribute, CUfunction_attribute};
use cudarc::driver::{CudaView, CudaViewMut};
use half::bf16;

use super::linear_attn::{GdnInputs, GdnShape};
use super::{check_len, to_grid, to_i32};
use crate::error::{driver, ensure, Result};
use crate::runtime::{grid, launch_kernel, KernelRuntime};

/// Chunk length (HF `chunk_size`).
pub const GDN_CHUNK: usize = 64;
/// Largest supported `Dk` and `Dv`.
pub const GDN_CHUNKED_MAX_DIM: usize = 128;
const THREADS: u32 = 256;
/// Static shared memory of the kernel (`block_sum`'s 32 floats) plus a margin.
const STATIC_SMEM: usize = 1024;

/// Dynamic shared memory of one block: S `[Dk, Dv]`, Q, K, W `[C, Dk+1]`, U `[C, Dv+1]`,
/// A `[C, C]` and four `[C]` vectors, all f32.
pub fn gdn_chunked_smem_bytes(shape: &GdnShape) -> usize {
    let (dk, dv, c) = (shape.k_head_dim, shape.v_head_dim, GDN_CHUNK);
    4 * (dk * dv + 3 * c * (dk + 1) + c * (dv + 1) + c * c + 4 * c)
}

/// Whether the chunked kernel can run `shape` on this device (dims and shared memory).
pub fn gdn_chunked_supported(rt: &KernelRuntime, shape: &GdnShape) -> bool {
    let dims_ok = (1..=GDN_CHUNKED_MAX_DIM).contains(&shape.k_head_dim)
        && (1..=GDN_CHUNKED_MAX_DIM).contains(&shape.v_head_dim);
    dims_ok
        && max_smem_optin(rt).is_ok_and(|max| gdn_chunked_smem_bytes(shape) + STATIC_SMEM <= max)
}

fn max_smem_optin(rt: &KernelRuntime) -> Result<usize> {
    let attr = CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN;
    let v = rt
        .context()
        .attribute(attr)
        .map_err(driver("max shared memory per block (opt-in)"))?;
    Ok(usize::try_from(v).unwrap_or(0))
}

/// Chunked prefill over varlen sequences (`cu_seqlens` `[n_seqs + 1]`, rows absolute in the
/// buffers). `single_recurrent`: a sequence of exactly one row runs one recurrence step (the
/// decode math of `gdn_decode`) instead of a one-row chunk, so decode rows can share the launch.
#[allow(clippy::too_many_arguments)]
pub fn gdn_chunked_prefill(
    rt: &KernelRuntime,
    x: &GdnInputs<'_, '_>,
    cu_seqlens: &CudaView<'_, i32>,   // [n_seqs + 1]
    state: &mut CudaViewMut<'_, f32>, // [n_slots, Hv, Dk, Dv]
    out: &mut CudaViewMut<'_, bf16>,  // [n_tokens, Hv, Dv]
    n_tokens: usize,
    shape: GdnShape,
    single_recurrent: bool,
) -> Result<()> {
    const OP: &str = "gdn_chunked_prefill";
    let n_seqs = x.state_slots.len();
    ensure(
        shape.n_k_heads > 0 && shape.n_v_heads.is_multiple_of(shape.n_k_heads),
        OP,
        || {
            format!(
                "Hv {} not a multiple of Hk {}",
                shape.n_v_heads, shape.n_k_heads
            )
        },
    )?;
    ensure(gdn_chunked_supported(rt, &shape), OP, || {
        format!(
            "Dk {} / Dv {} unsupported (max {GDN_CHUNKED_MAX_DIM}, {} bytes of shared memory)",
            shape.k_head_dim,
            shape.v_head_dim,
            gdn_chunked_smem_bytes(&shape)
        )
    })?;
    check_len(OP, "qkv", x.qkv.len(), n_tokens * shape.conv_dim())?;
    check_len(OP, "a", x.a.len(), n_tokens * shape.n_v_heads)?;
    check_len(OP, "b", x.b.len(), n_tokens * shape.n_v_heads)?;
    check_len(OP, "a_log", x.a_log.len(), shape.n_v_heads)?;
    check_len(OP, "dt_bias", x.dt_bias.len(), shape.n_v_heads)?;
    check_len(OP, "state", state.len(), shape.state_numel())?;
    check_len(
        OP,
        "out",
        out.len(),
        n_tokens * shape.n_v_heads * shape.v_head_dim,
    )?;
    check_len(OP, "cu_seqlens", cu_seqlens.len(), n_seqs + 1)?;
    let smem = gdn_chunked_smem_bytes(&shape);
    let smem_i = to_i32(OP, "shared memory", smem)?;
    rt.context()
        .bind_to_thread()
        .map_err(driver("gdn_chunked_prefill_bf16: binding the context"))?;
    rt.function("gdn_chunked_prefill_bf16")?
        .set_attribute(
            CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
            smem_i,
        )
        .map_err(driver(
            "gdn_chunked_prefill_bf16: dynamic shared memory limit",
        ))?;
    let cfg = grid(
        (
            to_grid(OP, "Hv", shape.n_v_heads)?,
            to_grid(OP, "n_seqs", n_seqs)?,
            1,
        ),
        THREADS,
        smem as u32,
    );
    let i = |w, v| to_i32(OP, w, v);
    let (hk, hv, dk, dv) = (
        i("Hk", shape.n_k_heads)?,
        i("Hv", shape.n_v_heads)?,
        i("Dk", shape.k_head_dim)?,
        i("Dv", shape.v_head_dim)?,
    );
    let single = i32::from(single_recurrent);
    launch_kernel!(
        rt,
        "gdn_chunked_prefill_bf16",
        cfg,
        [
            x.qkv,
            x.a,
            x.b,
            x.a_log,
            x.dt_bias,
            state,
            x.state_slots,
            cu_seqlens,
            out,
            &hk,
            &hv,
            &dk,
            &dv,
            &single
        ]
    )
}
