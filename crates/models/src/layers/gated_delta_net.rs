//! Gated DeltaNet token mixer (`linear_attn`, MODEL-SPECS §4.4) over a batch of sequences, each
//! with its own state slot (MODEL-SPECS §7).
//!
//! Batch-wide: `in_proj_qkv`, `in_proj_z`, `in_proj_a`, `in_proj_b`, the gates, the gated
//! RMSNorm and `out_proj`. Per sequence (its rows `query_start..+query_len`, slot
//! `state_slots[s]`): causal conv + SiLU with the slot's conv window as left context, then the
//! delta rule with the slot's recurrent state — the recurrent form for one token on an existing
//! state (start > 0), the chunked form otherwise. Invariants: the slot is read as is (the runner
//! resets or restores it beforehand) and holds the state after the sequence's last token on
//! return; requested snapshot positions become chunk boundaries, so captures cost a copy.
//!
//! On a GPU (x on a device; `cuda` feature) the whole mixer stays on the device: the conv + delta
//! rule is one batch-wide launch pair over all sequences
//! (`arle_tensor::cuda::hybrid::gdn_conv_delta_rule`, gates fused into the kernel) on the
//! layer's device state slots, split at capture offsets when snapshots are requested.

use arle_tensor::ops::{self, GdnInput, GdnShape};
use arle_tensor::{Tensor, TensorError, Weight};

use super::{emit, Linear};
use crate::config::{LinearAttentionConfig, ModelConfig};
use crate::weights::WeightSource;
use crate::{ForwardBatch, LinearLayerSnapshot, LinearState, ModelError, Result, Tracer};

#[cfg(feature = "cuda")]
mod gdn_gpu;

/// Without the `cuda` feature no tensor lives on a GPU: no device parameters, no GPU forward.
#[cfg(not(feature = "cuda"))]
mod gdn_gpu {
    use super::{GatedDeltaNet, GdnDeviceParams, GdnStepCache, LayerCaptures};
    use crate::{ForwardBatch, LinearState, ModelError, Result, Tracer};
    use arle_tensor::Tensor;

    pub(super) fn device_params(_: &GatedDeltaNet) -> Result<Option<GdnDeviceParams>> {
        Ok(None)
    }

    pub(super) fn forward(
        _: &GatedDeltaNet,
        _: &Tensor,
        _: &ForwardBatch,
        _: &mut LinearState,
        _: &mut GdnStepCache,
        _: &str,
        _: &mut Option<Tracer<'_>>,
    ) -> Result<(Tensor, LayerCaptures)> {
        Err(ModelError::Unsupported(
            "GatedDeltaNet on a GPU needs the `cuda` feature".into(),
        ))
    }
}

#[derive(Clone, Debug)]
pub struct GatedDeltaNet {
    /// `[conv_dim, H]`
    pub in_proj_qkv: Linear,
    /// `[Hv·Dv, H]`
    pub in_proj_z: Linear,
    /// `[Hv, H]`
    pub in_proj_b: Linear,
    /// `[Hv, H]`
    pub in_proj_a: Linear,
    /// `[conv_dim, K]` (checkpoint `[conv_dim, 1, K]`), f32.
    pub conv1d: Vec<f32>,
    /// `[Hv]`, f32.
    pub dt_bias: Vec<f32>,
    /// `[Hv]`, f32.
    pub a_log: Vec<f32>,
    /// `[Dv]` gated-norm weight (plain w).
    pub norm: Weight,
    /// `[H, Hv·Dv]`
    pub out_proj: Linear,
    pub shape: GdnShape,
    pub conv_kernel: usize,
    pub rms_norm_eps: f32,
    /// Device copies of `conv1d`, `a_log`, `dt_bias` when the weights were placed on a GPU.
    pub device_params: Option<GdnDeviceParams>,
}

/// The GDN parameters the GPU kernels read: conv weight `[conv_dim, K]` bf16, `A_log` and
/// `dt_bias` `[Hv]` f32.
#[derive(Clone, Debug)]
pub struct GdnDeviceParams {
    pub conv1d: Tensor,
    pub a_log: Tensor,
    pub dt_bias: Tensor,
}

/// Per sequence of the batch, the snapshots of this layer in `snapshot_positions` order.
pub type LayerCaptures = Vec<Vec<LinearLayerSnapshot>>;

/// Per-forward GPU launch metadata shared by every GDN layer of one step (built by the first GPU
/// layer, uploaded once); unused on the CPU. Make a fresh one per forward.
#[derive(Debug, Default)]
pub struct GdnStepCache {
    #[cfg(feature = "cuda")]
    step: Option<arle_tensor::cuda::hybrid::GdnStep>,
}

impl GatedDeltaNet {
    /// Takes every `{prefix}.*` tensor of a `linear_attn` block.
    pub fn load(
        ws: &mut WeightSource,
        prefix: &str,
        cfg: &ModelConfig,
        lin: &LinearAttentionConfig,
    ) -> Result<Self> {
        let shape = GdnShape {
            num_k_heads: lin.num_key_heads,
            num_v_heads: lin.num_value_heads,
            k_head_dim: lin.key_head_dim,
            v_head_dim: lin.value_head_dim,
        };
        let (h, hv, k) = (cfg.hidden_size, shape.num_v_heads, lin.conv_kernel);
        let (conv_dim, value_dim) = (shape.conv_dim(), shape.value_dim());
        let name = |n: &str| format!("{prefix}.{n}");
        let proj = |ws: &mut WeightSource, n: &str, inp: usize, out: usize| {
            Linear::load(ws, &name(n), inp, out, false)
        };
        let mut gdn = Self {
            in_proj_qkv: proj(ws, "in_proj_qkv", h, conv_dim)?,
            in_proj_z: proj(ws, "in_proj_z", h, value_dim)?,
            in_proj_b: proj(ws, "in_proj_b", h, hv)?,
            in_proj_a: proj(ws, "in_proj_a", h, hv)?,
            conv1d: ws
                .take(&name("conv1d.weight"), &[conv_dim, 1, k])?
                .to_f32_vec()?,
            dt_bias: ws.take(&name("dt_bias"), &[hv])?.to_f32_vec()?,
            a_log: ws.take(&name("A_log"), &[hv])?.to_f32_vec()?,
            norm: ws.take(&name("norm.weight"), &[shape.v_head_dim])?,
            out_proj: proj(ws, "out_proj", value_dim, h)?,
            shape,
            conv_kernel: k,
            rms_norm_eps: cfg.rms_norm_eps,
            device_params: None,
        };
        gdn.device_params = gdn_gpu::device_params(&gdn)?;
        Ok(gdn)
    }

    /// x: `[n, H]` → `[n, H]`; updates each sequence's slot in `state` and returns the
    /// snapshots requested by `batch.snapshot_positions`. `step`: one per forward, shared by the
    /// layers. Traces `{prefix}.in_proj_qkv.out`, `norm.in` (`[n·Hv, Dv]`), `out_proj.in`,
    /// `out_proj.out`.
    pub fn forward(
        &self,
        x: &Tensor,
        batch: &ForwardBatch,
        state: &mut LinearState,
        step: &mut GdnStepCache,
        prefix: &str,
        trace: &mut Option<Tracer<'_>>,
    ) -> Result<(Tensor, LayerCaptures)> {
        if x.device() != arle_tensor::Device::Cpu {
            return gdn_gpu::forward(self, x, batch, state, step, prefix, trace);
        }
        let n = x.shape().first().copied().unwrap_or(0);
        let (hv, dv) = (self.shape.num_v_heads, self.shape.v_head_dim);
        let qkv = self.in_proj_qkv.forward(x)?; // [n, conv_dim]
        emit(trace, prefix, "in_proj_qkv.out", &qkv);
        let z = self.in_proj_z.forward(x)?; // [n, Hv·Dv]
        let b = self.in_proj_b.forward(x)?; // [n, Hv]
        let a = self.in_proj_a.forward(x)?; // [n, Hv]
        let (g, beta) = ops::gdn_gates(&a, &b, &self.a_log, &self.dt_bias)?; // [n, Hv] each
        let mut core = vec![0.0f32; n * hv * dv]; // [n, Hv·Dv]
        let mut captures = Vec::with_capacity(batch.attention.seqs.len());
        for (s, span) in batch.attention.seqs.iter().enumerate() {
            let rows = span.query_start..span.query_start + span.query_len;
            let seq = SeqRows {
                qkv: qkv.gather_rows(&rows.clone().collect::<Vec<_>>())?,
                g: &g[rows.start * hv..rows.end * hv],
                beta: &beta[rows.start * hv..rows.end * hv],
                start: span.context_len - span.query_len,
                slot: slot_of(batch, s)?,
                snapshot_positions: batch
                    .snapshot_positions
                    .get(s)
                    .map_or(&[][..], Vec::as_slice),
            };
            let (o, snaps) = self.sequence(&seq, state)?;
            core[rows.start * hv * dv..rows.end * hv * dv].copy_from_slice(o.data());
            captures.push(snaps);
        }
        let core = Tensor::from_vec(vec![n * hv, dv], core)?;
        emit(trace, prefix, "norm.in", &core);
        let z = z.reshape(vec![n * hv, dv])?;
        let normed = ops::gated_rms_norm(&core, &z, &self.norm, self.rms_norm_eps)?;
        let normed = normed.reshape(vec![n, hv * dv])?;
        emit(trace, prefix, "out_proj.in", &normed);
        let out = self.out_proj.forward(&normed)?;
        emit(trace, prefix, "out_proj.out", &out);
        Ok((out, captures))
    }

    /// Conv + delta rule of one sequence on its slot; o `[len, Hv·Dv]` and its snapshots.
    fn sequence(
        &self,
        seq: &SeqRows<'_>,
        state: &mut LinearState,
    ) -> Result<(Tensor, Vec<LinearLayerSnapshot>)> {
        let len = seq.qkv.dim(0);
        let captures = capture_offsets(seq.snapshot_positions, seq.start, len)?;
        let (conv_range, rec_range) = state.slot_ranges(seq.slot)?;
        let conv_dim = self.shape.conv_dim();
        let windows = captures
            .iter()
            .map(|&m| {
                ops::conv_window_after(&state.conv[conv_range.clone()], seq.qkv.data(), conv_dim, m)
            })
            .collect::<arle_tensor::Result<Vec<_>>>()?;
        let window = &mut state.conv[conv_range];
        let conv = ops::causal_conv1d_silu(&seq.qkv, window, &self.conv1d, self.conv_kernel)?;
        let input = GdnInput {
            qkv: &conv,
            g: seq.g,
            beta: seq.beta,
        };
        let recurrent = &mut state.recurrent[rec_range];
        if len == 1 && seq.start > 0 && captures.is_empty() {
            let o = ops::gated_delta_rule_recurrent(&input, &self.shape, recurrent)?;
            return Ok((o, Vec::new()));
        }
        let (o, states) = ops::gated_delta_rule_chunked(&input, &self.shape, recurrent, &captures)?;
        let snaps = windows
            .into_iter()
            .zip(states)
            .map(|(conv, recurrent)| LinearLayerSnapshot { conv, recurrent })
            .collect();
        Ok((o, snaps))
    }
}

/// One sequence's slice of the batch-wide tensors.
struct SeqRows<'a> {
    /// `[len, conv_dim]` pre-conv rows.
    qkv: Tensor,
    /// `[len, Hv]`
    g: &'a [f32],
    /// `[len, Hv]`
    beta: &'a [f32],
    /// Tokens already in the state.
    start: usize,
    slot: usize,
    snapshot_positions: &'a [usize],
}

/// The state slot of batch sequence `s`.
fn slot_of(batch: &ForwardBatch, s: usize) -> Result<usize> {
    batch
        .state_slots
        .get(s)
        .map(|&slot| slot as usize)
        .ok_or_else(|| {
            ModelError::Unsupported(format!(
                "hybrid model: batch has no state slot for sequence {s} ({} slots given)",
                batch.state_slots.len()
            ))
        })
}

/// Absolute snapshot positions in `(start, start+len]`, increasing → token counts into the call.
fn capture_offsets(positions: &[usize], start: usize, len: usize) -> Result<Vec<usize>> {
    let mut prev = start;
    positions
        .iter()
        .map(|&p| {
            if p <= prev || p > start + len {
                return Err(ModelError::Tensor(TensorError::Invalid {
                    op: "snapshot_positions",
                    detail: format!(
                        "{positions:?} must increase within ({start}, {}]",
                        start + len
                    ),
                }));
            }
            prev = p;
            Ok(p - start)
        })
        .collect()
}
