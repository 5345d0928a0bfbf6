//! Parity of MoE routing, log-softmax, penalties and sampling kernels.
#![allow(dead_code)]
#![allow(clippy::needless_range_loop, clippy::too_many_arguments)]

use arle_kernels::ops::{routing, sampling};
use rand::Rng;

use crate::gpu_common::Ctx;

pub fn routing_and_logprobs(ctx: &mut Ctx) {
    let (nt, ne, k) = (37, 256, 8);
    let (lg, lgb) = ctx.bf16_data(nt * ne, 4.0);
    let dl = ctx.up(&lgb);
    let mut ids = ctx.up(&vec![-1i32; nt * k]);
    let mut wts = ctx.poisoned_bf16(nt * k);
    routing::moe_topk_softmax(
        &ctx.rt,
        &dl.as_view(),
        &mut ids.as_view_mut(),
        &mut wts.as_view_mut(),
        nt,
        ne,
        k,
    )
    .expect("moe");
    let (mut want_ids, mut want_w) = (Vec::new(), Vec::new());
    for t in 0..nt {
        let row = &lg[t * ne..(t + 1) * ne];
        let m = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let p: Vec<f32> = row.iter().map(|x| (x - m).exp()).collect();
        let z: f32 = p.iter().sum();
        let mut order: Vec<usize> = (0..ne).collect();
        order.sort_by(|&a, &b| p[b].total_cmp(&p[a]).then(a.cmp(&b)));
        let top: f32 = order[..k].iter().map(|&e| p[e] / z).sum();
        for &e in &order[..k] {
            want_ids.push(e as i32);
            want_w.push(p[e] / z / top);
        }
    }
    let (got_ids, got_w) = (ctx.down(&ids), ctx.down_bf16(&wts));
    ctx.property(
        "moe_topk_softmax",
        "ids == CPU top-8 of 256 (37 tokens)",
        got_ids == want_ids,
    );
    ctx.check(
        "moe_topk_softmax",
        "renormalised weights",
        &got_w,
        &want_w,
        1e-4,
    );

    let (rows, vocab) = (5, 49_157);
    let (x, xb) = ctx.bf16_data(rows * vocab, 8.0);
    let want: Vec<f32> = (0..rows)
        .flat_map(|r| {
            let row = &x[r * vocab..(r + 1) * vocab];
            let m = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
            let lse = m + row.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln();
            row.iter()
                .map(move |&v| (v as f64 - lse) as f32)
                .collect::<Vec<_>>()
        })
        .collect();
    let (db, df) = (ctx.up(&xb), ctx.up(&x));
    let mut out = ctx.poisoned_f32(rows * vocab);
    sampling::log_softmax_bf16(&ctx.rt, &db.as_view(), &mut out.as_view_mut(), rows, vocab)
        .expect("logsoftmax bf16");
    let got = ctx.down(&out);
    ctx.check("log_softmax_bf16", "5 x 49157", &got, &want, 1e-10);
    let mut out = ctx.poisoned_f32(rows * vocab);
    sampling::log_softmax_f32(&ctx.rt, &df.as_view(), &mut out.as_view_mut(), rows, vocab)
        .expect("logsoftmax f32");
    let got = ctx.down(&out);
    ctx.check("log_softmax_f32", "5 x 49157", &got, &want, 1e-10);
}

struct RowParams {
    temperature: f32,
    top_k: i32,
    top_p: f32,
    min_p: f32,
}

/// Normalised kept distribution of one row (zero outside the kept set).
fn kept_distribution(x: &[f32], p: &RowParams) -> Vec<f64> {
    let m = x.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f64> = x
        .iter()
        .map(|v| ((v / p.temperature - m / p.temperature) as f64).exp())
        .collect();
    let z: f64 = e.iter().sum();
    let probs: Vec<f64> = e.iter().map(|v| v / z).collect();
    let mut sorted = probs.clone();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let mut tau = 0.0;
    if p.top_k > 0 && (p.top_k as usize) < x.len() {
        tau = sorted[p.top_k as usize - 1];
    }
    if p.top_p < 1.0 {
        let mass_k: f64 = sorted.iter().filter(|&&v| v >= tau).sum();
        let mut acc = 0.0;
        for &v in &sorted {
            acc += v;
            if acc >= p.top_p as f64 * mass_k {
                tau = f64::max(tau, v);
                break;
            }
        }
    }
    tau = f64::max(tau, p.min_p as f64 * sorted[0]);
    let kept: Vec<f64> = probs
        .iter()
        .map(|&v| if v >= tau { v } else { 0.0 })
        .collect();
    let zk: f64 = kept.iter().sum();
    kept.iter().map(|v| v / zk).collect()
}

fn run_sampler(
    ctx: &mut Ctx,
    logits: &[f32],
    vocab: usize,
    params: &[RowParams],
    seeds: &[u64],
    offsets: &[u64],
) -> Vec<i32> {
    let n = params.len();
    let dl = ctx.up(logits);
    let mut probs = ctx.zeros::<f32>(n * vocab);
    let t = ctx.up(&params.iter().map(|p| p.temperature).collect::<Vec<_>>());
    let k = ctx.up(&params.iter().map(|p| p.top_k).collect::<Vec<_>>());
    let tp = ctx.up(&params.iter().map(|p| p.top_p).collect::<Vec<_>>());
    let mp = ctx.up(&params.iter().map(|p| p.min_p).collect::<Vec<_>>());
    let (ds, dof) = (ctx.up(seeds), ctx.up(offsets));
    let mut tokens = ctx.up(&vec![-1i32; n]);
    let (vt, vk, vtp, vmp, vs, vo) = (
        t.as_view(),
        k.as_view(),
        tp.as_view(),
        mp.as_view(),
        ds.as_view(),
        dof.as_view(),
    );
    let inputs = sampling::SamplingInputs {
        temperature: &vt,
        top_k: &vk,
        top_p: &vtp,
        min_p: &vmp,
        seed: &vs,
        offset: &vo,
    };
    sampling::sample_tokens(
        &ctx.rt,
        &dl.as_view(),
        &mut probs.as_view_mut(),
        &inputs,
        &mut tokens.as_view_mut(),
        n,
        vocab,
    )
    .expect("sample");
    ctx.down(&tokens)
}

pub fn sampling(ctx: &mut Ctx) {
    // penalties
    let (rows, vocab, max_hist) = (3, 1000, 50);
    let x = ctx.uniform(rows * vocab, 5.0);
    let hist: Vec<i32> = (0..rows * max_hist)
        .map(|_| ctx.rng.random_range(0..60))
        .collect();
    let lens = [50i32, 0, 17];
    let (rep, pres, freq) = ([1.3f32, 1.1, 0.9], [0.5f32, 0.0, 0.2], [0.1f32, 0.3, 0.0]);
    let mut dx = ctx.up(&x);
    let mut counts = ctx.zeros::<i32>(rows * vocab);
    let (dh, dlen, dr, dp, df) = (
        ctx.up(&hist),
        ctx.up(&lens),
        ctx.up(&rep),
        ctx.up(&pres),
        ctx.up(&freq),
    );
    let (vh, vl, vr, vp, vf) = (
        dh.as_view(),
        dlen.as_view(),
        dr.as_view(),
        dp.as_view(),
        df.as_view(),
    );
    let pin = sampling::PenaltyInputs {
        history: &vh,
        history_lens: &vl,
        repetition: &vr,
        presence: &vp,
        frequency: &vf,
        max_hist,
    };
    sampling::apply_penalties(
        &ctx.rt,
        &mut dx.as_view_mut(),
        &mut counts.as_view_mut(),
        &pin,
        rows,
        vocab,
    )
    .expect("penalties");
    let mut want = x.clone();
    for r in 0..rows {
        let mut c = vec![0; vocab];
        for &t in &hist[r * max_hist..r * max_hist + lens[r] as usize] {
            c[t as usize] += 1;
        }
        for v in 0..vocab {
            if c[v] > 0 {
                let xv = want[r * vocab + v];
                let xv = if xv > 0.0 { xv / rep[r] } else { xv * rep[r] };
                want[r * vocab + v] = xv - pres[r] - freq[r] * c[v] as f32;
            }
        }
    }
    let got = ctx.down(&dx);
    ctx.check(
        "apply_penalties",
        "3 rows, repeated history",
        &got,
        &want,
        1e-12,
    );

    // greedy + kept-set membership over many offsets, on a large vocab
    let vocab = 32_000;
    let base = ctx.uniform(vocab, 6.0);
    let cases = [
        RowParams {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
        },
        RowParams {
            temperature: 1.0,
            top_k: 20,
            top_p: 1.0,
            min_p: 0.0,
        },
        RowParams {
            temperature: 0.8,
            top_k: 0,
            top_p: 0.5,
            min_p: 0.0,
        },
        RowParams {
            temperature: 1.2,
            top_k: 50,
            top_p: 0.9,
            min_p: 0.05,
        },
        RowParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.3,
        },
        RowParams {
            temperature: 1.0,
            top_k: 1,
            top_p: 1.0,
            min_p: 0.0,
        },
    ];
    let argmax = base
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i as i32)
        .unwrap_or(0);
    let n_draws = 64;
    for (ci, p) in cases.iter().enumerate() {
        let params: Vec<RowParams> = (0..n_draws).map(|_| RowParams { ..*p }).collect();
        let logits: Vec<f32> = (0..n_draws).flat_map(|_| base.clone()).collect();
        let seeds = vec![1234u64 + ci as u64; n_draws];
        let offsets: Vec<u64> = (0..n_draws as u64).collect();
        let toks = run_sampler(ctx, &logits, vocab, &params, &seeds, &offsets);
        let ok = if p.temperature <= 0.0 || p.top_k == 1 {
            toks.iter().all(|&t| t == argmax)
        } else {
            let kept = kept_distribution(&base, p);
            toks.iter().all(|&t| t >= 0 && kept[t as usize] > 0.0)
        };
        let case = format!(
            "T {} k {} p {} min_p {}: in kept set",
            p.temperature, p.top_k, p.top_p, p.min_p
        );
        ctx.property("sample_tokens", &case, ok);
        // batch invariance: the row alone, same seed/offset, gives the same token
        let alone = run_sampler(
            ctx,
            &base,
            vocab,
            &[RowParams { ..*p }],
            &seeds[..1],
            &offsets[5..6],
        );
        ctx.property(
            "sample_tokens",
            "  same token alone vs in batch",
            alone[0] == toks[5],
        );
    }
    // distribution over 20000 draws on a small vocab vs the exact kept distribution
    let small: Vec<f32> = vec![2.0, 1.5, 1.4, 0.3, 0.0, -0.5, 1.0, -2.0];
    let p = RowParams {
        temperature: 0.7,
        top_k: 6,
        top_p: 0.95,
        min_p: 0.02,
    };
    let n = 20_000;
    let params: Vec<RowParams> = (0..n).map(|_| RowParams { ..p }).collect();
    let logits: Vec<f32> = (0..n).flat_map(|_| small.clone()).collect();
    let seeds: Vec<u64> = (0..n as u64).map(|i| i * 7919 + 1).collect();
    let toks = run_sampler(ctx, &logits, small.len(), &params, &seeds, &vec![3u64; n]);
    let mut hist = vec![0f64; small.len()];
    for &t in &toks {
        hist[t as usize] += 1.0 / n as f64;
    }
    let want = kept_distribution(&small, &p);
    let tv: f64 = hist
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .sum::<f64>()
        / 2.0;
    ctx.rows.push((
        "sample_tokens".into(),
        "20k draws: total variation vs exact".into(),
        tv,
        0.02,
        tv <= 0.02,
    ));
}
