//! Qwen3.5-MoE sparse MLP (MODEL-SPECS §5.2): softmax router over all experts (f32), top-k,
//! renormalised weights, SwiGLU experts summed in f32, plus an always-on shared expert scaled by
//! `sigmoid(shared_expert_gate(h))`.
//!
//! Both checkpoint layouts load into the same per-expert weights (§5.3): fused
//! `experts.gate_up_proj` `[E, 2·Ie, H]` (rows `0..Ie` gate, `Ie..2·Ie` up) and
//! `experts.down_proj` `[E, H, Ie]` (views into the same bytes), or per-expert
//! `experts.{e}.{gate,up,down}_proj.weight`. Invariant: the forward never depends on the layout.
//! Ties in the top-k pick the lower expert id.

use arle_tensor::{ops, DType, Tensor, TensorError, Weight};

use super::{emit, Linear, Mlp};
use crate::config::MoeConfig;
use crate::weights::WeightSource;
use crate::{Result, Tracer};

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

#[derive(Clone, Debug)]
pub struct SparseMoe {
    /// Router `[E, H]`.
    pub gate: Linear,
    pub experts: Vec<Expert>,
    pub shared_expert: Mlp,
    /// `[1, H]`
    pub shared_expert_gate: Linear,
    pub num_experts_per_tok: usize,
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
        let experts = if ws.contains(&name("experts.gate_up_proj")) {
            load_fused(ws, prefix, h, moe)?
        } else {
            (0..moe.num_experts)
                .map(|e| load_expert(ws, &format!("{prefix}.experts.{e}"), h, moe))
                .collect::<Result<Vec<_>>>()?
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
/// `[E, H, Ie]` (no `.weight` suffix), split into per-expert row views.
fn load_fused(
    ws: &mut WeightSource,
    prefix: &str,
    h: usize,
    moe: &MoeConfig,
) -> Result<Vec<Expert>> {
    let (e, ie) = (moe.num_experts, moe.moe_intermediate_size);
    let gate_up = ws.take(&format!("{prefix}.experts.gate_up_proj"), &[e, 2 * ie, h])?;
    let down = ws.take(&format!("{prefix}.experts.down_proj"), &[e, h, ie])?;
    let gate_up = as_matrix(&gate_up, e * 2 * ie, h)?;
    let down = as_matrix(&down, e * h, ie)?;
    (0..e)
        .map(|x| {
            let base = x * 2 * ie;
            Ok(Expert {
                gate_proj: gate_up.narrow_rows(base, base + ie)?,
                up_proj: gate_up.narrow_rows(base + ie, base + 2 * ie)?,
                down_proj: down.narrow_rows(x * h, (x + 1) * h)?,
            })
        })
        .collect()
}

/// A 3-D weight viewed as `[rows, cols]` (same bytes).
fn as_matrix(w: &Weight, rows: usize, cols: usize) -> Result<Weight> {
    let dtype: DType = w.dtype();
    Weight::new(dtype, vec![rows, cols], w.bytes().clone()).map_err(|e: TensorError| e.into())
}
