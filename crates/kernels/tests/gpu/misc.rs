//! Parity of the non-attention kernels: embedding, SiLU-mul, RoPE, the RMSNorms, causal conv1d
//! and Gated DeltaNet (routing and sampling: `sampling.rs`).
#![allow(dead_code)]
#![allow(clippy::needless_range_loop, clippy::too_many_arguments)]

use arle_kernels::ops::{basic, linear_attn, norm};
use rand::Rng;

use crate::gpu_common::{round_bf, silu, Ctx};

pub fn elementwise(ctx: &mut Ctx) {
    // embedding
    let (vocab, hidden, n) = (1000, 576, 33);
    let (table, tb) = ctx.bf16_data(vocab * hidden, 1.0);
    let ids: Vec<i32> = (0..n)
        .map(|_| ctx.rng.random_range(0..vocab as i32))
        .collect();
    let (dt, di) = (ctx.up(&tb), ctx.up(&ids));
    let mut out = ctx.poisoned_bf16(n * hidden);
    basic::embedding(
        &ctx.rt,
        &dt.as_view(),
        &di.as_view(),
        &mut out.as_view_mut(),
        vocab,
        hidden,
    )
    .expect("embedding");
    let want: Vec<f32> = ids
        .iter()
        .flat_map(|&i| table[i as usize * hidden..(i as usize + 1) * hidden].to_vec())
        .collect();
    let got = ctx.down_bf16(&out);
    ctx.check("embedding", "33 tokens, hidden 576", &got, &want, 0.0);
    // silu_mul on a fused [n, 2I] gate|up buffer
    let (rows, inter) = (17, 1536);
    let (gu, gub) = ctx.bf16_data(rows * 2 * inter, 4.0);
    let d = ctx.up(&gub);
    let mut out = ctx.poisoned_bf16(rows * inter);
    let shape = basic::SiluMulShape {
        n_rows: rows,
        inter,
        in_stride: 2 * inter,
    };
    basic::silu_mul(
        &ctx.rt,
        &d.slice(..),
        &d.slice(inter..),
        &mut out.as_view_mut(),
        shape,
    )
    .expect("silu_mul");
    let want: Vec<f32> = (0..rows * inter)
        .map(|i| {
            let (r, c) = (i / inter, i % inter);
            round_bf(silu(gu[r * 2 * inter + c])) * gu[r * 2 * inter + inter + c]
        })
        .collect();
    let got = ctx.down_bf16(&out);
    ctx.check("silu_mul", "fused gate|up, 17x1536", &got, &want, 1e-4);
    // rope: partial rotary 0.25 on head_dim 256, tokens inside a wider row
    let (nt, nh, hd, rot) = (9, 4, 256, 64);
    let stride = nh * hd + 100;
    let (x, xb) = ctx.bf16_data(nt * stride, 2.0);
    let pos: Vec<i32> = (0..nt as i32).map(|t| t * 37 + 5).collect();
    let inv: Vec<f32> = (0..rot / 2)
        .map(|i| 1.0 / 1.0e7f32.powf((2 * i) as f32 / rot as f32))
        .collect();
    let (mut dx, dp, dinv) = (ctx.up(&xb), ctx.up(&pos), ctx.up(&inv));
    let shape = basic::RopeShape {
        n_tokens: nt,
        n_heads: nh,
        head_dim: hd,
        rot_dim: rot,
        token_stride: stride,
        attention_scaling: 1.0,
    };
    basic::rope_neox(
        &ctx.rt,
        &mut dx.as_view_mut(),
        &dp.as_view(),
        &dinv.as_view(),
        shape,
    )
    .expect("rope");
    let mut want = x.clone();
    for t in 0..nt {
        for h in 0..nh {
            let base = t * stride + h * hd;
            for i in 0..rot / 2 {
                let phi = pos[t] as f32 * inv[i];
                let (c, s) = (phi.cos(), phi.sin());
                let (a, b) = (x[base + i], x[base + i + rot / 2]);
                want[base + i] = a * c - b * s;
                want[base + i + rot / 2] = b * c + a * s;
            }
        }
    }
    let got = ctx.down_bf16(&dx);
    ctx.check(
        "rope_neox",
        "partial 64/256, strided, pos up to 301",
        &got,
        &want,
        1e-4,
    );
}

fn rms_ref(x: &[f32], w: &[f32], kind: norm::RmsNormKind, eps: f32) -> Vec<f32> {
    let r = 1.0 / (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32 + eps).sqrt();
    x.iter()
        .zip(w)
        .map(|(v, w)| match kind {
            norm::RmsNormKind::Plain => w * v * r,
            norm::RmsNormKind::ZeroCentred => v * r * (1.0 + w),
        })
        .collect()
}

pub fn norms(ctx: &mut Ctx) {
    let (rows, dim, eps) = (13, 1000, 1e-6);
    for kind in [norm::RmsNormKind::Plain, norm::RmsNormKind::ZeroCentred] {
        let stride = dim + 24;
        let (x, xb) = ctx.bf16_data(rows * stride, 3.0);
        let (w, wb) = ctx.bf16_data(dim, 1.0);
        let (dx, dw) = (ctx.up(&xb), ctx.up(&wb));
        let mut out = ctx.poisoned_bf16(rows * dim);
        let shape = norm::RmsNormShape {
            n_rows: rows,
            dim,
            x_stride: stride,
            out_stride: dim,
            eps,
        };
        norm::rms_norm(
            &ctx.rt,
            &dx.as_view(),
            &dw.as_view(),
            &mut out.as_view_mut(),
            kind,
            shape,
        )
        .expect("rms_norm");
        let want: Vec<f32> = (0..rows)
            .flat_map(|r| rms_ref(&x[r * stride..r * stride + dim], &w, kind, eps))
            .collect();
        let got = ctx.down_bf16(&out);
        ctx.check(
            "rms_norm",
            &format!("{kind:?}, strided 13x1000"),
            &got,
            &want,
            1e-4,
        );
        // fused residual add
        let (a, ab) = ctx.bf16_data(rows * dim, 1.0);
        let (res, rb) = ctx.bf16_data(rows * dim, 1.0);
        let (da, mut dres) = (ctx.up(&ab), ctx.up(&rb));
        let mut out = ctx.poisoned_bf16(rows * dim);
        let shape = norm::RmsNormShape::contiguous(rows, dim, eps);
        norm::add_rms_norm(
            &ctx.rt,
            &da.as_view(),
            &mut dres.as_view_mut(),
            &dw.as_view(),
            &mut out.as_view_mut(),
            kind,
            shape,
        )
        .expect("add_rms_norm");
        let sum: Vec<f32> = a.iter().zip(&res).map(|(x, y)| round_bf(x + y)).collect();
        let want: Vec<f32> = (0..rows)
            .flat_map(|r| rms_ref(&sum[r * dim..(r + 1) * dim], &w, kind, eps))
            .collect();
        let (got, got_res) = (ctx.down_bf16(&out), ctx.down_bf16(&dres));
        ctx.check("add_rms_norm", &format!("{kind:?} out"), &got, &want, 1e-4);
        ctx.check(
            "add_rms_norm",
            &format!("{kind:?} residual"),
            &got_res,
            &sum,
            0.0,
        );
    }
    let (x, xb) = ctx.bf16_data(rows * 128, 3.0);
    let (z, zb) = ctx.bf16_data(rows * 128, 3.0);
    let (w, wb) = ctx.bf16_data(128, 1.0);
    let (dx, dz, dw) = (ctx.up(&xb), ctx.up(&zb), ctx.up(&wb));
    let mut out = ctx.poisoned_bf16(rows * 128);
    norm::rms_norm_gated(
        &ctx.rt,
        &dx.as_view(),
        &dz.as_view(),
        &dw.as_view(),
        &mut out.as_view_mut(),
        norm::RmsNormShape::contiguous(rows, 128, eps),
    )
    .expect("gated");
    let want: Vec<f32> = (0..rows)
        .flat_map(|r| {
            let n = rms_ref(
                &x[r * 128..(r + 1) * 128],
                &w,
                norm::RmsNormKind::Plain,
                eps,
            );
            let zr = &z[r * 128..(r + 1) * 128];
            n.iter()
                .zip(zr)
                .map(|(v, zv)| v * silu(*zv))
                .collect::<Vec<_>>()
        })
        .collect();
    let got = ctx.down_bf16(&out);
    ctx.check("rms_norm_gated", "13 rows x 128", &got, &want, 1e-4);
}

struct GdnRef {
    hk: usize,
    hv: usize,
    dk: usize,
    dv: usize,
}

impl GdnRef {
    /// One token of the recurrence for all value heads; `state` is [Hv, Dk, Dv].
    fn step(
        &self,
        qkv: &[f32],
        a: &[f32],
        b: &[f32],
        a_log: &[f32],
        dt: &[f32],
        state: &mut [f32],
        out: &mut [f32],
    ) {
        let (hk, hv, dk, dv) = (self.hk, self.hv, self.dk, self.dv);
        for h in 0..hv {
            let kh = h / (hv / hk);
            let q = &qkv[kh * dk..(kh + 1) * dk];
            let k = &qkv[hk * dk + kh * dk..hk * dk + (kh + 1) * dk];
            let v = &qkv[2 * hk * dk + h * dv..2 * hk * dk + (h + 1) * dv];
            let qs =
                1.0 / (q.iter().map(|x| x * x).sum::<f32>() + 1e-6).sqrt() / (dk as f32).sqrt();
            let ks = 1.0 / (k.iter().map(|x| x * x).sum::<f32>() + 1e-6).sqrt();
            let beta = round_bf(1.0 / (1.0 + (-b[h]).exp()));
            let x = a[h] + dt[h];
            let sp = if x > 20.0 { x } else { x.exp().ln_1p() };
            let decay = (-a_log[h].exp() * sp).exp();
            let s = &mut state[h * dk * dv..(h + 1) * dk * dv];
            for j in 0..dv {
                let m: f32 = (0..dk).map(|i| decay * s[i * dv + j] * k[i] * ks).sum();
                let delta = beta * (v[j] - m);
                let mut o = 0.0;
                for i in 0..dk {
                    s[i * dv + j] = decay * s[i * dv + j] + k[i] * ks * delta;
                    o += s[i * dv + j] * q[i] * qs;
                }
                out[h * dv + j] = o;
            }
        }
    }
}

pub fn linear_attention(ctx: &mut Ctx) {
    // causal conv1d: continuation from a random window, 2 sequences, then one decode step
    let (conv_dim, k) = (300, 4);
    let lens = [1usize, 9];
    let n_tokens: usize = lens.iter().sum();
    let (x, xb) = ctx.bf16_data(n_tokens * conv_dim, 2.0);
    let (w, wb) = ctx.bf16_data(conv_dim * k, 1.0);
    let n_slots = 3;
    let (st, stb) = ctx.bf16_data(n_slots * conv_dim * (k - 1), 2.0);
    let slots = [2i32, 0];
    let cu = [0i32, 1, 10];
    let (dx, dw, ds, dcu) = (ctx.up(&xb), ctx.up(&wb), ctx.up(&slots), ctx.up(&cu));
    let mut dst = ctx.up(&stb);
    let mut out = ctx.poisoned_bf16(n_tokens * conv_dim);
    let shape = linear_attn::ConvShape {
        conv_dim,
        kernel_size: k,
        x_stride: conv_dim,
        n_slots,
    };
    linear_attn::causal_conv1d_prefill(
        &ctx.rt,
        &dx.as_view(),
        &dw.as_view(),
        &mut dst.as_view_mut(),
        &ds.as_view(),
        &dcu.as_view(),
        &mut out.as_view_mut(),
        n_tokens,
        shape,
    )
    .expect("conv prefill");
    let mut want = vec![0.0; n_tokens * conv_dim];
    let mut want_state = st.clone();
    for (s, &slot) in slots.iter().enumerate() {
        for c in 0..conv_dim {
            let sb = (slot as usize * conv_dim + c) * (k - 1);
            let mut win: Vec<f32> = want_state[sb..sb + k - 1].to_vec();
            for t in cu[s] as usize..cu[s + 1] as usize {
                let xt = x[t * conv_dim + c];
                let acc: f32 =
                    (0..k - 1).map(|j| w[c * k + j] * win[j]).sum::<f32>() + w[c * k + k - 1] * xt;
                want[t * conv_dim + c] = silu(round_bf(acc));
                win.remove(0);
                win.push(xt);
            }
            want_state[sb..sb + k - 1].copy_from_slice(&win);
        }
    }
    let (got, got_state) = (ctx.down_bf16(&out), ctx.down_bf16(&dst));
    ctx.check(
        "causal_conv1d_prefill",
        "lens [1,9], dim 300, K 4, cont.",
        &got,
        &want,
        1e-4,
    );
    ctx.check(
        "causal_conv1d_prefill",
        "updated window",
        &got_state,
        &want_state,
        0.0,
    );
    let (xd, xdb) = ctx.bf16_data(2 * conv_dim, 2.0);
    let dxd = ctx.up(&xdb);
    let mut outd = ctx.poisoned_bf16(2 * conv_dim);
    linear_attn::causal_conv1d_decode(
        &ctx.rt,
        &dxd.as_view(),
        &dw.as_view(),
        &mut dst.as_view_mut(),
        &ds.as_view(),
        &mut outd.as_view_mut(),
        shape,
    )
    .expect("conv decode");
    let mut wantd = vec![0.0; 2 * conv_dim];
    for (s, &slot) in slots.iter().enumerate() {
        for c in 0..conv_dim {
            let sb = (slot as usize * conv_dim + c) * (k - 1);
            let xt = xd[s * conv_dim + c];
            let acc: f32 = (0..k - 1)
                .map(|j| w[c * k + j] * want_state[sb + j])
                .sum::<f32>()
                + w[c * k + k - 1] * xt;
            wantd[s * conv_dim + c] = silu(round_bf(acc));
        }
    }
    let got = ctx.down_bf16(&outd);
    ctx.check(
        "causal_conv1d_decode",
        "2 seqs after prefill",
        &got,
        &wantd,
        1e-4,
    );

    // Gated DeltaNet: prefill 2 sequences (lens 5 and 70) from zero state, then one decode step
    let g = GdnRef {
        hk: 2,
        hv: 4,
        dk: 128,
        dv: 128,
    };
    let shape = linear_attn::GdnShape {
        n_k_heads: g.hk,
        n_v_heads: g.hv,
        k_head_dim: g.dk,
        v_head_dim: g.dv,
        n_slots: 3,
    };
    let cd = shape.conv_dim();
    let cu = [0i32, 5, 75];
    let nt = 75;
    let (qkv, qkvb) = ctx.bf16_data(nt * cd, 1.0);
    let (a, ab) = ctx.bf16_data(nt * g.hv, 2.0);
    let (b, bb) = ctx.bf16_data(nt * g.hv, 2.0);
    let a_log = ctx.uniform(g.hv, 1.0);
    let dt = ctx.uniform(g.hv, 0.5);
    let slots = [2i32, 0];
    let (dqkv, da, db, dal, ddt, ds, dcu) = (
        ctx.up(&qkvb),
        ctx.up(&ab),
        ctx.up(&bb),
        ctx.up(&a_log),
        ctx.up(&dt),
        ctx.up(&slots),
        ctx.up(&cu),
    );
    let mut state = ctx.zeros::<f32>(shape.state_numel());
    let mut out = ctx.poisoned_bf16(nt * g.hv * g.dv);
    let (vq, va, vb, val, vdt, vs) = (
        dqkv.as_view(),
        da.as_view(),
        db.as_view(),
        dal.as_view(),
        ddt.as_view(),
        ds.as_view(),
    );
    let inputs = linear_attn::GdnInputs {
        qkv: &vq,
        a: &va,
        b: &vb,
        a_log: &val,
        dt_bias: &vdt,
        state_slots: &vs,
    };
    linear_attn::gdn_prefill(
        &ctx.rt,
        &inputs,
        &dcu.as_view(),
        &mut state.as_view_mut(),
        &mut out.as_view_mut(),
        nt,
        shape,
    )
    .expect("gdn prefill");
    let per = g.hv * g.dk * g.dv;
    let mut want_state = vec![0.0f32; shape.state_numel()];
    let mut want = vec![0.0; nt * g.hv * g.dv];
    for (s, &slot) in slots.iter().enumerate() {
        let st = &mut want_state[slot as usize * per..(slot as usize + 1) * per];
        for t in cu[s] as usize..cu[s + 1] as usize {
            let o = &mut want[t * g.hv * g.dv..(t + 1) * g.hv * g.dv];
            g.step(
                &qkv[t * cd..(t + 1) * cd],
                &a[t * g.hv..],
                &b[t * g.hv..],
                &a_log,
                &dt,
                st,
                o,
            );
        }
    }
    let (got, got_state) = (ctx.down_bf16(&out), ctx.down(&state));
    ctx.check(
        "gdn_prefill",
        "lens [5,70], Hk 2 Hv 4, D 128",
        &got,
        &want,
        1e-4,
    );
    ctx.check(
        "gdn_prefill",
        "final f32 state",
        &got_state,
        &want_state,
        1e-8,
    );
    let (q1, q1b) = ctx.bf16_data(2 * cd, 1.0);
    let (a1, a1b) = ctx.bf16_data(2 * g.hv, 2.0);
    let (b1, b1b) = ctx.bf16_data(2 * g.hv, 2.0);
    let (dq1, da1, db1) = (ctx.up(&q1b), ctx.up(&a1b), ctx.up(&b1b));
    let mut out1 = ctx.poisoned_bf16(2 * g.hv * g.dv);
    let (vq1, va1, vb1) = (dq1.as_view(), da1.as_view(), db1.as_view());
    let inputs = linear_attn::GdnInputs {
        qkv: &vq1,
        a: &va1,
        b: &vb1,
        a_log: &val,
        dt_bias: &vdt,
        state_slots: &vs,
    };
    linear_attn::gdn_decode(
        &ctx.rt,
        &inputs,
        &mut state.as_view_mut(),
        &mut out1.as_view_mut(),
        shape,
    )
    .expect("gdn decode");
    let mut want1 = vec![0.0; 2 * g.hv * g.dv];
    for (s, &slot) in slots.iter().enumerate() {
        let st = &mut want_state[slot as usize * per..(slot as usize + 1) * per];
        g.step(
            &q1[s * cd..(s + 1) * cd],
            &a1[s * g.hv..],
            &b1[s * g.hv..],
            &a_log,
            &dt,
            st,
            &mut want1[s * g.hv * g.dv..(s + 1) * g.hv * g.dv],
        );
    }
    let (got, got_state) = (ctx.down_bf16(&out1), ctx.down(&state));
    ctx.check("gdn_decode", "1 step after prefill", &got, &want1, 1e-4);
    ctx.check(
        "gdn_decode",
        "state after step",
        &got_state,
        &want_state,
        1e-8,
    );
}

/// The decode-step GEMV against an f64 CPU reference (bf16 and f32 outputs, with and without
/// bias, 1..=8 rows, N not a multiple of the block), and batch invariance: every row of an
/// 8-row call equals the same row computed alone, bit for bit.
pub fn gemv(ctx: &mut Ctx) {
    use arle_kernels::ops::gemv::{gemv, GemvShape};
    let (n_out, k) = (301, 1048);
    let (w, wb) = ctx.bf16_data(n_out * k, 0.05);
    let (bias, bb) = ctx.bf16_data(n_out, 1.0);
    let (dw, db) = (ctx.up(&wb), ctx.up(&bb));
    let reference = |x: &[f32], rows: usize, with_bias: bool| -> Vec<f32> {
        (0..rows * n_out)
            .map(|i| {
                let (r, o) = (i / n_out, i % n_out);
                let dot: f64 = (0..k)
                    .map(|c| x[r * k + c] as f64 * w[o * k + c] as f64)
                    .sum();
                (dot + if with_bias { bias[o] as f64 } else { 0.0 }) as f32
            })
            .collect()
    };
    let mut alone_rows: Vec<Vec<f32>> = Vec::new();
    for rows in [1usize, 3, 8] {
        let (x, xb) = ctx.bf16_data(rows * k, 1.0);
        let dx = ctx.up(&xb);
        let shape = GemvShape {
            n_rows: rows,
            n_out,
            k,
        };
        let mut y = ctx.poisoned_bf16(rows * n_out);
        gemv(
            &ctx.rt,
            &dx.as_view(),
            &dw.as_view(),
            Some(&db.as_view()),
            &mut y.as_view_mut(),
            shape,
        )
        .expect("gemv bf16");
        let want: Vec<f32> = reference(&x, rows, true)
            .iter()
            .map(|&v| round_bf(v))
            .collect();
        ctx.check(
            "gemv",
            &format!("{rows} rows, bias, bf16 out"),
            &ctx.down_bf16(&y),
            &want,
            1e-5,
        );
        let mut yf = ctx.poisoned_f32(rows * n_out);
        gemv(
            &ctx.rt,
            &dx.as_view(),
            &dw.as_view(),
            None,
            &mut yf.as_view_mut(),
            shape,
        )
        .expect("gemv f32");
        let got = ctx.down(&yf);
        ctx.check(
            "gemv",
            &format!("{rows} rows, f32 out"),
            &got,
            &reference(&x, rows, false),
            1e-8,
        );
        if rows == 8 {
            // Row 5 alone must give the same bits as row 5 of the 8-row call.
            let dx5 = ctx.up(&xb[5 * k..6 * k]);
            let mut y5 = ctx.poisoned_f32(n_out);
            let one = GemvShape { n_rows: 1, ..shape };
            gemv(
                &ctx.rt,
                &dx5.as_view(),
                &dw.as_view(),
                None,
                &mut y5.as_view_mut(),
                one,
            )
            .expect("gemv alone");
            alone_rows.push(ctx.down(&y5));
            let same = alone_rows[0]
                .iter()
                .zip(&got[5 * n_out..6 * n_out])
                .all(|(a, b)| a.to_bits() == b.to_bits());
            ctx.property("gemv", "row alone == row in an 8-row call (bits)", same);
        }
    }
    // Three projections in one launch == three separate launches, bit for bit (bias on one).
    use arle_kernels::ops::gemv::{gemv_multi, GemvPart};
    let rows = 3;
    let (_, xb) = ctx.bf16_data(rows * k, 1.0);
    let dx = ctx.up(&xb);
    let outs = [301usize, 64, 40];
    let ws: Vec<_> = outs
        .iter()
        .map(|&n| {
            let host = ctx.bf16_data(n * k, 0.05).1;
            ctx.up(&host)
        })
        .collect();
    let mut ys: Vec<_> = outs.iter().map(|&n| ctx.poisoned_bf16(rows * n)).collect();
    {
        let (wv, bv) = (
            ws.iter().map(|w| w.as_view()).collect::<Vec<_>>(),
            db.slice(0..outs[1]),
        );
        let mut yv: Vec<_> = ys.iter_mut().map(|y| y.as_view_mut()).collect();
        let [y0, y1, y2] = &mut yv[..] else {
            panic!("three outputs")
        };
        let mut parts = [
            GemvPart {
                w: &wv[0],
                bias: None,
                y: y0,
            },
            GemvPart {
                w: &wv[1],
                bias: Some(&bv),
                y: y1,
            },
            GemvPart {
                w: &wv[2],
                bias: None,
                y: y2,
            },
        ];
        gemv_multi(&ctx.rt, &dx.as_view(), &mut parts, rows, k).expect("gemv_multi");
    }
    let mut same = true;
    for (i, &n) in outs.iter().enumerate() {
        let mut single = ctx.poisoned_bf16(rows * n);
        let bias_view = db.slice(0..n);
        let bias = (i == 1).then_some(&bias_view);
        let shape = GemvShape {
            n_rows: rows,
            n_out: n,
            k,
        };
        gemv(
            &ctx.rt,
            &dx.as_view(),
            &ws[i].as_view(),
            bias,
            &mut single.as_view_mut(),
            shape,
        )
        .expect("gemv single");
        let (a, b) = (ctx.down(&ys[i]), ctx.down(&single));
        same &= a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits());
    }
    ctx.property(
        "gemv_multi",
        "3 parts (301/64+bias/40) == separate gemv (bits)",
        same,
    );
}
