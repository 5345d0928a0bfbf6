//! The routed experts of a sparse MoE block on the GPU (MODEL-SPECS §5.2), from router logits to
//! the block's output, with arle-kernels' `moe_experts.cu`: f32-weight top-k router, on-device
//! counting sort of the (token, slot) pairs by expert, grouped gate_up GEMM (gathering token
//! rows), SwiGLU, grouped down GEMM (scattered back to pair order), and the combine with HF's
//! bf16 rounding points: `bf16(Σ_r bf16(w·y))` (f32 sum, w rounded to bf16), then
//! `bf16(routed + bf16(bf16(sigmoid(x·wsg))·shared))`.
//!
//! Invariants: no device value is read back (the routing decisions stay on the GPU; every grid
//! is sized from `n`, `k` and `E`); all launches go to the backend's one stream. The expert
//! weights are two stacked device buffers, `gate_up` `[E, 2·Ie, H]` (rows `0..Ie` gate, `Ie..2·Ie`
//! up, per expert) and `down` `[E, H, Ie]`. Scratch buffers are allocated per call; rows of pairs
//! the router could not place (NaN logits) are left unwritten and skipped by the combine.

use arle_kernels::cudarc::driver::{CudaSlice, DeviceRepr};
use arle_kernels::ops::{basic, moe};
use half::bf16;

use super::ops::gpu_of;
use super::{cuda_err, placement, CudaBackend, GpuData, GpuHandle, GpuWeight};
use crate::error::shape_err;
use crate::{Result, Tensor, Weight};

const OP: &str = "sparse_moe";

fn weight_of<'a>(what: &str, w: &'a Weight) -> Result<&'a GpuWeight> {
    w.gpu()
        .ok_or_else(|| placement(OP, format!("{what} was not uploaded to the GPU")))
}

/// An uninitialised device buffer of `n > 0` values.
fn alloc<T: DeviceRepr>(backend: &CudaBackend, n: usize) -> Result<CudaSlice<T>> {
    // SAFETY: every buffer allocated here is written by a kernel before it is read, except the
    // rows of unplaced pairs, which no kernel reads as a result (see the module invariants).
    unsafe { backend.stream().alloc::<T>(n) }.map_err(cuda_err("device alloc"))
}

/// Output `[n, H]` of the routed experts (top `top_k` of the router), plus, when `shared` is
/// `(shared_expert_output [n, H], shared_expert_gate.weight [1, H])`, the sigmoid-gated shared
/// expert. x `[n, H]` and router_logits `[n, E]` are bf16 device tensors; gate_up `[E, 2·Ie, H]`
/// and down `[E, H, Ie]` are device weights.
pub fn sparse_moe(
    x: &Tensor,
    router_logits: &Tensor,
    gate_up: &Weight,
    down: &Weight,
    top_k: usize,
    shared: Option<(&Tensor, &Weight)>,
) -> Result<Tensor> {
    let ([n, h], [ln, e]) = (x.shape(), router_logits.shape()) else {
        let detail = format!(
            "x {:?} and router logits {:?} must be 2-D",
            x.shape(),
            router_logits.shape()
        );
        return shape_err(OP, detail);
    };
    let (n, h, e) = (*n, *h, *e);
    let [ge, two_ie, gh] = *gate_up.shape() else {
        return shape_err(
            OP,
            format!("gate_up must be 3-D, got {:?}", gate_up.shape()),
        );
    };
    let ie = two_ie / 2;
    if *ln != n || ge != e || gh != h || two_ie % 2 != 0 || down.shape() != [e, h, ie] {
        let detail = format!(
            "x {:?}, logits {:?}, gate_up {:?}, down {:?}",
            x.shape(),
            router_logits.shape(),
            gate_up.shape(),
            down.shape()
        );
        return shape_err(OP, detail);
    }
    if let Some((s, g)) = shared {
        if s.shape() != [n, h] || g.elements() != h {
            let detail = format!("shared output {:?}, gate {:?}", s.shape(), g.shape());
            return shape_err(OP, detail);
        }
    }
    if n == 0 || h == 0 {
        return Ok(Tensor::zeros(vec![n, h]));
    }
    if top_k == 0 || ie == 0 {
        return Err(placement(
            OP,
            format!("top_k {top_k}, Ie {ie}: nothing routed"),
        ));
    }
    let xg = gpu_of(OP, x)?;
    let xs = xg.bf16(OP)?;
    let logits = gpu_of(OP, router_logits)?.bf16(OP)?;
    let (wgu, wdn) = (weight_of("gate_up", gate_up)?, weight_of("down", down)?);
    let backend = xg.backend();
    let rt = backend.runtime();
    let np = n * top_k;
    let tiles = moe::max_tiles(np, e);

    let mut ids = alloc::<i32>(backend, np)?;
    let mut weights = alloc::<f32>(backend, np)?;
    moe::moe_topk_softmax_f32(
        rt,
        &logits.as_view(),
        &mut ids.as_view_mut(),
        &mut weights.as_view_mut(),
        n,
        e,
        top_k,
    )?;
    let mut offsets = alloc::<i32>(backend, e + 1)?;
    let mut sorted = alloc::<i32>(backend, np)?;
    let mut tile_expert = alloc::<i32>(backend, tiles)?;
    let mut tile_row = alloc::<i32>(backend, tiles)?;
    {
        let (mut vo, mut vs, mut vte, mut vtr) = (
            offsets.as_view_mut(),
            sorted.as_view_mut(),
            tile_expert.as_view_mut(),
            tile_row.as_view_mut(),
        );
        let mut plan = moe::MoePlanMut {
            expert_offsets: &mut vo,
            sorted_pairs: &mut vs,
            tile_expert: &mut vte,
            tile_row: &mut vtr,
        };
        moe::moe_align(rt, &ids.as_view(), &mut plan, np, e)?;
    }

    let mut gu = alloc::<bf16>(backend, np * 2 * ie)?; // [np, 2·Ie], sorted order
    let mut act = alloc::<bf16>(backend, np * ie)?; // [np, Ie], sorted order
    let mut y = alloc::<bf16>(backend, np * h)?; // [np, H], pair order
    {
        let (vo, vs, vte, vtr) = (
            offsets.as_view(),
            sorted.as_view(),
            tile_expert.as_view(),
            tile_row.as_view(),
        );
        let plan = moe::MoePlan {
            expert_offsets: &vo,
            sorted_pairs: &vs,
            tile_expert: &vte,
            tile_row: &vtr,
        };
        let up_shape = moe::GroupedGemmShape {
            n_pairs: np,
            n_experts: e,
            n_out: 2 * ie,
            k_in: h,
            input_rows: moe::GemmInputRows::Tokens { top_k },
            output_rows: moe::GemmOutputRows::Sorted,
        };
        moe::moe_grouped_gemm(
            rt,
            &xs.as_view(),
            &wgu.data.as_view(),
            &mut gu.as_view_mut(),
            &plan,
            up_shape,
        )?;
        basic::silu_mul(
            rt,
            &gu.as_view(),
            &gu.slice(ie..),
            &mut act.as_view_mut(),
            basic::SiluMulShape {
                n_rows: np,
                inter: ie,
                in_stride: 2 * ie,
            },
        )?;
        let down_shape = moe::GroupedGemmShape {
            n_out: h,
            k_in: ie,
            input_rows: moe::GemmInputRows::Sorted,
            output_rows: moe::GemmOutputRows::Pairs,
            ..up_shape
        };
        moe::moe_grouped_gemm(
            rt,
            &act.as_view(),
            &wdn.data.as_view(),
            &mut y.as_view_mut(),
            &plan,
            down_shape,
        )?;
    }

    let mut out = alloc::<bf16>(backend, n * h)?;
    let (vi, vw) = (ids.as_view(), weights.as_view());
    let routing = moe::Routing {
        topk_ids: &vi,
        topk_weights: &vw,
        n_tokens: n,
        top_k,
        n_experts: e,
    };
    match shared {
        Some((s, g)) => {
            let ss = gpu_of(OP, s)?.bf16(OP)?;
            let gw = weight_of("shared_expert_gate", g)?;
            let (vx, vg, vs) = (xs.as_view(), gw.data.as_view(), ss.as_view());
            let sh = moe::SharedExpert {
                x: &vx,
                gate_weight: &vg,
                output: &vs,
            };
            moe::moe_combine(
                rt,
                &y.as_view(),
                &routing,
                Some(&sh),
                &mut out.as_view_mut(),
                h,
            )?;
        }
        None => moe::moe_combine(rt, &y.as_view(), &routing, None, &mut out.as_view_mut(), h)?,
    }
    let handle = GpuHandle::new(backend.clone(), GpuData::Bf16(out));
    Ok(Tensor::from_gpu(vec![n, h], handle))
}
