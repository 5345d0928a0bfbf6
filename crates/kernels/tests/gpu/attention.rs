//! Paged KV append and paged attention (decode split-K, varlen prefill) vs CPU references.
#![allow(dead_code)]
#![allow(clippy::needless_range_loop)]

use arle_kernels::ops::attention::{self, AttentionShape, DecodeWorkspace, KvCacheShape};
use rand::Rng;

use crate::gpu_common::{round_bf, Ctx};

const N_HEADS: usize = 8;
const D: usize = 128;
const PAGE: usize = 16;

struct Paged {
    cache: KvCacheShape,
    k: Vec<f32>,
    v: Vec<f32>,
    tables: Vec<i32>, // [n_seqs, max_pages]
    max_pages: usize,
}

/// Random caches; sequence tables draw random pages (so pages are shared between and within
/// sequences) and sequences 0 and 1 share their first page explicitly.
fn paged(ctx: &mut Ctx, n_kv: usize, lens: &[usize]) -> Paged {
    let num_pages = 400;
    let cache = KvCacheShape {
        num_pages,
        page_size: PAGE,
        n_kv_heads: n_kv,
        head_dim: D,
    };
    let (k, _) = ctx.bf16_data(cache.numel(), 1.0);
    let (v, _) = ctx.bf16_data(cache.numel(), 1.0);
    let max_pages = lens
        .iter()
        .map(|l| l.div_ceil(PAGE))
        .max()
        .unwrap_or(1)
        .max(1);
    let mut tables: Vec<i32> = (0..lens.len() * max_pages)
        .map(|_| ctx.rng.random_range(0..num_pages as i32))
        .collect();
    if lens.len() > 1 {
        tables[max_pages] = tables[0];
    }
    Paged {
        cache,
        k,
        v,
        tables,
        max_pages,
    }
}

fn kv_row(p: &Paged, seq: usize, j: usize, g: usize) -> usize {
    let page = p.tables[seq * p.max_pages + j / PAGE] as usize;
    ((page * PAGE + j % PAGE) * p.cache.n_kv_heads + g) * D
}

/// out[h] for one query vector at position pos (keys 0..=pos).
fn attend_ref(p: &Paged, seq: usize, q: &[f32], pos: usize, n_heads: usize, out: &mut [f32]) {
    let group = n_heads / p.cache.n_kv_heads;
    let scale = 1.0 / (D as f32).sqrt();
    for h in 0..n_heads {
        let g = h / group;
        let scores: Vec<f32> = (0..=pos)
            .map(|j| {
                let kr = kv_row(p, seq, j, g);
                (0..D).map(|d| q[h * D + d] * p.k[kr + d]).sum::<f32>() * scale
            })
            .collect();
        let m = scores.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let e: Vec<f32> = scores.iter().map(|s| (s - m).exp()).collect();
        let z: f32 = e.iter().sum();
        for d in 0..D {
            out[h * D + d] = (0..=pos)
                .map(|j| e[j] * p.v[kv_row(p, seq, j, g) + d])
                .sum::<f32>()
                / z;
        }
    }
}

pub fn kv_append(ctx: &mut Ctx) {
    let n_kv = 2;
    let p = paged(ctx, n_kv, &[1]);
    let width = n_kv * D;
    let n_tokens = 37;
    let stride = width + 64; // K/V rows inside a wider fused row
    let (kx, kb) = ctx.bf16_data(n_tokens * stride, 1.0);
    let (vx, vb) = ctx.bf16_data(n_tokens * stride, 1.0);
    let mut slots: Vec<i32> = (0..n_tokens as i32).map(|t| t * 13 % 6400).collect();
    slots[5] = -1; // padding token
    let kc_host: Vec<half::bf16> = p.k.iter().map(|&x| half::bf16::from_f32(x)).collect();
    let vc_host: Vec<half::bf16> = p.v.iter().map(|&x| half::bf16::from_f32(x)).collect();
    let (dk, dv, ds) = (ctx.up(&kb), ctx.up(&vb), ctx.up(&slots));
    let (mut kc, mut vc) = (ctx.up(&kc_host), ctx.up(&vc_host));
    attention::paged_kv_append(
        &ctx.rt,
        &dk.as_view(),
        &dv.as_view(),
        &ds.as_view(),
        &mut kc.as_view_mut(),
        &mut vc.as_view_mut(),
        p.cache,
        (stride, stride),
    )
    .expect("kv append");
    let (mut want_k, mut want_v) = (p.k.clone(), p.v.clone());
    for (t, &s) in slots.iter().enumerate() {
        if s >= 0 {
            let s = s as usize;
            want_k[s * width..(s + 1) * width].copy_from_slice(&kx[t * stride..t * stride + width]);
            want_v[s * width..(s + 1) * width].copy_from_slice(&vx[t * stride..t * stride + width]);
        }
    }
    let (got_k, got_v) = (ctx.down_bf16(&kc), ctx.down_bf16(&vc));
    ctx.check(
        "paged_kv_append",
        "37 tok, strided, 1 padding slot",
        &got_k,
        &want_k,
        0.0,
    );
    ctx.check("paged_kv_append", "values", &got_v, &want_v, 0.0);
}

pub fn decode(ctx: &mut Ctx, n_kv: usize, lens: &[usize], part_tokens: usize, label: &str) {
    let p = paged(ctx, n_kv, lens);
    let n_seqs = lens.len();
    let (q, qb) = ctx.bf16_data(n_seqs * N_HEADS * D, 1.0);
    let seq_lens: Vec<i32> = lens.iter().map(|&l| l as i32).collect();
    let kc: Vec<half::bf16> = p.k.iter().map(|&x| half::bf16::from_f32(x)).collect();
    let vc: Vec<half::bf16> = p.v.iter().map(|&x| half::bf16::from_f32(x)).collect();
    let (dq, dk, dv) = (ctx.up(&qb), ctx.up(&kc), ctx.up(&vc));
    let (dt, dl) = (ctx.up(&p.tables), ctx.up(&seq_lens));
    let mut out = ctx.poisoned_bf16(n_seqs * N_HEADS * D);
    let max_ctx = *lens.iter().max().unwrap_or(&1);
    let mut ws = DecodeWorkspace::new(ctx.stream(), n_seqs, N_HEADS, D, max_ctx, part_tokens)
        .expect("workspace");
    let shape = AttentionShape {
        n_seqs,
        n_heads: N_HEADS,
        q_stride: N_HEADS * D,
        max_pages: p.max_pages,
        scale: 1.0 / (D as f32).sqrt(),
    };
    attention::paged_attention_decode(
        &ctx.rt,
        &dq.as_view(),
        &dk.as_view(),
        &dv.as_view(),
        &dt.as_view(),
        &dl.as_view(),
        &mut out.as_view_mut(),
        &mut ws,
        shape,
        p.cache,
    )
    .expect("decode");
    let mut want = vec![0.0; n_seqs * N_HEADS * D];
    for s in 0..n_seqs {
        let o = &mut want[s * N_HEADS * D..(s + 1) * N_HEADS * D];
        attend_ref(
            &p,
            s,
            &q[s * N_HEADS * D..(s + 1) * N_HEADS * D],
            lens[s] - 1,
            N_HEADS,
            o,
        );
    }
    let got = ctx.down_bf16(&out);
    let case = format!("{label} lens {lens:?} kv {n_kv}");
    ctx.check("paged_attention_decode", &case, &got, &want, 1e-4);
    // Batch invariance of the decode kernel: the last sequence alone gives the same bits.
    let last = n_seqs - 1;
    let one = AttentionShape { n_seqs: 1, ..shape };
    let dq1 = ctx.up(&qb[last * N_HEADS * D..]);
    let dt1 = ctx.up(&p.tables[last * p.max_pages..]);
    let dl1 = ctx.up(&seq_lens[last..]);
    let mut out1 = ctx.poisoned_bf16(N_HEADS * D);
    attention::paged_attention_decode(
        &ctx.rt,
        &dq1.as_view(),
        &dk.as_view(),
        &dv.as_view(),
        &dt1.as_view(),
        &dl1.as_view(),
        &mut out1.as_view_mut(),
        &mut ws,
        one,
        p.cache,
    )
    .expect("decode alone");
    let alone = ctx.down_bf16(&out1);
    ctx.property(
        "paged_attention_decode",
        "same bits alone vs in batch",
        alone == got[last * N_HEADS * D..],
    );
}

/// `cases`: (past tokens, new tokens) per sequence.
pub fn prefill(ctx: &mut Ctx, cases: &[(usize, usize)]) {
    let n_kv = 2;
    let lens: Vec<usize> = cases.iter().map(|(p, q)| p + q).collect();
    let p = paged(ctx, n_kv, &lens);
    let n_seqs = cases.len();
    let n_tokens: usize = cases.iter().map(|c| c.1).sum();
    let q_stride = N_HEADS * D + 2 * n_kv * D; // q inside a fused qkv row
    let (q, qb) = ctx.bf16_data(n_tokens * q_stride, 1.0);
    let mut cu = vec![0i32];
    for c in cases {
        cu.push(cu[cu.len() - 1] + c.1 as i32);
    }
    let seq_lens: Vec<i32> = lens.iter().map(|&l| l as i32).collect();
    let kc: Vec<half::bf16> = p.k.iter().map(|&x| half::bf16::from_f32(x)).collect();
    let vc: Vec<half::bf16> = p.v.iter().map(|&x| half::bf16::from_f32(x)).collect();
    let (dq, dk, dv) = (ctx.up(&qb), ctx.up(&kc), ctx.up(&vc));
    let (dt, dcu, dl) = (ctx.up(&p.tables), ctx.up(&cu), ctx.up(&seq_lens));
    let mut out = ctx.poisoned_bf16(n_tokens * N_HEADS * D);
    let shape = AttentionShape {
        n_seqs,
        n_heads: N_HEADS,
        q_stride,
        max_pages: p.max_pages,
        scale: 1.0 / (D as f32).sqrt(),
    };
    let max_q = cases.iter().map(|c| c.1).max().unwrap_or(1);
    attention::paged_attention_prefill(
        &ctx.rt,
        &dq.as_view(),
        &dk.as_view(),
        &dv.as_view(),
        &dt.as_view(),
        &dcu.as_view(),
        &dl.as_view(),
        &mut out.as_view_mut(),
        n_tokens,
        max_q,
        shape,
        p.cache,
    )
    .expect("prefill");
    let mut want = vec![0.0; n_tokens * N_HEADS * D];
    for (s, &(past, q_len)) in cases.iter().enumerate() {
        for i in 0..q_len {
            let t = cu[s] as usize + i;
            let qrow: Vec<f32> = q[t * q_stride..t * q_stride + N_HEADS * D].to_vec();
            attend_ref(
                &p,
                s,
                &qrow,
                past + i,
                N_HEADS,
                &mut want[t * N_HEADS * D..(t + 1) * N_HEADS * D],
            );
        }
    }
    let got = ctx.down_bf16(&out);
    ctx.check(
        "paged_attention_prefill",
        &format!("(past,new) {cases:?}"),
        &got,
        &want,
        1e-4,
    );
    // The f32 reference rounded to bf16 bounds what a bf16 output can reach.
    let rounded: Vec<f32> = want.iter().map(|&x| round_bf(x)).collect();
    ctx.check(
        "paged_attention_prefill",
        "bf16-rounded ref vs ref (floor)",
        &rounded,
        &want,
        1e-4,
    );
}
