//! Parity of the routed-expert MoE pipeline (`cu/moe_experts.cu`): f32-weight router, on-device
//! align (counting sort by expert, tiles), grouped gate_up GEMM, SwiGLU, grouped down GEMM
//! (scattered to pair order) and the combine with the sigmoid-gated shared expert, against an f32
//! CPU reference that rounds where the GPU stores bf16. Cases: n=1 decode, n=300 prefill with
//! skewed loads (hot experts spanning several tiles, experts with zero tokens), a K % 8 != 0
//! (scalar-load) case without a shared expert, and a 256-expert top-8 case.
#![allow(dead_code)]
#![allow(clippy::needless_range_loop, clippy::too_many_arguments)]

use arle_kernels::ops::basic;
use arle_kernels::ops::moe::{self, GemmInputRows, GemmOutputRows, GroupedGemmShape};
use half::bf16;

use crate::gpu_common::{round_bf, silu, Ctx};

pub struct Case {
    pub name: &'static str,
    pub n_tokens: usize,
    pub n_experts: usize,
    pub top_k: usize,
    pub hidden: usize,
    pub inter: usize,
    pub shared: bool,
    /// Experts `0..hot` get +3 on their logits.
    pub hot: usize,
    /// Experts `cold..E` get -20 (never picked when at least k others exist).
    pub cold: usize,
}

pub const CASES: &[Case] = &[
    Case {
        name: "decode n=1 E=8 k=3 H=64 Ie=32",
        n_tokens: 1,
        n_experts: 8,
        top_k: 3,
        hidden: 64,
        inter: 32,
        shared: true,
        hot: 0,
        cold: 8,
    },
    Case {
        name: "prefill n=300 E=64 k=8 H=128 Ie=96 skewed",
        n_tokens: 300,
        n_experts: 64,
        top_k: 8,
        hidden: 128,
        inter: 96,
        shared: true,
        hot: 4,
        cold: 32,
    },
    Case {
        name: "n=70 E=16 k=4 H=60 Ie=20 scalar, no shared",
        n_tokens: 70,
        n_experts: 16,
        top_k: 4,
        hidden: 60,
        inter: 20,
        shared: false,
        hot: 1,
        cold: 12,
    },
    Case {
        name: "n=300 E=256 k=8 H=256 Ie=64",
        n_tokens: 300,
        n_experts: 256,
        top_k: 8,
        hidden: 256,
        inter: 64,
        shared: true,
        hot: 0,
        cold: 256,
    },
];

/// CPU routing: top-k of softmax (ties: lower id), weights renormalised in f32.
fn route_cpu(logits: &[f32], e: usize, k: usize) -> (Vec<i32>, Vec<f32>) {
    let (mut ids, mut ws) = (Vec::new(), Vec::new());
    for row in logits.chunks_exact(e) {
        let m = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let p: Vec<f32> = row.iter().map(|x| (x - m).exp()).collect();
        let z: f32 = p.iter().sum();
        let mut order: Vec<usize> = (0..e).collect();
        order.sort_by(|&a, &b| p[b].total_cmp(&p[a]).then(a.cmp(&b)));
        let top: f32 = order[..k].iter().map(|&i| p[i] / z).sum();
        for &i in &order[..k] {
            ids.push(i as i32);
            ws.push(round_bf(p[i] / z / top));
        }
    }
    (ids, ws)
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

pub fn moe_experts(ctx: &mut Ctx) {
    for case in CASES {
        run_case(ctx, case);
    }
}

fn run_case(ctx: &mut Ctx, c: &Case) {
    let (n, e, k, h, ie) = (c.n_tokens, c.n_experts, c.top_k, c.hidden, c.inter);
    let np = n * k;
    let mut logits: Vec<f32> = ctx.uniform(n * e, 1.0);
    for t in 0..n {
        for x in 0..e {
            if x < c.hot {
                logits[t * e + x] += 3.0;
            } else if x >= c.cold {
                logits[t * e + x] -= 20.0;
            }
        }
    }
    let logits_b: Vec<bf16> = logits.iter().map(|&v| bf16::from_f32(v)).collect();
    let logits: Vec<f32> = logits_b.iter().map(|v| v.to_f32()).collect();
    let scale_in = 1.0 / (h as f32).sqrt();
    let (x, xb) = ctx.bf16_data(n * h, 1.0);
    let (wgu, wgub) = ctx.bf16_data(e * 2 * ie * h, 2.0 * scale_in);
    let (wd, wdb) = ctx.bf16_data(e * h * ie, 2.0 / (ie as f32).sqrt());
    let (wsg, wsgb) = ctx.bf16_data(h, 2.0 * scale_in);
    let (s, sb) = ctx.bf16_data(n * h, 1.0);

    // Device pipeline.
    let d_logits = ctx.up(&logits_b);
    let mut d_ids = ctx.up(&vec![-7i32; np]);
    let mut d_w = ctx.poisoned_f32(np);
    moe::moe_topk_softmax_f32(
        &ctx.rt,
        &d_logits.as_view(),
        &mut d_ids.as_view_mut(),
        &mut d_w.as_view_mut(),
        n,
        e,
        k,
    )
    .expect("route");
    let tiles = moe::max_tiles(np, e);
    let mut d_off = ctx.up(&vec![-7i32; e + 1]);
    let mut d_sorted = ctx.up(&vec![-7i32; np]);
    let mut d_te = ctx.up(&vec![-7i32; tiles]);
    let mut d_tr = ctx.up(&vec![-7i32; tiles]);
    {
        let (mut vo, mut vs, mut vte, mut vtr) = (
            d_off.as_view_mut(),
            d_sorted.as_view_mut(),
            d_te.as_view_mut(),
            d_tr.as_view_mut(),
        );
        let mut plan = moe::MoePlanMut {
            expert_offsets: &mut vo,
            sorted_pairs: &mut vs,
            tile_expert: &mut vte,
            tile_row: &mut vtr,
        };
        moe::moe_align(&ctx.rt, &d_ids.as_view(), &mut plan, np, e).expect("align");
    }
    let (d_x, d_wgu, d_wd) = (ctx.up(&xb), ctx.up(&wgub), ctx.up(&wdb));
    let mut d_gu = ctx.poisoned_bf16(np * 2 * ie);
    let mut d_act = ctx.poisoned_bf16(np * ie);
    let mut d_y = ctx.poisoned_bf16(np * h);
    let mut d_out = ctx.poisoned_bf16(n * h);
    {
        let (vo, vs, vte, vtr) = (
            d_off.as_view(),
            d_sorted.as_view(),
            d_te.as_view(),
            d_tr.as_view(),
        );
        let plan = moe::MoePlan {
            expert_offsets: &vo,
            sorted_pairs: &vs,
            tile_expert: &vte,
            tile_row: &vtr,
        };
        let shape = GroupedGemmShape {
            n_pairs: np,
            n_experts: e,
            n_out: 2 * ie,
            k_in: h,
            input_rows: GemmInputRows::Tokens { top_k: k },
            output_rows: GemmOutputRows::Sorted,
        };
        moe::moe_grouped_gemm(
            &ctx.rt,
            &d_x.as_view(),
            &d_wgu.as_view(),
            &mut d_gu.as_view_mut(),
            &plan,
            shape,
        )
        .expect("gemm gate_up");
        basic::silu_mul(
            &ctx.rt,
            &d_gu.as_view(),
            &d_gu.slice(ie..),
            &mut d_act.as_view_mut(),
            basic::SiluMulShape {
                n_rows: np,
                inter: ie,
                in_stride: 2 * ie,
            },
        )
        .expect("silu_mul");
        let shape = GroupedGemmShape {
            n_out: h,
            k_in: ie,
            input_rows: GemmInputRows::Sorted,
            output_rows: GemmOutputRows::Pairs,
            ..shape
        };
        moe::moe_grouped_gemm(
            &ctx.rt,
            &d_act.as_view(),
            &d_wd.as_view(),
            &mut d_y.as_view_mut(),
            &plan,
            shape,
        )
        .expect("gemm down");
    }
    let (d_wsg, d_s) = (ctx.up(&wsgb), ctx.up(&sb));
    {
        let (vx, vg, vs) = (d_x.as_view(), d_wsg.as_view(), d_s.as_view());
        let shared = moe::SharedExpert {
            x: &vx,
            gate_weight: &vg,
            output: &vs,
        };
        let (vi, vw) = (d_ids.as_view(), d_w.as_view());
        let routing = moe::Routing {
            topk_ids: &vi,
            topk_weights: &vw,
            n_tokens: n,
            top_k: k,
            n_experts: e,
        };
        moe::moe_combine(
            &ctx.rt,
            &d_y.as_view(),
            &routing,
            c.shared.then_some(&shared),
            &mut d_out.as_view_mut(),
            h,
        )
        .expect("combine");
    }

    // Routing and plan.
    let (want_ids, want_w) = route_cpu(&logits, e, k);
    let (got_ids, got_w) = (ctx.down(&d_ids), ctx.down(&d_w));
    ctx.property("moe_topk_softmax_f32", c.name, got_ids == want_ids);
    ctx.check("moe_topk_softmax_f32 w", c.name, &got_w, &want_w, 1e-6);
    let mut per_expert: Vec<Vec<i32>> = vec![Vec::new(); e];
    for (i, &id) in want_ids.iter().enumerate() {
        per_expert[id as usize].push(i as i32);
    }
    let mut want_off = vec![0i32];
    for list in &per_expert {
        want_off.push(want_off.last().copied().unwrap_or(0) + list.len() as i32);
    }
    let (off, sorted, te, tr) = (
        ctx.down(&d_off),
        ctx.down(&d_sorted),
        ctx.down(&d_te),
        ctx.down(&d_tr),
    );
    let mut plan_ok = off == want_off;
    for x in (0..e).filter(|_| off == want_off) {
        let mut seg = sorted[off[x] as usize..off[x + 1] as usize].to_vec();
        seg.sort();
        plan_ok &= seg == per_expert[x];
    }
    let mut want_tiles: Vec<(i32, i32)> = Vec::new();
    for x in 0..e {
        for j in 0..per_expert[x].len().div_ceil(moe::BLOCK_ROWS) {
            want_tiles.push((x as i32, want_off[x] + (j * moe::BLOCK_ROWS) as i32));
        }
    }
    want_tiles.resize(tiles, (-1, 0));
    let got_tiles: Vec<(i32, i32)> = te.iter().copied().zip(tr.iter().copied()).collect();
    plan_ok &= got_tiles == want_tiles;
    let empty = per_expert.iter().filter(|l| l.is_empty()).count();
    let max_load = per_expert.iter().map(Vec::len).max().unwrap_or(0);
    ctx.property(
        "moe_align",
        &format!("{} ({empty} idle, max load {max_load})", c.name),
        plan_ok,
    );

    // Expert FFN and combine (CPU reference with the GPU's bf16 storage points).
    let mut want_out = vec![0.0f32; n * h];
    for t in 0..n {
        let xt = &x[t * h..(t + 1) * h];
        let mut acc = vec![0.0f32; h];
        for r in 0..k {
            let (id, w) = (want_ids[t * k + r] as usize, want_w[t * k + r]);
            let wg = &wgu[id * 2 * ie * h..];
            let act: Vec<f32> = (0..ie)
                .map(|j| {
                    let g = round_bf(dot(xt, &wg[j * h..(j + 1) * h]));
                    let u = round_bf(dot(xt, &wg[(ie + j) * h..(ie + j + 1) * h]));
                    round_bf(round_bf(silu(g)) * u)
                })
                .collect();
            let wdn = &wd[id * h * ie..];
            for o in 0..h {
                acc[o] += round_bf(w * round_bf(dot(&act, &wdn[o * ie..(o + 1) * ie])));
            }
        }
        let sigma = if c.shared {
            round_bf(1.0 / (1.0 + (-round_bf(dot(xt, &wsg))).exp()))
        } else {
            0.0
        };
        for o in 0..h {
            let routed = round_bf(acc[o]);
            want_out[t * h + o] = if c.shared {
                round_bf(routed + round_bf(sigma * s[t * h + o]))
            } else {
                routed
            };
        }
    }
    let got_out = ctx.down_bf16(&d_out);
    ctx.check("moe experts+combine", c.name, &got_out, &want_out, 1e-4);
}
