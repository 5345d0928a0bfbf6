//! Qwen3.5-MoE sparse MLP (MODEL-SPECS §5.2): softmax router over all experts (f32), top-k,
//! renormalised weights, SwiGLU experts summed in f32, plus an always-on shared expert scaled by
//! `sigmoid(shared_expert_gate(h))`.
//!
//! Both checkpoint layouts load into the same per-expert weights (§5.3): fused
//! `experts.gate_up_proj` `[E, 2·Ie, H]` (rows `0..Ie` gate, `Ie..2·Ie` up) and
//! `experts.down_proj` `[E, H, Ie]` (views into the same bytes), or per-expert
//! `experts.{e}.{gate,up,down}_proj.weight`. Invariant: the forward never depends on the layout.
//! Ties in the top-k pick the lower expert id.
//!
//! On a GPU (weights placed by the loader) the experts also exist stacked, one device buffer
//! each for `gate_up` `[E, 2·Ie, H]` and `down` `[E, H, Ie]` ([`StackedExperts`]: the fused
//! checkpoint tensors themselves, or the per-expert ones concatenated at load), and the forward
//! runs `ops::sparse_moe`: routing, grouped expert GEMMs and the combine stay on the device
//! (no routing decision is read back). The per-expert weights then keep only their host bytes.

use arle_tensor::{ops, Bytes, DType, Device, Tensor, TensorError, Weight};

use super::{emit, Linear, Mlp};
use crate::config::MoeConfig;
use crate::weights::WeightSource;
use crate::{ModelError, Result, Tracer};

/// One routed expert: SwiGLU with intermediate `Ie`.
#[derive(Clone, Debug)]
pub struct Expert {
    /// `[Ie, H]`
    pub gate_proj: Weight,
    /// `[Ie, H]`
    pub up_proj: Weight,
    /// `[H, Ie]`
    pub down_proj: Weight,
}

/// Every expert in two stacked weights (device path).
#[derive(Clone, Debug)]
pub struct StackedExperts {
    /// `[E, 2·Ie, H]`: per expert, gate rows then up rows.
    pub gate_up: Weight,
    /// `[E, H, Ie]`
    pub down: Weight,
}

#[derive(Clone, Debug)]
pub struct SparseMoe {
    /// Router `[E, H]`.
    pub gate: Linear,
    pub experts: Vec<Expert>,
    pub shared_expert: Mlp,
    /// `[1, H]`
    pub shared_expert_gate: Linear,
    pub num_experts_per_tok: usize,
    /// The experts stacked on the device; `None` on the CPU.
    pub stacked: Option<StackedExperts>,
}

impl SparseMoe {
    /// Takes every `{prefix}.*` tensor (`prefix` = `model.layers.{i}.mlp`), either expert layout.
    pub fn load(
        ws: &mut WeightSource,
        prefix: &str,
        hidden_size: usize,
        moe: &MoeConfig,
    ) -> Result<Self> {
        let h = hidden_size;
        let name = |n: &str| format!("{prefix}.{n}");
        let (experts, stacked) = if ws.contains(&name("experts.gate_up_proj")) {
            load_fused(ws, prefix, h, moe)?
        } else {
            let experts = (0..moe.num_experts)
                .map(|e| load_expert(ws, &format!("{prefix}.experts.{e}"), h, moe))
                .collect::<Result<Vec<_>>>()?;
            stack_on_device(experts, h, moe)?
        };
        Ok(Self {
            gate: Linear::load(ws, &name("gate"), h, moe.num_experts, false)?,
            experts,
            shared_expert: Mlp::load(
                ws,
                &name("shared_expert"),
                h,
                moe.shared_expert_intermediate_size,
                false,
            )?,
            shared_expert_gate: Linear::load(ws, &name("shared_expert_gate"), h, 1, false)?,
            num_experts_per_tok: moe.num_experts_per_tok,
            stacked,
        })
    }

    /// x: `[n, H]` → `[n, H]`. Traces `{prefix}.gate.out` (router logits `[n, E]`),
    /// `experts.out` (routed sum) and `shared_expert.out` (before its gate).
    pub fn forward(
        &self,
        x: &Tensor,
        prefix: &str,
        trace: &mut Option<Tracer<'_>>,
    ) -> Result<Tensor> {
        if x.device() != Device::Cpu {
            return self.forward_device(x, prefix, trace);
        }
        let (n, h) = (x.dim(0), x.dim(1));
        let logits = self.gate.forward(x)?; // [n, E]
        emit(trace, prefix, "gate.out", &logits);
        let routes = route(&logits, self.num_experts_per_tok);
        let mut routed = vec![0.0f32; n * h]; // [n, H], f32 sum over the top-k
        for (e, expert) in self.experts.iter().enumerate() {
            let (rows, weights): (Vec<usize>, Vec<f32>) = routes
                .iter()
                .enumerate()
                .flat_map(|(t, r)| {
                    r.iter()
                        .filter(|(id, _)| *id == e)
                        .map(move |(_, w)| (t, *w))
                })
                .unzip();
            if rows.is_empty() {
                continue;
            }
            let xe = x.gather_rows(&rows)?; // [m, H]
            let gate = ops::linear(&xe, &expert.gate_proj, None)?;
            let up = ops::linear(&xe, &expert.up_proj, None)?;
            let y = ops::linear(&ops::silu_mul(&gate, &up)?, &expert.down_proj, None)?; // [m, H]
            for ((&t, &w), row) in rows.iter().zip(&weights).zip(y.data().chunks_exact(h)) {
                let dst = &mut routed[t * h..(t + 1) * h];
                dst.iter_mut().zip(row).for_each(|(d, &v)| *d += v * w);
            }
        }
        let routed = Tensor::from_vec(vec![n, h], routed)?;
        emit(trace, prefix, "experts.out", &routed);
        let shared = self.shared_expert.forward(x)?; // [n, H]
        emit(trace, prefix, "shared_expert.out", &shared);
        let shared_gate = self.shared_expert_gate.forward(x)?; // [n, 1]
        let mut out = routed;
        for ((o, s), &g) in out
            .data_mut()
            .chunks_exact_mut(h)
            .zip(shared.data().chunks_exact(h))
            .zip(shared_gate.data())
        {
            let sigma = 1.0 / (1.0 + (-g).exp());
            o.iter_mut().zip(s).for_each(|(o, &s)| *o += sigma * s);
        }
        Ok(out)
    }

    /// The GPU forward (x `[n, H]` on a device): same traces as [`SparseMoe::forward`]; the
    /// routed sum is computed a second time, without the shared expert, only when tracing.
    fn forward_device(
        &self,
        x: &Tensor,
        prefix: &str,
        trace: &mut Option<Tracer<'_>>,
    ) -> Result<Tensor> {
        let stacked = self.stacked.as_ref().ok_or_else(|| {
            ModelError::Unsupported(format!(
                "{prefix}: MoE input is on a GPU but the experts were loaded on the CPU"
            ))
        })?;
        let k = self.num_experts_per_tok;
        let logits = self.gate.forward(x)?; // [n, E]
        emit(trace, prefix, "gate.out", &logits);
        let shared = self.shared_expert.forward(x)?; // [n, H]
        if trace.is_some() {
            let routed = ops::sparse_moe(x, &logits, &stacked.gate_up, &stacked.down, k, None)?;
            emit(trace, prefix, "experts.out", &routed);
            emit(trace, prefix, "shared_expert.out", &shared);
        }
        let gate = &self.shared_expert_gate.weight; // [1, H]
        Ok(ops::sparse_moe(
            x,
            &logits,
            &stacked.gate_up,
            &stacked.down,
            k,
            Some((&shared, gate)),
        )?)
    }
}

/// Per token: the top-k `(expert, weight)` of softmax(logits) (f32), weights renormalised.
fn route(logits: &Tensor, top_k: usize) -> Vec<Vec<(usize, f32)>> {
    let e = logits.shape().last().copied().unwrap_or(0);
    logits
        .data()
        .chunks_exact(e.max(1))
        .map(|row| {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let exps: Vec<f32> = row.iter().map(|&v| (v - max).exp()).collect();
            let sum: f32 = exps.iter().sum();
            let mut order: Vec<usize> = (0..e).collect();
            // Descending probability; equal probabilities keep the lower id first (stable sort).
            order.sort_by(|&a, &b| exps[b].total_cmp(&exps[a]));
            let top: Vec<(usize, f32)> = order
                .iter()
                .take(top_k)
                .map(|&i| (i, exps[i] / sum))
                .collect();
            let top_sum: f32 = top.iter().map(|(_, p)| p).sum();
            top.into_iter().map(|(i, p)| (i, p / top_sum)).collect()
        })
        .collect()
}

/// Per-expert layout: `{prefix}.{gate,up,down}_proj.weight`.
fn load_expert(ws: &mut WeightSource, prefix: &str, h: usize, moe: &MoeConfig) -> Result<Expert> {
    let ie = moe.moe_intermediate_size;
    Ok(Expert {
        gate_proj: ws.take(&format!("{prefix}.gate_proj.weight"), &[ie, h])?,
        up_proj: ws.take(&format!("{prefix}.up_proj.weight"), &[ie, h])?,
        down_proj: ws.take(&format!("{prefix}.down_proj.weight"), &[h, ie])?,
    })
}

/// Fused layout: `{prefix}.experts.gate_up_proj` `[E, 2·Ie, H]`, `{prefix}.experts.down_proj`
/// `[E, H, Ie]` (no `.weight` suffix), split into per-expert row views (host bytes); on a device
/// the two tensors themselves are the stacked experts.
fn load_fused(
    ws: &mut WeightSource,
    prefix: &str,
    h: usize,
    moe: &MoeConfig,
) -> Result<(Vec<Expert>, Option<StackedExperts>)> {
    let (e, ie) = (moe.num_experts, moe.moe_intermediate_size);
    let gate_up_3d = ws.take(&format!("{prefix}.experts.gate_up_proj"), &[e, 2 * ie, h])?;
    let down_3d = ws.take(&format!("{prefix}.experts.down_proj"), &[e, h, ie])?;
    let gate_up = as_matrix(&gate_up_3d, e * 2 * ie, h)?;
    let down = as_matrix(&down_3d, e * h, ie)?;
    let stacked = (gate_up_3d.device() != Device::Cpu).then_some(StackedExperts {
        gate_up: gate_up_3d,
        down: down_3d,
    });
    let experts = (0..e)
        .map(|x| {
            let base = x * 2 * ie;
            Ok(Expert {
                gate_proj: gate_up.narrow_rows(base, base + ie)?,
                up_proj: gate_up.narrow_rows(base + ie, base + 2 * ie)?,
                down_proj: down.narrow_rows(x * h, (x + 1) * h)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((experts, stacked))
}

/// Per-expert layout on a device: concatenates the experts' host bytes into the stacked
/// `gate_up` / `down` weights, uploads those, and keeps host-only per-expert weights (the
/// per-expert device copies made by the loader are dropped). On the CPU: unchanged, no stack.
fn stack_on_device(
    experts: Vec<Expert>,
    h: usize,
    moe: &MoeConfig,
) -> Result<(Vec<Expert>, Option<StackedExperts>)> {
    let device = match experts.first() {
        Some(x) if x.gate_proj.device() != Device::Cpu => x.gate_proj.device(),
        _ => return Ok((experts, None)),
    };
    let (e, ie) = (moe.num_experts, moe.moe_intermediate_size);
    let dtype = experts[0].gate_proj.dtype();
    let same_dtype = |w: &Weight| w.dtype() == dtype;
    if !experts
        .iter()
        .all(|x| same_dtype(&x.gate_proj) && same_dtype(&x.up_proj) && same_dtype(&x.down_proj))
    {
        return Err(ModelError::Unsupported(
            "experts of one layer stored in different dtypes".into(),
        ));
    }
    let concat = |parts: &mut dyn Iterator<Item = &Weight>| {
        let mut bytes = Vec::new();
        parts.for_each(|w| bytes.extend_from_slice(w.bytes().as_slice()));
        Bytes::from_vec(bytes)
    };
    let gate_up = concat(&mut experts.iter().flat_map(|x| [&x.gate_proj, &x.up_proj]));
    let down = concat(&mut experts.iter().map(|x| &x.down_proj));
    let stacked = StackedExperts {
        gate_up: Weight::new(dtype, vec![e, 2 * ie, h], gate_up)?.to_device(device, false)?,
        down: Weight::new(dtype, vec![e, h, ie], down)?.to_device(device, false)?,
    };
    let host = |w: &Weight| Weight::new(w.dtype(), w.shape().to_vec(), w.bytes().clone());
    let experts = experts
        .iter()
        .map(|x| {
            Ok(Expert {
                gate_proj: host(&x.gate_proj)?,
                up_proj: host(&x.up_proj)?,
                down_proj: host(&x.down_proj)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((experts, Some(stacked)))
}

/// A 3-D weight viewed as `[rows, cols]` (same bytes).
fn as_matrix(w: &Weight, rows: usize, cols: usize) -> Result<Weight> {
    let dtype: DType = w.dtype();
    Weight::new(dtype, vec![rows, cols], w.bytes().clone()).map_err(|e: TensorError| e.into())
}
