//! The GPU path of [`GatedDeltaNet`] (`cuda` feature): projections, batch-wide conv + delta rule
//! on the layer's device state slots, gated RMSNorm and `out_proj`, all on the device. Same
//! contract as the CPU forward (rows, slots, snapshot order); snapshots are copied to the host
//! only at capture offsets.

use arle_tensor::cuda::hybrid::{self, GdnParams, GdnSeq, GdnStep};
use arle_tensor::{ops, Device, Tensor};

use super::{
    capture_offsets, slot_of, GatedDeltaNet, GdnDeviceParams, GdnStepCache, LayerCaptures,
};
use crate::layers::emit;
use crate::{ForwardBatch, LinearLayerSnapshot, LinearState, ModelError, Result, Tracer};

/// Device copies of the kernel parameters when the layer's weights live on a GPU.
pub(super) fn device_params(gdn: &GatedDeltaNet) -> Result<Option<GdnDeviceParams>> {
    let Device::Cuda(ordinal) = gdn.norm.device() else {
        return Ok(None);
    };
    let (conv_dim, k, hv) = (gdn.shape.conv_dim(), gdn.conv_kernel, gdn.shape.num_v_heads);
    Ok(Some(GdnDeviceParams {
        conv1d: Tensor::from_vec(vec![conv_dim, k], gdn.conv1d.clone())?
            .to_device(Device::Cuda(ordinal))?,
        a_log: hybrid::upload_f32(ordinal, vec![hv], &gdn.a_log)?,
        dt_bias: hybrid::upload_f32(ordinal, vec![hv], &gdn.dt_bias)?,
    }))
}

/// x: `[n, H]` bf16 on a GPU → `[n, H]`; see [`GatedDeltaNet::forward`].
pub(super) fn forward(
    gdn: &GatedDeltaNet,
    x: &Tensor,
    batch: &ForwardBatch,
    state: &mut LinearState,
    step: &mut GdnStepCache,
    prefix: &str,
    trace: &mut Option<Tracer<'_>>,
) -> Result<(Tensor, LayerCaptures)> {
    let Device::Cuda(ordinal) = x.device() else {
        return Err(ModelError::Unsupported("gdn_gpu: x is on the CPU".into()));
    };
    let params = gdn.device_params.as_ref().ok_or_else(|| {
        ModelError::Unsupported("GatedDeltaNet: x is on a GPU but the weights are not".into())
    })?;
    let n = x.shape().first().copied().unwrap_or(0);
    let (hv, dv) = (gdn.shape.num_v_heads, gdn.shape.v_head_dim);
    let qkv = gdn.in_proj_qkv.forward(x)?; // [n, conv_dim]
    emit(trace, prefix, "in_proj_qkv.out", &qkv);
    let z = gdn.in_proj_z.forward(x)?; // [n, Hv·Dv]
    let b = gdn.in_proj_b.forward(x)?; // [n, Hv]
    let a = gdn.in_proj_a.forward(x)?; // [n, Hv]
    let step = match &mut step.step {
        Some(step) => step,
        empty => empty.insert(plan(ordinal, n, batch)?),
    };
    let dev_state = state.gpu_on(ordinal)?;
    let kernel_params = GdnParams {
        conv_weight: &params.conv1d,
        a_log: &params.a_log,
        dt_bias: &params.dt_bias,
        conv_kernel: gdn.conv_kernel,
    };
    let (core, caps) =
        hybrid::gdn_conv_delta_rule(&qkv, &a, &b, kernel_params, &gdn.shape, dev_state, step)?;
    let core = core.reshape(vec![n * hv, dv])?; // [n·Hv, Dv]
    emit(trace, prefix, "norm.in", &core);
    let z = z.reshape(vec![n * hv, dv])?;
    let normed = ops::gated_rms_norm(&core, &z, &gdn.norm, gdn.rms_norm_eps)?;
    let normed = normed.reshape(vec![n, hv * dv])?;
    emit(trace, prefix, "out_proj.in", &normed);
    let out = gdn.out_proj.forward(&normed)?;
    emit(trace, prefix, "out_proj.out", &out);
    let captures = caps
        .into_iter()
        .map(|seq| {
            seq.into_iter()
                .map(|(conv, recurrent)| LinearLayerSnapshot { conv, recurrent })
                .collect()
        })
        .collect();
    Ok((out, captures))
}

/// The step's sequences (rows, slot, capture offsets) planned and uploaded on GPU `ordinal`.
fn plan(ordinal: usize, n: usize, batch: &ForwardBatch) -> Result<GdnStep> {
    let seqs = batch
        .attention
        .seqs
        .iter()
        .enumerate()
        .map(|(s, span)| {
            let start = span
                .context_len
                .checked_sub(span.query_len)
                .ok_or_else(|| {
                    ModelError::Unsupported(format!("sequence {s}: context_len < query_len"))
                })?;
            let positions = batch
                .snapshot_positions
                .get(s)
                .map_or(&[][..], Vec::as_slice);
            Ok(GdnSeq {
                rows: span.query_start..span.query_start + span.query_len,
                slot: slot_of(batch, s)?,
                captures: capture_offsets(positions, start, span.query_len)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(GdnStep::new(ordinal, n, &seqs)?)
}
