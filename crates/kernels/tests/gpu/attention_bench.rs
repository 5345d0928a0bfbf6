//! Micro-benchmark of the attention kernels (CUDA events; prints a table, asserts nothing but
//! launch success): prefill of one 4096-token sequence (32 heads, 8 kv heads, head_dim 128,
//! causal) on the tensor-core and CUDA-core kernels, in TFLOP/s; decode at context 4096 for
//! batch 1 and 64 on the GQA and generic kernels, in GB/s of K/V streamed. Ceilings: a measured
//! device-to-device copy (read + write bytes) and the H100 SXM dense bf16 datasheet rate.
//! Method: a long copy fills the queue before the start event (so host launch overhead does not
//! count), `reps` launches run between two events, the median of 5 such runs is reported. Decode
//! rotates over 64 disjoint sequences (1 GiB of K/V) so batch 1 does not run from L2.

use arle_kernels::cudarc::driver::sys::CUevent_flags;
use arle_kernels::cudarc::driver::CudaSlice;
use arle_kernels::ops::attention::{
    self, AttentionShape, DecodeKernel, DecodeWorkspace, KvCacheShape, PrefillKernel,
};
use half::bf16;
use rand::seq::SliceRandom;

use crate::gpu_common::Ctx;

const H100_BF16_DENSE_TFLOPS: f64 = 989.0;
const HEADS: usize = 32;
const KV_HEADS: usize = 8;
const D: usize = 128;
const CTX: usize = 4096;
const PAGE: usize = 16;
const SEQS: usize = 64;

/// Device buffer of `n` bf16 filled with a repeated random block (not zeros).
fn filled(ctx: &mut Ctx, n: usize) -> CudaSlice<bf16> {
    let (_, block) = ctx.bf16_data(1 << 20, 1.0);
    let host: Vec<bf16> = block.iter().cycle().take(n).copied().collect();
    ctx.up(&host)
}

/// Median milliseconds per call of `f(i)` over 5 runs of `reps` calls, queue pre-filled.
fn time_ms(
    ctx: &Ctx,
    filler: &mut (CudaSlice<bf16>, CudaSlice<bf16>),
    reps: usize,
    mut f: impl FnMut(usize),
) -> f64 {
    let stream = ctx.stream();
    for i in 0..2 {
        f(i); // warm-up
    }
    stream.synchronize().expect("sync");
    let mut runs = Vec::new();
    for _ in 0..5 {
        for _ in 0..4 {
            stream
                .memcpy_dtod(&filler.0, &mut filler.1)
                .expect("filler copy");
        }
        let start = stream
            .record_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
            .expect("event");
        for i in 0..reps {
            f(i);
        }
        let end = stream
            .record_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
            .expect("event");
        let ms = start.elapsed_ms(&end).expect("elapsed") as f64;
        runs.push(ms / reps as f64);
    }
    runs.sort_by(|a, b| a.total_cmp(b));
    runs[2]
}

pub fn run(ctx: &mut Ctx) {
    let copy_elems = 1usize << 29; // 1 GiB of bf16
    let mut filler = (filled(ctx, copy_elems), ctx.zeros::<bf16>(copy_elems));
    let copy_ms = {
        let mut dst = ctx.zeros::<bf16>(copy_elems);
        let mut small = (ctx.zeros::<bf16>(1 << 20), ctx.zeros::<bf16>(1 << 20));
        let (src, stream) = (&filler.0, ctx.stream().clone());
        time_ms(ctx, &mut small, 5, |_| {
            stream.memcpy_dtod(src, &mut dst).expect("copy");
        })
    };
    let copy_gbs = 2.0 * (copy_elems * 2) as f64 / (copy_ms * 1e-3) / 1e9;
    let mut rows: Vec<String> = Vec::new();
    rows.push(format!(
        "{:<44} {:>10.1} us {:>9.0} GB/s  (ceiling for decode)",
        "device copy 1 GiB (read+write)",
        copy_ms * 1e3,
        copy_gbs
    ));

    // KV pool: SEQS disjoint sequences of CTX tokens, pages shuffled.
    let pages_per_seq = CTX / PAGE;
    let cache = KvCacheShape {
        num_pages: SEQS * pages_per_seq,
        page_size: PAGE,
        n_kv_heads: KV_HEADS,
        head_dim: D,
    };
    let (dk, dv) = (filled(ctx, cache.numel()), filled(ctx, cache.numel()));
    let mut pages: Vec<i32> = (0..cache.num_pages as i32).collect();
    pages.shuffle(&mut ctx.rng);
    let tables = ctx.up(&pages); // [SEQS, pages_per_seq]
    let one_tables: Vec<CudaSlice<i32>> = pages.chunks(pages_per_seq).map(|c| ctx.up(c)).collect();

    // Prefill: one sequence of CTX new tokens.
    {
        let q = filled(ctx, CTX * HEADS * D);
        let mut out = ctx.zeros::<bf16>(CTX * HEADS * D);
        let (cu, sl) = (ctx.up(&[0i32, CTX as i32]), ctx.up(&[CTX as i32]));
        let shape = AttentionShape {
            n_seqs: 1,
            n_heads: HEADS,
            q_stride: HEADS * D,
            max_pages: pages_per_seq,
            scale: 1.0 / (D as f32).sqrt(),
        };
        let flops = 4.0 * (HEADS * D) as f64 * (CTX * (CTX + 1) / 2) as f64;
        for (kernel, reps) in [(PrefillKernel::Mma, 20), (PrefillKernel::Simt, 3)] {
            let table = &one_tables[0];
            let ms = time_ms(ctx, &mut filler, reps, |_| {
                attention::paged_attention_prefill_with(
                    &ctx.rt,
                    kernel,
                    &q.as_view(),
                    &dk.as_view(),
                    &dv.as_view(),
                    &table.as_view(),
                    &cu.as_view(),
                    &sl.as_view(),
                    &mut out.as_view_mut(),
                    CTX,
                    CTX,
                    shape,
                    cache,
                )
                .expect("prefill");
            });
            let tflops = flops / (ms * 1e-3) / 1e12;
            rows.push(format!(
                "{:<44} {:>10.1} us {:>9.1} TFLOP/s ({:.1}% of {H100_BF16_DENSE_TFLOPS} dense)",
                format!("prefill {kernel:?} 1x{CTX} causal {HEADS}/{KV_HEADS}h d{D}"),
                ms * 1e3,
                tflops,
                100.0 * tflops / H100_BF16_DENSE_TFLOPS
            ));
        }
    }

    // Decode at context CTX: batch 1 (rotating over the SEQS sequences) and batch SEQS.
    let q = filled(ctx, SEQS * HEADS * D);
    let mut out = ctx.zeros::<bf16>(SEQS * HEADS * D);
    let mut ws = DecodeWorkspace::new(ctx.stream(), SEQS, HEADS, D, CTX, 512).expect("ws");
    let lens = ctx.up(&vec![CTX as i32; SEQS]);
    let kv_bytes_per_seq = (CTX * KV_HEADS * D * 2 * 2) as f64;
    for batch in [1usize, SEQS] {
        for kernel in [DecodeKernel::Auto, DecodeKernel::Generic] {
            let shape = AttentionShape {
                n_seqs: batch,
                n_heads: HEADS,
                q_stride: HEADS * D,
                max_pages: pages_per_seq,
                scale: 1.0 / (D as f32).sqrt(),
            };
            let reps = if batch == 1 { 64 } else { 10 };
            let ms = time_ms(ctx, &mut filler, reps, |i| {
                let t = if batch == 1 {
                    &one_tables[i % SEQS]
                } else {
                    &tables
                };
                attention::paged_attention_decode_with(
                    &ctx.rt,
                    kernel,
                    &q.as_view(),
                    &dk.as_view(),
                    &dv.as_view(),
                    &t.as_view(),
                    &lens.as_view(),
                    &mut out.as_view_mut(),
                    &mut ws,
                    shape,
                    cache,
                )
                .expect("decode");
            });
            let gbs = batch as f64 * kv_bytes_per_seq / (ms * 1e-3) / 1e9;
            rows.push(format!(
                "{:<44} {:>10.1} us {:>9.0} GB/s ({:.0}% of copy)",
                format!("decode {kernel:?} batch {batch} ctx {CTX} {HEADS}/{KV_HEADS}h d{D}"),
                ms * 1e3,
                gbs,
                100.0 * gbs / copy_gbs
            ));
        }
    }
    println!("\nattention micro-benchmark ({})", ctx.rt.arch());
    for r in rows {
        println!("BENCH {r}"); // scripts/gpu-check.sh collects BENCH lines into its summary
    }
}
