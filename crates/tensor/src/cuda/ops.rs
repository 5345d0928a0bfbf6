//! Dense ops on the GPU: embedding, linear (cuBLASLt with per-shape cached plans; cuBLAS for f32
//! logits), RMSNorm (and the fused residual add + RMSNorm), SiLU-mul, residual add, RoPE, row
//! gather. Same shapes and checks as the CPU ops in `crate::ops`; inputs
//! are bf16 device tensors, outputs bf16 (f32 for a linear with an f32-output weight).
//!
//! Invariants: every output buffer is fully written by its kernel before it is read; an op whose
//! output has no elements returns an empty CPU tensor (device buffers are never empty). Outputs
//! and metadata uploads come from the backend's buffer pool (no driver allocation once warm); RoPE
//! positions and inverse frequencies go through the backend's metadata cache (one upload a step).
//! In deterministic mode `linear` runs its GEMM in fixed [`FIXED_GEMM_ROWS`]-row chunks, so the
//! GEMM shape (and thus cuBLAS's algorithm) never depends on the batch size.

use std::ffi::c_void;

use arle_kernels::cudarc::cublas::{result as cublas_result, sys as cublas_sys};
use arle_kernels::cudarc::driver::{CudaSlice, DevicePtr, DevicePtrMut, PushKernelArg};
use arle_kernels::ops::{basic, gemv, norm};
use half::bf16;

use super::backend::grid_for;
use super::meta_cache::{cached_f32, cached_i32, tags};
use super::{cuda_err, placement, to_i32s, upload_i32_pooled, CudaBackend, GpuData, GpuHandle};
use crate::error::shape_err;
use crate::ops::{RmsNormKind, RopeTable};
use crate::{Result, Tensor, TensorError, Weight};

/// The device handle of `t`, or a placement error.
pub(crate) fn gpu_of<'a>(op: &'static str, t: &'a Tensor) -> Result<&'a GpuHandle> {
    t.gpu()
        .ok_or_else(|| placement(op, "a tensor argument is on the CPU, another on a GPU"))
}

/// The bf16 device copy of `w`, or a placement error.
fn weight_of<'a>(op: &'static str, w: &'a Weight) -> Result<&'a super::GpuWeight> {
    w.gpu()
        .ok_or_else(|| placement(op, "weight was not uploaded to the GPU (Weight::to_device)"))
}

/// An uninitialised device buffer of `n` values (`n > 0`); the caller's kernel writes all of it.
fn alloc<T: arle_kernels::cudarc::driver::DeviceRepr>(
    backend: &CudaBackend,
    n: usize,
) -> Result<CudaSlice<T>> {
    // SAFETY: every caller launches a kernel (or GEMM) that writes all `n` values before any
    // read of the buffer.
    unsafe { backend.pool().alloc::<T>(n) }
}

fn bf16_tensor(
    backend: &std::sync::Arc<CudaBackend>,
    shape: Vec<usize>,
    buf: CudaSlice<bf16>,
) -> Tensor {
    Tensor::from_gpu(shape, GpuHandle::new(backend.clone(), GpuData::Bf16(buf)))
}

/// `out[t] = table[ids[t]]`: ids `[n]` → `[n, hidden]` bf16 on the table's device.
pub fn embedding(table: &Weight, ids: &[u32]) -> Result<Tensor> {
    const OP: &str = "embedding";
    let [vocab, hidden] = *table.shape() else {
        return shape_err(OP, format!("table must be 2-D, got {:?}", table.shape()));
    };
    if let Some(&bad) = ids.iter().find(|&&i| i as usize >= vocab) {
        return Err(TensorError::Invalid {
            op: OP,
            detail: format!("token id {bad} >= vocab {vocab}"),
        });
    }
    if ids.is_empty() || hidden == 0 {
        return Ok(Tensor::zeros(vec![ids.len(), hidden]));
    }
    let w = weight_of(OP, table)?;
    let backend = &w.backend;
    // Tagged like the other per-step metadata so a step graph can feed it (see `graph`).
    let ids_dev = cached_i32(backend, tags::EMBEDDING_IDS, &to_i32s(OP, ids)?)?;
    let mut out = alloc::<bf16>(backend, ids.len() * hidden)?;
    basic::embedding(
        backend.runtime(),
        &w.data.as_view(),
        &ids_dev.as_view(),
        &mut out.as_view_mut(),
        vocab,
        hidden,
    )?;
    Ok(bf16_tensor(backend, vec![ids.len(), hidden], out))
}

/// `y = x · Wᵀ (+ b)`: x `[n, in]` bf16, W `[out, in]` → `[n, out]` (bf16, or f32 when the weight
/// was uploaded with `f32_output`).
pub fn linear(x: &Tensor, w: &Weight, bias: Option<&Weight>) -> Result<Tensor> {
    const OP: &str = "linear";
    let ([n, k], [m, wk]) = (x.shape(), w.shape()) else {
        let detail = format!("x {:?} and w {:?} must be 2-D", x.shape(), w.shape());
        return shape_err(OP, detail);
    };
    let (n, k, m) = (*n, *k, *m);
    if k != *wk || bias.is_some_and(|b| b.elements() != m) {
        return shape_err(OP, format!("x {:?} vs w {:?}", x.shape(), w.shape()));
    }
    if n == 0 || m == 0 {
        return Ok(Tensor::zeros(vec![n, m]));
    }
    let xs = gpu_of(OP, x)?.bf16(OP)?;
    let wg = weight_of(OP, w)?;
    let backend = &wg.backend;
    let dims = |v: usize| {
        i32::try_from(v).map_err(|_| TensorError::Invalid {
            op: OP,
            detail: format!("dimension {v} exceeds i32"),
        })
    };
    let (mi, ni, ki) = (dims(m)?, dims(n)?, dims(k)?);
    // Decode steps (a few rows): our GEMV streams the weight once at close to HBM bandwidth.
    // Its rows are batch-invariant too, but deterministic mode keeps one GEMM path for every
    // batch size.
    let shape = gemv::GemvShape {
        n_rows: n,
        n_out: m,
        k,
    };
    let use_gemv = !backend.deterministic()
        && gemv::gemv_supported(backend.runtime(), shape, &xs.as_view(), &wg.data.as_view());
    if use_gemv {
        let bias_dev = bias
            .map(|b| weight_of(OP, b).map(|g| &g.data))
            .transpose()?;
        let data = if wg.f32_output {
            GpuData::F32(gemv_out(backend, xs, &wg.data, bias_dev, shape)?)
        } else {
            GpuData::Bf16(gemv_out(backend, xs, &wg.data, bias_dev, shape)?)
        };
        let handle = GpuHandle::new(backend.clone(), data);
        return Ok(Tensor::from_gpu(vec![n, m], handle));
    }
    if wg.f32_output {
        if bias.is_some() {
            return Err(placement(
                OP,
                "bias with f32 (logits) output is not supported",
            ));
        }
        let mut out = alloc::<f32>(backend, n * m)?;
        if backend.deterministic() {
            let rows = i32::try_from(FIXED_GEMM_ROWS).unwrap_or(i32::MAX);
            fixed_row_chunks(backend, xs, &mut out, (n, k, m), |x, y| {
                gemm_f32_out(backend, &wg.data, x, y, (mi, rows, ki))
            })?;
        } else {
            gemm_f32_out(backend, &wg.data, xs, &mut out, (mi, ni, ki))?;
        }
        let handle = GpuHandle::new(backend.clone(), GpuData::F32(out));
        return Ok(Tensor::from_gpu(vec![n, m], handle));
    }
    let bias_dev = bias
        .map(|b| weight_of(OP, b).map(|g| &g.data))
        .transpose()?;
    let mut out = alloc::<bf16>(backend, n * m)?;
    if backend.deterministic() {
        fixed_row_chunks(backend, xs, &mut out, (n, k, m), |x, y| {
            lt_matmul(backend, &wg.data, x, y, bias_dev, (m, FIXED_GEMM_ROWS, k))
        })?;
    } else {
        lt_matmul(backend, &wg.data, xs, &mut out, bias_dev, (m, n, k))?;
    }
    Ok(bf16_tensor(backend, vec![n, m], out))
}

/// `y = x · Wᵀ (+ bias)` through the decode GEMV into a fresh pooled buffer of `T` (bf16 or f32).
fn gemv_out<T: gemv::GemvOut>(
    backend: &CudaBackend,
    xs: &CudaSlice<bf16>,
    w: &CudaSlice<bf16>,
    bias: Option<&CudaSlice<bf16>>,
    shape: gemv::GemvShape,
) -> Result<CudaSlice<T>> {
    let mut out = alloc::<T>(backend, shape.n_rows * shape.n_out)?;
    let bias = bias.map(|b| b.as_view());
    let (x, w) = (xs.as_view(), w.as_view());
    gemv::gemv(
        backend.runtime(),
        &x,
        &w,
        bias.as_ref(),
        &mut out.as_view_mut(),
        shape,
    )?;
    Ok(out)
}

/// [`linear`] of 2-3 weights over one x `[n, k]` in one GEMV launch, when every projection
/// takes the GEMV path (bf16 output, n <= 8 rows, not deterministic, aligned); `None` otherwise
/// (the caller runs one `linear` each). Same values as separate `linear`s.
pub fn linear_group(
    x: &Tensor,
    layers: &[(&Weight, Option<&Weight>)],
) -> Result<Option<Vec<Tensor>>> {
    const OP: &str = "linear_group";
    let [n, k] = *x.shape() else {
        return Ok(None);
    };
    if !(2..=gemv::GEMV_MAX_PARTS).contains(&layers.len()) || n == 0 {
        return Ok(None);
    }
    let xs = gpu_of(OP, x)?.bf16(OP)?;
    let mut weights = Vec::with_capacity(layers.len());
    for &(w, b) in layers {
        let wg = weight_of(OP, w)?;
        let [m, wk] = *w.shape() else {
            return Ok(None);
        };
        let shape = gemv::GemvShape {
            n_rows: n,
            n_out: m,
            k,
        };
        let fits = wk == k
            && !wg.f32_output
            && !wg.backend.deterministic()
            && b.is_none_or(|b| b.elements() == m)
            && gemv::gemv_supported(
                wg.backend.runtime(),
                shape,
                &xs.as_view(),
                &wg.data.as_view(),
            );
        if !fits {
            return Ok(None);
        }
        let bias = b.map(|b| weight_of(OP, b)).transpose()?;
        weights.push((wg, bias, m));
    }
    let backend = &weights[0].0.backend;
    let mut outs = weights
        .iter()
        .map(|&(_, _, m)| alloc::<bf16>(backend, n * m))
        .collect::<Result<Vec<_>>>()?;
    {
        let views: Vec<_> = weights
            .iter()
            .map(|(w, b, _)| (w.data.as_view(), b.map(|b| b.data.as_view())))
            .collect();
        let mut ys: Vec<_> = outs.iter_mut().map(|o| o.as_view_mut()).collect();
        let mut parts: Vec<gemv::GemvPart<'_, '_>> = views
            .iter()
            .zip(ys.iter_mut())
            .map(|((w, b), y)| gemv::GemvPart {
                w,
                bias: b.as_ref(),
                y,
            })
            .collect();
        gemv::gemv_multi(backend.runtime(), &xs.as_view(), &mut parts, n, k)?;
    }
    Ok(Some(
        outs.into_iter()
            .zip(&weights)
            .map(|(o, &(_, _, m))| bf16_tensor(backend, vec![n, m], o))
            .collect(),
    ))
}

/// Rows per GEMM call in deterministic mode (every call has exactly this many rows).
pub const FIXED_GEMM_ROWS: usize = 64;

/// Runs `gemm(x_chunk [R, k], y_chunk [R, m])` over `x [n, k]` in chunks of exactly
/// `R = FIXED_GEMM_ROWS` rows (the last chunk padded with rows whose outputs are dropped), and
/// gathers the results into `y [n, m]`. Every call has the same shape and pointers, so cuBLAS picks
/// the same algorithm each time and a row's output is independent of the other rows.
fn fixed_row_chunks<T: arle_kernels::cudarc::driver::DeviceRepr>(
    backend: &CudaBackend,
    x: &CudaSlice<bf16>,
    y: &mut CudaSlice<T>,
    (n, k, m): (usize, usize, usize),
    mut gemm: impl FnMut(&CudaSlice<bf16>, &mut CudaSlice<T>) -> Result<()>,
) -> Result<()> {
    let rows = FIXED_GEMM_ROWS;
    let stream = backend.stream();
    let mut xc = backend.pool().alloc_zeros::<bf16>(rows * k)?;
    // SAFETY: each chunk's GEMM writes all of it before the rows are copied out.
    let mut yc = unsafe { backend.pool().alloc::<T>(rows * m)? };
    let mut result = Ok(());
    for start in (0..n).step_by(rows) {
        let r = rows.min(n - start);
        let step = stream
            .memcpy_dtod(
                &x.slice(start * k..(start + r) * k),
                &mut xc.slice_mut(0..r * k),
            )
            .map_err(cuda_err("linear chunk copy"))
            .and_then(|_| gemm(&xc, &mut yc))
            .and_then(|_| {
                stream
                    .memcpy_dtod(
                        &yc.slice(0..r * m),
                        &mut y.slice_mut(start * m..(start + r) * m),
                    )
                    .map_err(cuda_err("linear chunk copy"))
            });
        if step.is_err() {
            result = step;
            break;
        }
    }
    backend.pool().recycle(xc);
    backend.pool().recycle(yc);
    result
}

/// bf16 `y[n, m] = x[n, k] · W[m, k]ᵀ (+ bias)` through cuBLASLt, with the shape's cached plan
/// (descriptor, layouts and algorithm chosen once; see `gemm_plan`).
fn lt_matmul(
    backend: &CudaBackend,
    w: &CudaSlice<bf16>,
    xs: &CudaSlice<bf16>,
    out: &mut CudaSlice<bf16>,
    bias_dev: Option<&CudaSlice<bf16>>,
    (m, n, k): (usize, usize, usize),
) -> Result<()> {
    // SAFETY: the callers checked the lengths (w m*k, x n*k, out n*m, bias m), all bf16 on the
    // backend's stream, which is the cuBLASLt handle's stream.
    unsafe {
        backend
            .gemm_plans()
            .matmul(backend.blas_lt(), w, xs, out, bias_dev, (m, n, k))
    }
}

/// f32 C(m×n) = Aᵀ · B with bf16 A (k×m) and B (k×n), f32 accumulation (cuBLAS GemmEx).
fn gemm_f32_out(
    backend: &CudaBackend,
    a: &CudaSlice<bf16>,
    b: &CudaSlice<bf16>,
    c: &mut CudaSlice<f32>,
    (m, n, k): (i32, i32, i32),
) -> Result<()> {
    let stream = backend.stream();
    let (alpha, beta) = (1.0f32, 0.0f32);
    let (a_ptr, _ra) = a.device_ptr(stream);
    let (b_ptr, _rb) = b.device_ptr(stream);
    let (c_ptr, _rc) = c.device_ptr_mut(stream);
    use cublas_sys::{cublasComputeType_t, cublasGemmAlgo_t, cublasOperation_t, cudaDataType_t};
    // SAFETY: a holds m*k, b n*k and c m*n values (checked by `linear`); scalars are host f32
    // (default pointer mode); the handle is bound to `stream`.
    unsafe {
        cublas_result::gemm_ex(
            *backend.blas().handle(),
            cublasOperation_t::CUBLAS_OP_T,
            cublasOperation_t::CUBLAS_OP_N,
            m,
            n,
            k,
            (&alpha) as *const f32 as *const c_void,
            a_ptr as *const c_void,
            cudaDataType_t::CUDA_R_16BF,
            k,
            b_ptr as *const c_void,
            cudaDataType_t::CUDA_R_16BF,
            k,
            (&beta) as *const f32 as *const c_void,
            c_ptr as *mut c_void,
            cudaDataType_t::CUDA_R_32F,
            m,
            cublasComputeType_t::CUBLAS_COMPUTE_32F,
            cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
        )
    }
    .map_err(|e| placement("linear", format!("cuBLAS GemmEx: {e:?}")))
}

/// RMSNorm over the last dim: x `[.., dim]` bf16 → same shape.
pub fn rms_norm(x: &Tensor, w: &Weight, eps: f32, kind: RmsNormKind) -> Result<Tensor> {
    const OP: &str = "rms_norm";
    let dim = x.shape().last().copied().unwrap_or(0);
    if w.elements() != dim {
        return shape_err(OP, format!("x {:?} vs weight {:?}", x.shape(), w.shape()));
    }
    if x.elements() == 0 {
        return Ok(Tensor::zeros(x.shape().to_vec()));
    }
    let xs = gpu_of(OP, x)?.bf16(OP)?;
    let wg = weight_of(OP, w)?;
    let backend = &wg.backend;
    let mut out = alloc::<bf16>(backend, x.elements())?;
    let kind = match kind {
        RmsNormKind::Plain => norm::RmsNormKind::Plain,
        RmsNormKind::ZeroCentered => norm::RmsNormKind::ZeroCentred,
    };
    norm::rms_norm(
        backend.runtime(),
        &xs.as_view(),
        &wg.data.as_view(),
        &mut out.as_view_mut(),
        kind,
        norm::RmsNormShape::contiguous(x.elements() / dim, dim, eps),
    )?;
    Ok(bf16_tensor(backend, x.shape().to_vec(), out))
}

/// `x += y` (bf16 residual stream), then RMSNorm of x: one fused kernel, bit-identical to
/// `add_inplace` followed by `rms_norm`. x, y `[.., dim]` → `[.., dim]`.
pub fn add_rms_norm(
    x: &mut Tensor,
    y: &Tensor,
    w: &Weight,
    eps: f32,
    kind: RmsNormKind,
) -> Result<Tensor> {
    const OP: &str = "add_rms_norm";
    let dim = crate::ops::norm::add_rms_norm_dim(x, y, w)?;
    if x.elements() == 0 {
        return Ok(Tensor::zeros(x.shape().to_vec()));
    }
    let (shape, n_rows) = (x.shape().to_vec(), x.elements() / dim);
    let ys = gpu_of(OP, y)?.bf16(OP)?;
    let wg = weight_of(OP, w)?;
    let backend = wg.backend.clone();
    let xs = x
        .gpu_mut()
        .ok_or_else(|| placement(OP, "x is on the CPU, y on a GPU"))?
        .bf16_mut(OP)?;
    let mut out = alloc::<bf16>(&backend, n_rows * dim)?;
    let kind = match kind {
        RmsNormKind::Plain => norm::RmsNormKind::Plain,
        RmsNormKind::ZeroCentered => norm::RmsNormKind::ZeroCentred,
    };
    norm::add_rms_norm(
        backend.runtime(),
        &ys.as_view(),
        &mut xs.as_view_mut(),
        &wg.data.as_view(),
        &mut out.as_view_mut(),
        kind,
        norm::RmsNormShape::contiguous(n_rows, dim, eps),
    )?;
    Ok(bf16_tensor(&backend, shape, out))
}

/// `silu(gate) * up` elementwise (same shapes).
pub fn silu_mul(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    const OP: &str = "silu_mul";
    if gate.shape() != up.shape() {
        return shape_err(OP, format!("{:?} vs {:?}", gate.shape(), up.shape()));
    }
    if gate.elements() == 0 {
        return Ok(Tensor::zeros(gate.shape().to_vec()));
    }
    let g = gpu_of(OP, gate)?;
    let (gs, us) = (g.bf16(OP)?, gpu_of(OP, up)?.bf16(OP)?);
    let backend = g.backend();
    let inter = gate.shape().last().copied().unwrap_or(1);
    let mut out = alloc::<bf16>(backend, gate.elements())?;
    basic::silu_mul(
        backend.runtime(),
        &gs.as_view(),
        &us.as_view(),
        &mut out.as_view_mut(),
        basic::SiluMulShape {
            n_rows: gate.elements() / inter,
            inter,
            in_stride: inter,
        },
    )?;
    Ok(bf16_tensor(backend, gate.shape().to_vec(), out))
}

/// `x += y` elementwise (same shapes).
pub fn add_inplace(x: &mut Tensor, y: &Tensor) -> Result<()> {
    const OP: &str = "add_inplace";
    if x.shape() != y.shape() {
        return shape_err(OP, format!("{:?} vs {:?}", x.shape(), y.shape()));
    }
    let n = x.elements();
    if n == 0 {
        return Ok(());
    }
    let ys = gpu_of(OP, y)?.bf16(OP)?;
    let xg = x
        .gpu_mut()
        .ok_or_else(|| placement(OP, "x is on the CPU, y on a GPU"))?;
    let backend = xg.backend().clone();
    let xs = xg.bf16_mut(OP)?;
    let n_i = n as i64;
    let mut b = backend.extra("add_bf16")?;
    b.arg(xs).arg(ys).arg(&n_i);
    // SAFETY: add_bf16(bf16* x, const bf16* y, long long n); both buffers hold n values.
    unsafe { b.launch(grid_for(n)) }
        .map(|_| ())
        .map_err(cuda_err(OP))
}

/// Rotates x `[n, heads, head_dim]` in place at `positions` `[n]` (NeoX pairing).
pub fn apply_rope(x: &mut Tensor, positions: &[u32], table: &RopeTable) -> Result<()> {
    const OP: &str = "apply_rope";
    let [n, heads, head_dim] = *x.shape() else {
        return shape_err(OP, format!("x must be 3-D, got {:?}", x.shape()));
    };
    let rot = table.rotary_dim;
    if positions.len() != n
        || rot > head_dim
        || !rot.is_multiple_of(2)
        || table.inv_freq.len() != rot / 2
    {
        let detail = format!(
            "x {:?}, {} positions, rotary_dim {rot}",
            x.shape(),
            positions.len()
        );
        return shape_err(OP, detail);
    }
    if rot == 0 || x.elements() == 0 {
        return Ok(());
    }
    let xg = x
        .gpu_mut()
        .ok_or_else(|| placement(OP, "x is on the CPU"))?;
    let backend = xg.backend().clone();
    // Same positions and table for every layer (and for q and k): uploaded once per step.
    let pos = cached_i32(&backend, tags::ROPE_POSITIONS, &to_i32s(OP, positions)?)?;
    let inv_freq = cached_f32(&backend, "rope.inv_freq", &table.inv_freq)?;
    let xs = xg.bf16_mut(OP)?;
    basic::rope_neox(
        backend.runtime(),
        &mut xs.as_view_mut(),
        &pos.as_view(),
        &inv_freq.as_view(),
        basic::RopeShape {
            n_tokens: n,
            n_heads: heads,
            head_dim,
            rot_dim: rot,
            token_stride: heads * head_dim,
            attention_scaling: table.attention_scaling,
        },
    )?;
    Ok(())
}

/// Rows `rows` of a bf16 `[*, cols]` device tensor, gathered on the device.
pub fn gather_rows(src: &GpuHandle, rows: &[usize], cols: usize) -> Result<Tensor> {
    const OP: &str = "Tensor::gather_rows";
    if rows.is_empty() || cols == 0 {
        return Ok(Tensor::zeros(vec![rows.len(), cols]));
    }
    let backend = src.backend().clone();
    let ids: Vec<u32> = rows
        .iter()
        .map(|&r| u32::try_from(r).unwrap_or(u32::MAX))
        .collect();
    let ids = upload_i32_pooled(&backend, &to_i32s(OP, &ids)?)?;
    let mut out = alloc::<bf16>(&backend, rows.len() * cols)?;
    let (n_out, cols_i) = (rows.len() as i64, cols as i32);
    let mut b = backend.extra("gather_rows_bf16")?;
    b.arg(src.bf16(OP)?)
        .arg(&*ids)
        .arg(&mut out)
        .arg(&n_out)
        .arg(&cols_i);
    // SAFETY: gather_rows_bf16(const bf16* src, const int* rows, bf16* out, long long n_out,
    // int cols); rows were bounds-checked by the caller, out holds n_out*cols values.
    unsafe { b.launch(grid_for(rows.len() * cols)) }.map_err(cuda_err(OP))?;
    Ok(bf16_tensor(&backend, vec![rows.len(), cols], out))
}
