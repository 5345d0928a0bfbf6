//! The Qwen3.5 hybrid ops on the GPU: Gated DeltaNet state slots ([`GpuLinearState`]), the
//! batch-wide causal conv + SiLU + gated delta rule ([`gdn_conv_delta_rule`]), the gated RMSNorm
//! and the attention output gate (`sigmoid_mul`). Same math as the CPU ops (`crate::ops`
//! `causal_conv1d_silu`, `gdn_gates`, `gated_delta_rule_*`, `gated_rms_norm`, `sigmoid_mul`),
//! launched through arle-kernels' `linear_attn` / `norm` launchers (the GDN kernel computes the
//! gates itself from the raw `a`, `b` projections).
//!
//! State layout (matches the kernels): conv window `[n_slots, conv_dim, K-1]` bf16 (the pre-conv
//! inputs are bf16 activations, so bf16 storage is exact), recurrent state `[n_slots, Hv, Dk, Dv]`
//! f32. Host snapshots use the CPU layout: conv `[K-1, conv_dim]` (oldest first) and recurrent
//! `[Hv, Dk, Dv]`; [`GpuLinearState::write_slot`] / [`GpuLinearState::read_slot`] transpose.
//!
//! Invariants: a step uploads its `cu_seqlens` / `state_slots` once and launches one conv and one
//! GDN kernel over all sequences when the sequences are contiguous in query order and nothing is
//! captured; otherwise (captures, gaps) it launches per segment, splitting a sequence's scan at
//! its capture offsets and copying the slot to the host there (the only device-to-host reads).

use std::ops::Range;
use std::sync::Arc;

use arle_kernels::cudarc::driver::{CudaSlice, CudaView, PushKernelArg};
use arle_kernels::ops::linear_attn::{
    causal_conv1d_prefill, gdn_prefill, ConvShape, GdnInputs, GdnShape as KGdnShape,
};
use arle_kernels::ops::norm::{rms_norm_gated, RmsNormShape};
use half::bf16;

use super::backend::grid_for;
use super::ops::gpu_of;
use super::{backend, cuda_err, placement, upload_i32, CudaBackend, GpuData, GpuHandle};
use crate::error::shape_err;
use crate::ops::GdnShape;
use crate::{Device, Result, Tensor, TensorError, Weight};

/// One linear-attention layer's state slots on a GPU.
#[derive(Debug)]
pub struct GpuLinearState {
    backend: Arc<CudaBackend>,
    num_slots: usize,
    conv_dim: usize,
    /// `K - 1` (window length).
    window: usize,
    /// `Hv * Dk * Dv`.
    recurrent_floats: usize,
    /// `[n_slots, conv_dim, K-1]`
    conv: CudaSlice<bf16>,
    /// `[n_slots, Hv, Dk, Dv]`
    recurrent: CudaSlice<f32>,
}

impl GpuLinearState {
    /// Uploads `num_slots` slots from host storage in the CPU layout: `conv`
    /// `[n_slots, K-1, conv_dim]`, `recurrent` `[n_slots, recurrent_floats]`.
    pub fn upload(
        ordinal: usize,
        num_slots: usize,
        (conv_dim, conv_kernel): (usize, usize),
        recurrent_floats: usize,
        conv: &[f32],
        recurrent: &[f32],
    ) -> Result<Self> {
        let window = conv_kernel.saturating_sub(1);
        if conv.len() != num_slots * window * conv_dim
            || recurrent.len() != num_slots * recurrent_floats
        {
            let detail = format!(
                "{num_slots} slots: conv {} values (conv_dim {conv_dim}, K {conv_kernel}), recurrent {}",
                conv.len(),
                recurrent.len()
            );
            return shape_err("GpuLinearState::upload", detail);
        }
        let backend = backend(ordinal)?;
        let stream = backend.stream();
        let mut conv_t = vec![bf16::ZERO; conv.len().max(1)];
        for s in 0..num_slots {
            transpose_window(
                &conv[s * window * conv_dim..][..window * conv_dim],
                &mut conv_t[s * window * conv_dim..][..window * conv_dim],
                window,
                conv_dim,
            );
        }
        let conv = stream
            .clone_htod(&conv_t)
            .map_err(cuda_err("linear state upload"))?;
        let recurrent = if recurrent.is_empty() {
            stream.alloc_zeros::<f32>(1)
        } else {
            stream.clone_htod(recurrent)
        }
        .map_err(cuda_err("linear state upload"))?;
        Ok(Self {
            backend,
            num_slots,
            conv_dim,
            window,
            recurrent_floats,
            conv,
            recurrent,
        })
    }

    pub fn device(&self) -> Device {
        Device::Cuda(self.backend.ordinal())
    }

    fn ranges(&self, slot: usize) -> Result<(Range<usize>, Range<usize>)> {
        if slot >= self.num_slots {
            return Err(TensorError::Invalid {
                op: "state slot",
                detail: format!("slot {slot} >= {} slots", self.num_slots),
            });
        }
        let (c, r) = (self.window * self.conv_dim, self.recurrent_floats);
        Ok((slot * c..(slot + 1) * c, slot * r..(slot + 1) * r))
    }

    /// Zeroes slot `slot` (a sequence starting at position 0).
    pub fn reset_slot(&mut self, slot: usize) -> Result<()> {
        let (c, r) = self.ranges(slot)?;
        let stream = self.backend.stream().clone();
        if !c.is_empty() {
            stream
                .memset_zeros(&mut self.conv.slice_mut(c))
                .map_err(cuda_err("reset_state"))?;
        }
        if !r.is_empty() {
            stream
                .memset_zeros(&mut self.recurrent.slice_mut(r))
                .map_err(cuda_err("reset_state"))?;
        }
        Ok(())
    }

    /// Writes host values (CPU layout: conv `[K-1, conv_dim]`, recurrent `[Hv, Dk, Dv]`) into
    /// slot `slot`.
    pub fn write_slot(&mut self, slot: usize, conv: &[f32], recurrent: &[f32]) -> Result<()> {
        let (c, r) = self.ranges(slot)?;
        if conv.len() != c.len() || recurrent.len() != r.len() {
            let detail = format!(
                "conv {} / {}, recurrent {} / {}",
                conv.len(),
                c.len(),
                recurrent.len(),
                r.len()
            );
            return shape_err("restore_state", detail);
        }
        let stream = self.backend.stream().clone();
        if !c.is_empty() {
            let mut host = vec![bf16::ZERO; c.len()];
            transpose_window(conv, &mut host, self.window, self.conv_dim);
            stream
                .memcpy_htod(&host, &mut self.conv.slice_mut(c))
                .map_err(cuda_err("restore_state"))?;
        }
        if !r.is_empty() {
            stream
                .memcpy_htod(recurrent, &mut self.recurrent.slice_mut(r))
                .map_err(cuda_err("restore_state"))?;
        }
        Ok(())
    }

    /// Slot `slot` on the host in the CPU layout: (conv `[K-1, conv_dim]`, recurrent
    /// `[Hv, Dk, Dv]`). Waits for the stream.
    pub fn read_slot(&self, slot: usize) -> Result<(Vec<f32>, Vec<f32>)> {
        let (c, r) = self.ranges(slot)?;
        let stream = self.backend.stream();
        let mut conv = vec![0.0f32; c.len()];
        if !c.is_empty() {
            let dev = stream
                .clone_dtoh(&self.conv.slice(c))
                .map_err(cuda_err("snapshot_state"))?;
            // dev is [conv_dim, K-1]; conv is [K-1, conv_dim].
            for ch in 0..self.conv_dim {
                for j in 0..self.window {
                    conv[j * self.conv_dim + ch] = f32::from(dev[ch * self.window + j]);
                }
            }
        }
        let recurrent = if r.is_empty() {
            Vec::new()
        } else {
            stream
                .clone_dtoh(&self.recurrent.slice(r))
                .map_err(cuda_err("snapshot_state"))?
        };
        self.backend.synchronize()?;
        Ok((conv, recurrent))
    }
}

/// `[K-1, conv_dim]` f32 (CPU layout) → `[conv_dim, K-1]` bf16 (kernel layout).
fn transpose_window(src: &[f32], dst: &mut [bf16], window: usize, conv_dim: usize) {
    for j in 0..window {
        for ch in 0..conv_dim {
            dst[ch * window + j] = bf16::from_f32(src[j * conv_dim + ch]);
        }
    }
}

/// An f32 tensor on GPU `ordinal` (small per-layer parameters the kernels read in f32, e.g.
/// `A_log`, `dt_bias`).
pub fn upload_f32(ordinal: usize, shape: Vec<usize>, values: &[f32]) -> Result<Tensor> {
    if shape.iter().product::<usize>() != values.len() || values.is_empty() {
        return shape_err(
            "upload_f32",
            format!("{shape:?} for {} values", values.len()),
        );
    }
    let backend = backend(ordinal)?;
    let buf = backend
        .stream()
        .clone_htod(values)
        .map_err(cuda_err("host-to-device copy"))?;
    Ok(Tensor::from_gpu(
        shape,
        GpuHandle::new(backend, GpuData::F32(buf)),
    ))
}

/// One sequence of a GDN step: its rows of the batch, its state slot, and the token counts into
/// the call after which its state is captured (increasing, in `1..=len`).
#[derive(Clone, Debug)]
pub struct GdnSeq {
    pub rows: Range<usize>,
    pub slot: usize,
    pub captures: Vec<usize>,
}

/// The GDN layer's per-layer device parameters.
#[derive(Clone, Copy, Debug)]
pub struct GdnParams<'a> {
    /// `[conv_dim, K]` bf16.
    pub conv_weight: &'a Tensor,
    /// `[Hv]` f32.
    pub a_log: &'a Tensor,
    /// `[Hv]` f32.
    pub dt_bias: &'a Tensor,
    pub conv_kernel: usize,
}

/// Host snapshots of one sequence: (conv `[K-1, conv_dim]`, recurrent `[Hv, Dk, Dv]`) per capture.
pub type SeqCaptures = Vec<(Vec<f32>, Vec<f32>)>;

fn f32_view<'a>(op: &'static str, t: &'a Tensor) -> Result<CudaView<'a, f32>> {
    match gpu_of(op, t)?.data() {
        GpuData::F32(s) => Ok(s.as_view()),
        GpuData::Bf16(_) => Err(placement(op, "needs an f32 tensor, got bf16")),
    }
}

/// Causal conv + SiLU then the gated delta rule for every sequence of the batch, on each
/// sequence's state slot. qkv `[n, conv_dim]` (pre-conv), a, b `[n, Hv]` (raw projections), all
/// bf16 on the GPU → (o `[n, Hv·Dv]` bf16, rows no sequence covers are zero; per sequence its
/// captures).
pub fn gdn_conv_delta_rule(
    qkv: &Tensor,
    a: &Tensor,
    b: &Tensor,
    params: GdnParams<'_>,
    shape: &GdnShape,
    state: &mut GpuLinearState,
    seqs: &[GdnSeq],
) -> Result<(Tensor, Vec<SeqCaptures>)> {
    const OP: &str = "gdn_conv_delta_rule";
    let n = qkv.shape().first().copied().unwrap_or(0);
    let (conv_dim, hv, dv) = (shape.conv_dim(), shape.num_v_heads, shape.v_head_dim);
    let k = params.conv_kernel;
    if qkv.shape() != [n, conv_dim]
        || a.shape() != [n, hv]
        || b.shape() != [n, hv]
        || params.conv_weight.shape() != [conv_dim, k]
        || state.conv_dim != conv_dim
        || state.window + 1 != k
        || state.recurrent_floats != hv * shape.k_head_dim * dv
    {
        let detail = format!(
            "qkv {:?}, a {:?}, b {:?}, conv weight {:?}, state conv_dim {} window {}",
            qkv.shape(),
            a.shape(),
            b.shape(),
            params.conv_weight.shape(),
            state.conv_dim,
            state.window
        );
        return shape_err(OP, detail);
    }
    for s in seqs {
        let bad_capture = s.captures.iter().any(|&m| m == 0 || m > s.rows.len());
        if s.rows.end > n || s.slot >= state.num_slots || bad_capture {
            let detail = format!("bad sequence {s:?} for {n} rows, {} slots", state.num_slots);
            return Err(TensorError::Invalid { op: OP, detail });
        }
    }
    let mut captures: Vec<SeqCaptures> = vec![Vec::new(); seqs.len()];
    if n == 0 || hv * dv == 0 {
        return Ok((Tensor::zeros(vec![n, hv * dv]), captures));
    }
    let backend = gpu_of(OP, qkv)?.backend().clone();
    let stream = backend.stream().clone();
    let qkv_v = gpu_of(OP, qkv)?.bf16(OP)?.as_view();
    let a_v = gpu_of(OP, a)?.bf16(OP)?.as_view();
    let b_v = gpu_of(OP, b)?.bf16(OP)?.as_view();
    let w_v = gpu_of(OP, params.conv_weight)?.bf16(OP)?.as_view();
    let a_log = f32_view(OP, params.a_log)?;
    let dt_bias = f32_view(OP, params.dt_bias)?;
    let mut conv_out = stream
        .alloc_zeros::<bf16>(n * conv_dim)
        .map_err(cuda_err(OP))?;
    let mut out = stream
        .alloc_zeros::<bf16>(n * hv * dv)
        .map_err(cuda_err(OP))?;
    let conv_shape = ConvShape {
        conv_dim,
        kernel_size: k,
        x_stride: conv_dim,
        n_slots: state.num_slots,
    };
    let kshape = KGdnShape {
        n_k_heads: shape.num_k_heads,
        n_v_heads: hv,
        k_head_dim: shape.k_head_dim,
        v_head_dim: dv,
        n_slots: state.num_slots,
    };
    // One launch pair over `cu` (seqs' row bounds) and `slots`, all rows of the batch addressable.
    let mut launch = |cu: &[i32], slots: &[i32], state: &mut GpuLinearState| -> Result<()> {
        let cu_dev = upload_i32(&backend, cu)?;
        let slots_dev = upload_i32(&backend, slots)?;
        causal_conv1d_prefill(
            backend.runtime(),
            &qkv_v,
            &w_v,
            &mut state.conv.as_view_mut(),
            &slots_dev.as_view(),
            &cu_dev.as_view(),
            &mut conv_out.as_view_mut(),
            n,
            conv_shape,
        )?;
        let conv_view = conv_out.as_view();
        let inputs = GdnInputs {
            qkv: &conv_view,
            a: &a_v,
            b: &b_v,
            a_log: &a_log,
            dt_bias: &dt_bias,
            state_slots: &slots_dev.as_view(),
        };
        gdn_prefill(
            backend.runtime(),
            &inputs,
            &cu_dev.as_view(),
            &mut state.recurrent.as_view_mut(),
            &mut out.as_view_mut(),
            n,
            kshape,
        )?;
        Ok(())
    };
    let i32_of = |v: usize| {
        i32::try_from(v).map_err(|_| TensorError::Invalid {
            op: OP,
            detail: format!("{v} exceeds i32"),
        })
    };
    let contiguous = seqs
        .iter()
        .enumerate()
        .all(|(i, s)| s.rows.start == if i == 0 { 0 } else { seqs[i - 1].rows.end });
    let any_capture = seqs.iter().any(|s| !s.captures.is_empty());
    if contiguous && !any_capture {
        if !seqs.is_empty() {
            let mut cu = vec![0i32];
            for s in seqs {
                cu.push(i32_of(s.rows.end)?);
            }
            let slots = seqs
                .iter()
                .map(|s| i32_of(s.slot))
                .collect::<Result<Vec<_>>>()?;
            launch(&cu, &slots, state)?;
        }
    } else {
        // Per segment: the scan splits at each capture offset (the kernels index rows
        // absolutely, so a one-sequence launch over rows [start, end) works on the full buffers).
        for (s, seq) in seqs.iter().enumerate() {
            let slot = [i32_of(seq.slot)?];
            let mut from = seq.rows.start;
            let mut bounds: Vec<(usize, bool)> = seq
                .captures
                .iter()
                .map(|&m| (seq.rows.start + m, true))
                .collect();
            if bounds.last().is_none_or(|&(e, _)| e < seq.rows.end) {
                bounds.push((seq.rows.end, false));
            }
            for (end, capture) in bounds {
                if end > from {
                    launch(&[i32_of(from)?, i32_of(end)?], &slot, state)?;
                }
                if capture {
                    captures[s].push(state.read_slot(seq.slot)?);
                }
                from = end;
            }
        }
    }
    let handle = GpuHandle::new(backend.clone(), GpuData::Bf16(out));
    Ok((Tensor::from_gpu(vec![n, hv * dv], handle), captures))
}

/// See the CPU `gated_rms_norm`: x, z `[.., dim]` bf16 on the GPU, w `[dim]` → x's shape.
pub fn gated_rms_norm(x: &Tensor, z: &Tensor, w: &Weight, eps: f32) -> Result<Tensor> {
    const OP: &str = "gated_rms_norm";
    let dim = x.shape().last().copied().unwrap_or(0);
    if x.shape() != z.shape() || w.elements() != dim {
        let detail = format!(
            "x {:?}, z {:?}, weight {:?}",
            x.shape(),
            z.shape(),
            w.shape()
        );
        return shape_err(OP, detail);
    }
    if x.elements() == 0 || dim == 0 {
        return Ok(Tensor::zeros(x.shape().to_vec()));
    }
    let xg = gpu_of(OP, x)?;
    let wg = w
        .gpu()
        .ok_or_else(|| placement(OP, "weight was not uploaded to the GPU (Weight::to_device)"))?;
    let backend = xg.backend().clone();
    let rows = x.elements() / dim;
    let mut out = backend
        .stream()
        .alloc_zeros::<bf16>(x.elements())
        .map_err(cuda_err(OP))?;
    rms_norm_gated(
        backend.runtime(),
        &xg.bf16(OP)?.as_view(),
        &gpu_of(OP, z)?.bf16(OP)?.as_view(),
        &wg.data.as_view(),
        &mut out.as_view_mut(),
        RmsNormShape::contiguous(rows, dim, eps),
    )?;
    let handle = GpuHandle::new(backend, GpuData::Bf16(out));
    Ok(Tensor::from_gpu(x.shape().to_vec(), handle))
}

/// See the CPU `sigmoid_mul`: `x * sigmoid(gate)`, both bf16 on the GPU, same shape.
pub fn sigmoid_mul(x: &Tensor, gate: &Tensor) -> Result<Tensor> {
    const OP: &str = "sigmoid_mul";
    if x.shape() != gate.shape() {
        return shape_err(OP, format!("{:?} vs {:?}", x.shape(), gate.shape()));
    }
    let n = x.elements();
    if n == 0 {
        return Ok(Tensor::zeros(x.shape().to_vec()));
    }
    let xg = gpu_of(OP, x)?;
    let backend = xg.backend().clone();
    let xs = xg.bf16(OP)?;
    let gs = gpu_of(OP, gate)?.bf16(OP)?;
    let mut out = backend
        .stream()
        .alloc_zeros::<bf16>(n)
        .map_err(cuda_err(OP))?;
    let n_i = n as i64;
    let mut l = backend.extra("sigmoid_mul_bf16")?;
    l.arg(xs).arg(gs).arg(&mut out).arg(&n_i);
    // SAFETY: sigmoid_mul_bf16(const bf16* x, const bf16* g, bf16* out, long long n); all three
    // buffers hold n values.
    unsafe { l.launch(grid_for(n)) }.map_err(cuda_err(OP))?;
    let handle = GpuHandle::new(backend.clone(), GpuData::Bf16(out));
    Ok(Tensor::from_gpu(x.shape().to_vec(), handle))
}
