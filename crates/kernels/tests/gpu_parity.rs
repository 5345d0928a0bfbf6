//! GPU op parity: every kernel against a simple f32 CPU reference on random inputs (outputs
//! poisoned with NaN first), NMSE thresholds per output dtype; prints a table last.
//! Needs a CUDA GPU and NVRTC: `cargo test -p arle-kernels --features gpu-tests` (run by
//! scripts/gpu-check.sh on the GPU machine).
#![cfg(feature = "gpu-tests")]

#[path = "gpu/common.rs"]
mod gpu_common;
#[path = "gpu/attention.rs"]
mod gpu_ops_attention;
#[path = "gpu/misc.rs"]
mod gpu_ops_misc;
#[path = "gpu/sampling.rs"]
mod gpu_ops_sampling;

#[test]
fn gpu_op_parity() {
    let mut ctx = gpu_common::Ctx::new();
    println!(
        "arch {}, sources compiled this run: {}",
        ctx.rt.arch(),
        ctx.rt.compiled_sources()
    );
    gpu_ops_misc::elementwise(&mut ctx);
    gpu_ops_misc::norms(&mut ctx);
    gpu_ops_misc::gemv(&mut ctx);
    gpu_ops_attention::kv_append(&mut ctx);
    gpu_ops_attention::decode(&mut ctx, 2, &[1, 17, 33, 5000], 512, "split-K, long ctx");
    gpu_ops_attention::decode(&mut ctx, 8, &[16, 31, 7], 8192, "1 partition, MHA");
    gpu_ops_attention::prefill(&mut ctx, &[(0, 1), (20, 7), (3, 33), (150, 100)]);
    gpu_ops_misc::linear_attention(&mut ctx);
    gpu_ops_sampling::routing_and_logprobs(&mut ctx);
    gpu_ops_sampling::sampling(&mut ctx);
    ctx.finish();
}
