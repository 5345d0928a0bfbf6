//! GPU parity of the chunked Gated DeltaNet prefill (`cu/gdn_chunked.cu`, launcher
//! `ops::gdn_chunked`) against an f32 CPU reference of the chunked form and against the
//! recurrent prefill kernel; its own test binary so it runs independently of the other op tables.
//! Needs a CUDA GPU and NVRTC: `cargo test -p arle-kernels --features gpu-tests --test gpu_gdn_chunked`.
#![cfg(feature = "gpu-tests")]

#[path = "gpu/common.rs"]
#[allow(dead_code)] // shared helpers; this binary uses a subset
mod gpu_common;
#[path = "gpu/gdn_chunked.rs"]
mod gpu_ops_gdn_chunked;

#[test]
fn gpu_gdn_chunked_parity() {
    let mut ctx = gpu_common::Ctx::new();
    println!(
        "arch {}, sources compiled this run: {}",
        ctx.rt.arch(),
        ctx.rt.compiled_sources()
    );
    gpu_ops_gdn_chunked::gdn_chunked(&mut ctx);
    ctx.finish();
}
