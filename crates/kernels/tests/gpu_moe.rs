//! GPU parity of the routed MoE experts (`cu/moe_experts.cu`, launchers in `ops::moe`) against an
//! f32 CPU reference; its own test binary so it runs independently of the other op tables.
//! Needs a CUDA GPU and NVRTC: `cargo test -p arle-kernels --features gpu-tests --test gpu_moe`.
#![cfg(feature = "gpu-tests")]

#[path = "gpu/common.rs"]
#[allow(dead_code)] // shared helpers; this binary uses a subset
mod gpu_common;
#[path = "gpu/moe.rs"]
mod gpu_ops_moe;

#[test]
fn gpu_moe_parity() {
    let mut ctx = gpu_common::Ctx::new();
    println!(
        "arch {}, sources compiled this run: {}",
        ctx.rt.arch(),
        ctx.rt.compiled_sources()
    );
    gpu_ops_moe::moe_experts(&mut ctx);
    ctx.finish();
}
