//! Tensor-core prefill (`paged_attn_prefill_mma_bf16`) and GQA-grouped decode
//! (`paged_attn_decode_gqa_bf16`) vs an f64 CPU reference and vs the kernels they replace, over
//! head_dim 64/128 (decode also 16/256), GQA ratios 1/4/8 (decode also 12, 16: several head
//! chunks per kv head), query lengths 1..300 after 0..1000 cached tokens, several sequences per
//! launch, random shared pages, odd lengths, strided and unaligned q rows.
#![allow(dead_code)]
#![allow(clippy::needless_range_loop)]

use arle_kernels::cudarc::driver::CudaSlice;
use arle_kernels::ops::attention::{
    self, AttentionShape, DecodeKernel, DecodeWorkspace, KvCacheShape, PrefillKernel,
};
use half::bf16;
use rand::Rng;

use crate::gpu_common::Ctx;

const PAGE: usize = 16;

/// Random paged K/V for sequences of `lens` keys (host f32 copies + device bf16).
pub struct PagedKv {
    pub cache: KvCacheShape,
    pub k: Vec<f32>,
    pub v: Vec<f32>,
    pub tables: Vec<i32>, // [n_seqs, max_pages]
    pub max_pages: usize,
    pub dk: CudaSlice<bf16>,
    pub dv: CudaSlice<bf16>,
}

/// Pages are drawn at random from a pool smaller than the total need, so pages repeat within and
/// across sequences; sequences 0 and 1 share their first page explicitly.
pub fn paged_kv(ctx: &mut Ctx, n_kv: usize, d: usize, lens: &[usize]) -> PagedKv {
    let max_pages = lens
        .iter()
        .map(|l| l.div_ceil(PAGE))
        .max()
        .unwrap_or(1)
        .max(1);
    let num_pages = 96;
    let cache = KvCacheShape {
        num_pages,
        page_size: PAGE,
        n_kv_heads: n_kv,
        head_dim: d,
    };
    let (k, kb) = ctx.bf16_data(cache.numel(), 1.0);
    let (v, vb) = ctx.bf16_data(cache.numel(), 1.0);
    let mut tables: Vec<i32> = (0..lens.len() * max_pages)
        .map(|_| ctx.rng.random_range(0..num_pages as i32))
        .collect();
    if lens.len() > 1 {
        tables[max_pages] = tables[0];
    }
    let (dk, dv) = (ctx.up(&kb), ctx.up(&vb));
    PagedKv {
        cache,
        k,
        v,
        tables,
        max_pages,
        dk,
        dv,
    }
}

/// out[h*d..] for query `qrow` ([n_heads * d]) of sequence `seq` seeing keys 0..=pos (f64).
fn attend(
    p: &PagedKv,
    seq: usize,
    qrow: &[f32],
    pos: usize,
    n_heads: usize,
    scale: f64,
) -> Vec<f32> {
    let (d, n_kv) = (p.cache.head_dim, p.cache.n_kv_heads);
    let group = n_heads / n_kv;
    let row = |j: usize, g: usize| {
        let page = p.tables[seq * p.max_pages + j / PAGE] as usize;
        ((page * PAGE + j % PAGE) * n_kv + g) * d
    };
    let mut out = vec![0.0f32; n_heads * d];
    for h in 0..n_heads {
        let g = h / group;
        let q = &qrow[h * d..(h + 1) * d];
        let scores: Vec<f64> = (0..=pos)
            .map(|j| {
                let kr = &p.k[row(j, g)..row(j, g) + d];
                q.iter()
                    .zip(kr)
                    .map(|(a, b)| *a as f64 * *b as f64)
                    .sum::<f64>()
                    * scale
            })
            .collect();
        let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = scores.iter().map(|s| (s - m).exp()).collect();
        let z: f64 = e.iter().sum();
        let mut acc = vec![0.0f64; d];
        for (j, w) in e.iter().enumerate() {
            let vr = &p.v[row(j, g)..row(j, g) + d];
            for (a, x) in acc.iter_mut().zip(vr) {
                *a += w * *x as f64;
            }
        }
        for (o, a) in out[h * d..(h + 1) * d].iter_mut().zip(acc) {
            *o = (a / z) as f32;
        }
    }
    out
}

/// One prefill launch with `kernel`; returns the output (poisoned first).
#[allow(clippy::too_many_arguments)]
fn run_prefill(
    ctx: &mut Ctx,
    kernel: PrefillKernel,
    p: &PagedKv,
    dq: &CudaSlice<bf16>,
    cu: &[i32],
    lens: &[usize],
    n_heads: usize,
    q_stride: usize,
    scale: f32,
) -> Vec<f32> {
    let d = p.cache.head_dim;
    let n_seqs = lens.len();
    let n_tokens = cu[n_seqs] as usize;
    let seq_lens: Vec<i32> = lens.iter().map(|&l| l as i32).collect();
    let (dt, dcu, dl) = (ctx.up(&p.tables), ctx.up(cu), ctx.up(&seq_lens));
    let mut out = ctx.poisoned_bf16(n_tokens * n_heads * d);
    let max_q = (0..n_seqs)
        .map(|s| (cu[s + 1] - cu[s]) as usize)
        .max()
        .unwrap_or(1);
    let shape = AttentionShape {
        n_seqs,
        n_heads,
        q_stride,
        max_pages: p.max_pages,
        scale,
    };
    attention::paged_attention_prefill_with(
        &ctx.rt,
        kernel,
        &dq.as_view(),
        &p.dk.as_view(),
        &p.dv.as_view(),
        &dt.as_view(),
        &dcu.as_view(),
        &dl.as_view(),
        &mut out.as_view_mut(),
        n_tokens,
        max_q.max(1),
        shape,
        p.cache,
    )
    .expect("prefill launch");
    ctx.down_bf16(&out)
}

/// `cases`: (past tokens, new tokens) per sequence. `q_pad` extra elements per q row (odd: the
/// kernel's unaligned q path). `q_scale` sharpens the softmax.
#[allow(clippy::too_many_arguments)]
pub fn prefill_case(
    ctx: &mut Ctx,
    d: usize,
    n_kv: usize,
    ratio: usize,
    cases: &[(usize, usize)],
    q_pad: usize,
    q_scale: f32,
) {
    let n_heads = n_kv * ratio;
    let lens: Vec<usize> = cases.iter().map(|(p, q)| p + q).collect();
    let p = paged_kv(ctx, n_kv, d, &lens);
    let n_tokens: usize = cases.iter().map(|c| c.1).sum();
    let q_stride = n_heads * d + q_pad;
    let (q, qb) = ctx.bf16_data(n_tokens * q_stride, q_scale);
    let dq = ctx.up(&qb);
    let mut cu = vec![0i32];
    for c in cases {
        cu.push(cu[cu.len() - 1] + c.1 as i32);
    }
    let scale = 1.0 / (d as f32).sqrt();
    let mma = run_prefill(
        ctx,
        PrefillKernel::Mma,
        &p,
        &dq,
        &cu,
        &lens,
        n_heads,
        q_stride,
        scale,
    );
    let simt = run_prefill(
        ctx,
        PrefillKernel::Simt,
        &p,
        &dq,
        &cu,
        &lens,
        n_heads,
        q_stride,
        scale,
    );
    // (token, sequence, position) jobs, spread over threads (the f64 reference is the slow part).
    let jobs: Vec<(usize, usize, usize)> = cases
        .iter()
        .enumerate()
        .flat_map(|(s, &(past, q_len))| (0..q_len).map(move |i| (s, past + i, i)))
        .map(|(s, pos, i)| (cu[s] as usize + i, s, pos))
        .collect();
    let row_len = n_heads * d;
    let mut want = vec![0.0f32; n_tokens * row_len];
    let threads = std::thread::available_parallelism().map_or(4, |n| n.get());
    let per = jobs.len().div_ceil(threads).max(1);
    let results: Vec<Vec<(usize, Vec<f32>)>> = std::thread::scope(|sc| {
        let handles: Vec<_> = jobs
            .chunks(per)
            .map(|chunk| {
                let (p, q) = (&p, &q);
                sc.spawn(move || {
                    chunk
                        .iter()
                        .map(|&(t, s, pos)| {
                            let qrow = &q[t * q_stride..t * q_stride + row_len];
                            (t, attend(p, s, qrow, pos, n_heads, scale as f64))
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("reference thread"))
            .collect()
    });
    for (t, o) in results.into_iter().flatten() {
        want[t * row_len..(t + 1) * row_len].copy_from_slice(&o);
    }
    let short: Vec<_> = cases.iter().take(4).collect();
    let label = format!(
        "d{d} {n_heads}/{n_kv}h {} seqs {short:?}{} pad{q_pad} qs{q_scale}",
        cases.len(),
        if cases.len() > 4 { ".." } else { "" }
    );
    ctx.check("prefill_mma vs ref", &label, &mma, &want, 1e-4);
    ctx.check("prefill_mma vs simt", &label, &mma, &simt, 1e-4);
    ctx.check("prefill_simt vs ref", &label, &simt, &want, 1e-4);
}

/// The prefill matrix: head_dim x GQA ratio x (fixed edge cases + random cases).
pub fn prefill_matrix(ctx: &mut Ctx) {
    let edges: &[(usize, usize)] = &[
        (0, 1),
        (0, 64),
        (0, 65),
        (5, 300),
        (1000, 17),
        (63, 1),
        (64, 129),
        (977, 250),
    ];
    for d in [64, 128] {
        for ratio in [1, 4, 8] {
            prefill_case(ctx, d, 2, ratio, edges, 0, 1.0);
            let random: Vec<(usize, usize)> = (0..5)
                .map(|_| {
                    (
                        ctx.rng.random_range(0..=1000),
                        ctx.rng.random_range(1..=300),
                    )
                })
                .collect();
            prefill_case(ctx, d, 2, ratio, &random, 2 * 2 * d, 1.0);
        }
    }
    // Unaligned q rows (scalar q path), sharper softmax, one long single sequence.
    prefill_case(ctx, 128, 2, 4, &[(31, 200), (0, 7)], 1, 1.0);
    prefill_case(ctx, 64, 1, 8, &[(500, 300), (3, 3)], 0, 6.0);
    prefill_case(ctx, 128, 1, 1, &[(0, 1000)], 0, 2.0);
}

/// One decode launch with `kernel`.
#[allow(clippy::too_many_arguments)]
fn run_decode(
    ctx: &mut Ctx,
    kernel: DecodeKernel,
    p: &PagedKv,
    tables: &[i32], // [n_seqs, p.max_pages]
    qb: &[bf16],
    lens: &[usize],
    n_heads: usize,
    part_tokens: usize,
) -> Vec<f32> {
    let d = p.cache.head_dim;
    let n_seqs = lens.len();
    let seq_lens: Vec<i32> = lens.iter().map(|&l| l as i32).collect();
    let (dq, dt, dl) = (
        ctx.up(qb),
        ctx.up(&tables[..n_seqs * p.max_pages]),
        ctx.up(&seq_lens),
    );
    let mut out = ctx.poisoned_bf16(n_seqs * n_heads * d);
    let max_ctx = *lens.iter().max().unwrap_or(&1);
    let mut ws = DecodeWorkspace::new(ctx.stream(), n_seqs, n_heads, d, max_ctx, part_tokens)
        .expect("workspace");
    let shape = AttentionShape {
        n_seqs,
        n_heads,
        q_stride: n_heads * d,
        max_pages: p.max_pages,
        scale: 1.0 / (d as f32).sqrt(),
    };
    attention::paged_attention_decode_with(
        &ctx.rt,
        kernel,
        &dq.as_view(),
        &p.dk.as_view(),
        &p.dv.as_view(),
        &dt.as_view(),
        &dl.as_view(),
        &mut out.as_view_mut(),
        &mut ws,
        shape,
        p.cache,
    )
    .expect("decode launch");
    ctx.down_bf16(&out)
}

pub fn decode_case(
    ctx: &mut Ctx,
    d: usize,
    n_kv: usize,
    ratio: usize,
    lens: &[usize],
    part_tokens: usize,
) {
    let n_heads = n_kv * ratio;
    let p = paged_kv(ctx, n_kv, d, lens);
    let n_seqs = lens.len();
    let (q, qb) = ctx.bf16_data(n_seqs * n_heads * d, 1.0);
    let t = &p.tables;
    let auto = run_decode(
        ctx,
        DecodeKernel::Auto,
        &p,
        t,
        &qb,
        lens,
        n_heads,
        part_tokens,
    );
    let generic = run_decode(
        ctx,
        DecodeKernel::Generic,
        &p,
        t,
        &qb,
        lens,
        n_heads,
        part_tokens,
    );
    let scale = 1.0 / (d as f64).sqrt();
    let mut want = Vec::with_capacity(n_seqs * n_heads * d);
    for s in 0..n_seqs {
        let o = attend(
            &p,
            s,
            &q[s * n_heads * d..(s + 1) * n_heads * d],
            lens[s] - 1,
            n_heads,
            scale,
        );
        want.extend_from_slice(&o);
    }
    let label = format!("d{d} {n_heads}/{n_kv}h lens {lens:?} pt{part_tokens}");
    ctx.check("decode_gqa vs ref", &label, &auto, &want, 1e-4);
    ctx.check("decode_gqa vs generic", &label, &auto, &generic, 1e-4);
    // Batch invariance: the last sequence alone gives the same bits.
    let last = n_seqs - 1;
    let alone = run_decode(
        ctx,
        DecodeKernel::Auto,
        &p,
        &p.tables[last * p.max_pages..],
        &qb[last * n_heads * d..],
        &lens[last..],
        n_heads,
        part_tokens,
    );
    ctx.property(
        "decode_gqa",
        &format!("{label}: same bits alone"),
        alone == auto[last * n_heads * d..],
    );
}

pub fn decode_matrix(ctx: &mut Ctx) {
    let lens: &[usize] = &[1, 17, 64, 65, 300, 1000, 1536];
    for d in [64, 128] {
        for ratio in [1, 4, 8] {
            decode_case(ctx, d, 2, ratio, lens, 512);
        }
    }
    decode_case(ctx, 128, 2, 12, &[33, 1200, 7], 512); // 2 head chunks, the second partial
    decode_case(ctx, 128, 1, 16, &[1535, 2, 640], 512);
    decode_case(ctx, 16, 2, 4, &[5, 1000], 512);
    decode_case(ctx, 256, 2, 2, &[5, 1000, 129], 512);
    decode_case(ctx, 128, 2, 4, &[1536, 100], 8192); // cap 512 inside, slots >= 32
    decode_case(ctx, 96, 2, 4, &[700, 3], 512); // generic fallback for both
}
