//! GPU attention kernels: tensor-core prefill and GQA decode parity (random inputs, outputs
//! poisoned with NaN, NMSE thresholds, table printed last), plus an ignored micro-benchmark.
//! Needs a CUDA GPU and NVRTC. scripts/gpu-build.sh ships this binary as `.gpu/gpu_attention`;
//! scripts/gpu-check.sh runs its parity test; the benchmark runs with
//!   .gpu/gpu_attention --ignored --nocapture gpu_attention_bench
//! (with cargo: `cargo test -p arle-kernels --release --features gpu-tests --test gpu_attention
//! -- --ignored --nocapture`).
#![cfg(feature = "gpu-tests")]

#[path = "gpu/attention_bench.rs"]
mod gpu_attention_bench;
#[path = "gpu/attention_mma.rs"]
mod gpu_attention_mma;
#[allow(dead_code)]
#[path = "gpu/common.rs"]
mod gpu_common;

#[test]
fn gpu_attention_parity() {
    let mut ctx = gpu_common::Ctx::new();
    println!("arch {}", ctx.rt.arch());
    gpu_attention_mma::prefill_matrix(&mut ctx);
    gpu_attention_mma::decode_matrix(&mut ctx);
    ctx.finish();
}

#[test]
#[ignore = "micro-benchmark: run on the GPU machine with --ignored --nocapture"]
fn gpu_attention_bench() {
    let mut ctx = gpu_common::Ctx::new();
    gpu_attention_bench::run(&mut ctx);
}
