//! The Qwen3.5 hybrid ops on the GPU: Gated DeltaNet state slots ([`GpuLinearState`]), the
//! batch-wide causal conv + SiLU + gated delta rule ([`gdn_conv_delta_rule`]), the gated RMSNorm
//! and the attention output gate (`sigmoid_mul`). Same math as the CPU ops (`crate::ops`
//! `causal_conv1d_silu`, `gdn_gates`, `gated_delta_rule_*`, `gated_rms_norm`, `sigmoid_mul`),
//! launched through arle-kernels' `linear_attn` / `norm` launchers (the GDN kernel computes the
//! gates itself from the raw `a`, `b` projections).
//!
//! State layout (matches the kernels; [`GpuLinearState`], in `hybrid_state.rs`): conv window
//! `[n_slots, conv_dim, K-1]` bf16 (the pre-conv inputs are bf16 activations, so bf16 storage is
//! exact), recurrent state `[n_slots, Hv, Dk, Dv]` f32. Host snapshots use the CPU layout: conv
//! `[K-1, conv_dim]` (oldest first) and recurrent `[Hv, Dk, Dv]`; the state's write/read transpose.
//!
//! Invariants: a step's `cu_seqlens` / `state_slots` are uploaded once ([`GdnStep`]) and shared
//! by every GDN layer; each layer launches one conv and one GDN kernel per run of same-kind
//! sequences (below) when the sequences are contiguous in query order and nothing is captured;
//! otherwise (captures, gaps) one pair per segment, splitting a sequence's scan at its capture offsets and copying the
//! slot to the host there (the only device-to-host reads of a step).
//!
//! Form (as the CPU layer, MODEL-SPECS §4.4 step 7): multi-token sequences, and every segment of
//! a sequence with captures, run the chunked kernel (`gdn_chunked_prefill`, chunks of 64 counted
//! from the segment start, i.e. from the call start or a capture point, as the CPU
//! `gated_delta_rule_chunked`); one-token sequences (decode rows) run the recurrent kernel. A
//! contiguous step launches one pair per run of same-kind sequences (at most `MAX_RUN_LAUNCHES`,
//! else one chunked launch whose one-token sequences take a recurrence step). A one-token
//! *prompt* (no cache) therefore takes the recurrent step, where the CPU uses a one-row chunk
//! (the two differ only in q's scaling, by 1 ulp). Shapes the chunked kernel does not support
//! (Dk or Dv > 128, too little shared memory) and `ARLE_GDN_RECURRENT=1` use the recurrent kernel.

use std::ops::Range;

use arle_kernels::cudarc::driver::{CudaSlice, CudaView, PushKernelArg};
use arle_kernels::ops::gdn_chunked::{gdn_chunked_prefill, gdn_chunked_supported};
use arle_kernels::ops::linear_attn::{
    causal_conv1d_prefill, gdn_prefill, ConvShape, GdnInputs, GdnShape as KGdnShape,
};
use arle_kernels::ops::norm::{rms_norm_gated, RmsNormShape};
use half::bf16;

use super::backend::grid_for;
pub use super::hybrid_state::GpuLinearState;
use super::ops::gpu_of;
use super::{backend, cuda_err, placement, upload_i32, GpuData, GpuHandle};
use crate::error::shape_err;
use crate::ops::GdnShape;
use crate::{Result, Tensor, TensorError, Weight};

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

/// Which GDN kernel a launch uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GdnForm {
    /// Token-by-token recurrence (`gdn_prefill`): launches of one-token sequences only.
    Recurrent,
    /// Chunked form (`gdn_chunked_prefill`); with `single_recurrent`, its one-token sequences
    /// take one recurrence step (decode rows sharing the launch).
    Chunked { single_recurrent: bool },
}

/// One conv + GDN launch pair: row bounds `cu_seqlens` `[k+1]` and `state_slots` `[k]` on the
/// device, the GDN form, then (optionally) a capture of (sequence, slot) after it.
#[derive(Debug)]
struct StepLaunch {
    cu_seqlens: CudaSlice<i32>,
    state_slots: CudaSlice<i32>,
    form: GdnForm,
    capture: Option<(usize, usize)>,
}

/// Most launch pairs a contiguous step splits into (runs of decode / prefill sequences).
const MAX_RUN_LAUNCHES: usize = 4;

/// Maximal runs of consecutive sequences that are all one-token (recurrent) or all longer
/// (chunked), as index ranges into `seqs` (non-empty).
fn contiguous_runs(seqs: &[GdnSeq]) -> Vec<(Range<usize>, GdnForm)> {
    let form_of = |s: &GdnSeq| {
        if s.rows.len() > 1 {
            GdnForm::Chunked {
                single_recurrent: true,
            }
        } else {
            GdnForm::Recurrent
        }
    };
    let mut runs: Vec<(Range<usize>, GdnForm)> = Vec::new();
    for (i, s) in seqs.iter().enumerate() {
        let form = form_of(s);
        match runs.last_mut() {
            Some((range, f)) if *f == form => range.end = i + 1,
            _ => runs.push((i..i + 1, form)),
        }
    }
    runs
}

/// `ARLE_GDN_RECURRENT=1` forces the recurrent kernel everywhere (A/B checks), read once.
fn force_recurrent() -> bool {
    static FORCE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FORCE.get_or_init(|| std::env::var("ARLE_GDN_RECURRENT").is_ok_and(|v| v == "1"))
}

/// The launch metadata of one forward step, uploaded once and shared by every GDN layer: one
/// launch pair over all sequences when they are contiguous in query order and nothing is
/// captured, else one per segment (each sequence's rows split at its capture offsets).
#[derive(Debug)]
pub struct GdnStep {
    n_rows: usize,
    n_seqs: usize,
    /// Largest slot named (validated against each layer's state).
    max_slot: Option<usize>,
    launches: Vec<StepLaunch>,
}

impl GdnStep {
    /// Plans and uploads a step of `n_rows` rows on GPU `ordinal`.
    pub fn new(ordinal: usize, n_rows: usize, seqs: &[GdnSeq]) -> Result<Self> {
        const OP: &str = "GdnStep";
        for s in seqs {
            let bad_capture = s.captures.iter().any(|&m| m == 0 || m > s.rows.len())
                || s.captures.windows(2).any(|w| w[0] >= w[1]);
            if s.rows.end > n_rows || bad_capture {
                let detail = format!("bad sequence {s:?} for {n_rows} rows");
                return Err(TensorError::Invalid { op: OP, detail });
            }
        }
        let i32_of = |v: usize| {
            i32::try_from(v).map_err(|_| TensorError::Invalid {
                op: OP,
                detail: format!("{v} exceeds i32"),
            })
        };
        let backend = backend(ordinal)?;
        let upload = |cu: &[i32], slots: &[i32], form, capture| -> Result<StepLaunch> {
            Ok(StepLaunch {
                cu_seqlens: upload_i32(&backend, cu)?,
                state_slots: upload_i32(&backend, slots)?,
                form,
                capture,
            })
        };
        let contiguous = seqs
            .iter()
            .enumerate()
            .all(|(i, s)| s.rows.start == if i == 0 { 0 } else { seqs[i - 1].rows.end });
        let any_capture = seqs.iter().any(|s| !s.captures.is_empty());
        let mut launches = Vec::new();
        if contiguous && !any_capture {
            if !seqs.is_empty() && n_rows > 0 {
                // Runs of consecutive one-token (decode) or multi-token sequences: one launch
                // pair per run, so decode rows keep the light recurrent kernel; a batch that
                // alternates more often shares one chunked launch instead.
                let runs = contiguous_runs(seqs);
                let groups: Vec<(Range<usize>, GdnForm)> = if runs.len() <= MAX_RUN_LAUNCHES {
                    runs
                } else {
                    let single_recurrent = true;
                    vec![(0..seqs.len(), GdnForm::Chunked { single_recurrent })]
                };
                for (range, form) in groups {
                    let group = &seqs[range];
                    let mut cu = vec![i32_of(group[0].rows.start)?];
                    for s in group {
                        cu.push(i32_of(s.rows.end)?);
                    }
                    let slots = group
                        .iter()
                        .map(|s| i32_of(s.slot))
                        .collect::<Result<Vec<_>>>()?;
                    launches.push(upload(&cu, &slots, form, None)?);
                }
            }
        } else {
            // The kernels index rows absolutely, so a one-sequence launch over rows
            // [from, end) works on the full batch buffers.
            for (s, seq) in seqs.iter().enumerate() {
                let slot = [i32_of(seq.slot)?];
                // A sequence with captures runs chunked in every segment (as on the CPU).
                let form = if seq.rows.len() > 1 || !seq.captures.is_empty() {
                    GdnForm::Chunked {
                        single_recurrent: seq.captures.is_empty(),
                    }
                } else {
                    GdnForm::Recurrent
                };
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
                        let capture = capture.then_some((s, seq.slot));
                        let cu = [i32_of(from)?, i32_of(end)?];
                        launches.push(upload(&cu, &slot, form, capture)?);
                    }
                    from = end;
                }
            }
        }
        Ok(Self {
            n_rows,
            n_seqs: seqs.len(),
            max_slot: seqs.iter().map(|s| s.slot).max(),
            launches,
        })
    }
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

/// Causal conv + SiLU then the gated delta rule for every sequence of `step`, on each
/// sequence's state slot. qkv `[n, conv_dim]` (pre-conv), a, b `[n, Hv]` (raw projections), all
/// bf16 on the GPU → (o `[n, Hv·Dv]` bf16, rows no sequence covers are zero; per sequence its
/// captures in order).
pub fn gdn_conv_delta_rule(
    qkv: &Tensor,
    a: &Tensor,
    b: &Tensor,
    params: GdnParams<'_>,
    shape: &GdnShape,
    state: &mut GpuLinearState,
    step: &GdnStep,
) -> Result<(Tensor, Vec<SeqCaptures>)> {
    const OP: &str = "gdn_conv_delta_rule";
    let n = step.n_rows;
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
            "{n} rows: qkv {:?}, a {:?}, b {:?}, conv weight {:?}, state conv_dim {} window {}",
            qkv.shape(),
            a.shape(),
            b.shape(),
            params.conv_weight.shape(),
            state.conv_dim,
            state.window
        );
        return shape_err(OP, detail);
    }
    if step.max_slot.is_some_and(|s| s >= state.num_slots) {
        let detail = format!("slot {:?} >= {} slots", step.max_slot, state.num_slots);
        return Err(TensorError::Invalid { op: OP, detail });
    }
    let mut captures: Vec<SeqCaptures> = vec![Vec::new(); step.n_seqs];
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
    // Zeroed: rows no sequence covers stay zero (as on the CPU).
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
    let chunked_ok = !force_recurrent() && gdn_chunked_supported(backend.runtime(), &kshape);
    for launch in &step.launches {
        let slots = launch.state_slots.as_view();
        let cu = launch.cu_seqlens.as_view();
        causal_conv1d_prefill(
            backend.runtime(),
            &qkv_v,
            &w_v,
            &mut state.conv.as_view_mut(),
            &slots,
            &cu,
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
            state_slots: &slots,
        };
        match launch.form {
            GdnForm::Chunked { single_recurrent } if chunked_ok => gdn_chunked_prefill(
                backend.runtime(),
                &inputs,
                &cu,
                &mut state.recurrent.as_view_mut(),
                &mut out.as_view_mut(),
                n,
                kshape,
                single_recurrent,
            )?,
            _ => gdn_prefill(
                backend.runtime(),
                &inputs,
                &cu,
                &mut state.recurrent.as_view_mut(),
                &mut out.as_view_mut(),
                n,
                kshape,
            )?,
        }
        if let Some((seq, slot)) = launch.capture {
            captures[seq].push(state.read_slot(slot)?);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(rows: Range<usize>) -> GdnSeq {
        GdnSeq {
            rows,
            slot: 0,
            captures: Vec::new(),
        }
    }

    #[test]
    fn runs_group_decode_and_prefill_sequences() {
        let chunked = GdnForm::Chunked {
            single_recurrent: true,
        };
        let seqs = [seq(0..1), seq(1..2), seq(2..70), seq(70..75), seq(75..76)];
        let runs = contiguous_runs(&seqs);
        assert_eq!(
            runs,
            vec![
                (0..2, GdnForm::Recurrent),
                (2..4, chunked),
                (4..5, GdnForm::Recurrent)
            ]
        );
        assert_eq!(contiguous_runs(&[seq(0..9)]), vec![(0..1, chunked)]);
    }
}
