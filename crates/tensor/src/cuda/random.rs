//! Device fill of `--load-format dummy` weights (see arle-models' `dummy.rs` for the value
//! formula and `random.cu` for the kernel): a weight's bf16 device copy is generated on the GPU
//! instead of uploaded, so an 8B-parameter model is placed in about the time of one pass over its
//! bytes.
//!
//! Invariants: the device values equal the host weight's bf16 bytes bit for bit (same hash, same
//! exact f32 arithmetic, one round-to-nearest-even to bf16), so host reads of the weight agree
//! with what GPU ops use; the module is compiled (or read from the kernel disk cache) once per
//! device and kept for the process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use arle_kernels::cudarc::driver::{CudaFunction, PushKernelArg};
use arle_kernels::cudarc::nvrtc::Ptx;
use arle_kernels::{KernelCache, KernelSource, NvrtcToolchain};
use half::bf16;

use super::backend::grid_for;
use super::{backend, cuda_err, CudaBackend, GpuWeight};
use crate::{DType, Result, TensorError, Weight};

/// The fill kernel (see the `.cu` header).
pub const RANDOM: KernelSource = KernelSource {
    name: "tensor_random",
    code: include_str!("random.cu"),
    functions: &["dummy_fill_bf16"],
};

/// One tensor's stream: element `i` is `center + k(key, i) · 2⁻¹²`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DummyFill {
    pub key: u64,
    pub center: f32,
}

/// `host` (bf16 values of `fill`) with a device copy on GPU `ordinal` generated there.
/// `f32_output`: `linear` with it yields f32 rows (vocabulary projections).
pub fn with_dummy_gpu_copy(
    host: Weight,
    fill: DummyFill,
    ordinal: usize,
    f32_output: bool,
) -> Result<Weight> {
    if host.dtype() != DType::BF16 {
        return Err(TensorError::Invalid {
            op: "cuda::random::with_dummy_gpu_copy",
            detail: format!("host copy must be bf16, got {}", host.dtype().name()),
        });
    }
    let backend = backend(ordinal)?;
    let data = fill_bf16(&backend, host.elements(), fill)?;
    Ok(host.with_gpu(GpuWeight {
        backend,
        data,
        f32_output,
    }))
}

/// A fresh `[n]` bf16 device buffer holding stream `fill`.
pub fn fill_bf16(
    backend: &Arc<CudaBackend>,
    n: usize,
    fill: DummyFill,
) -> Result<arle_kernels::cudarc::driver::CudaSlice<bf16>> {
    const OP: &str = "dummy_fill_bf16";
    let f = function(backend)?;
    let stream = backend.stream();
    let mut out = stream.alloc_zeros::<bf16>(n.max(1)).map_err(cuda_err(OP))?;
    let n_i = i64::try_from(n).map_err(|_| TensorError::Invalid {
        op: OP,
        detail: format!("{n} elements exceed i64"),
    })?;
    let mut b = stream.launch_builder(&f);
    b.arg(&mut out).arg(&n_i).arg(&fill.key).arg(&fill.center);
    // SAFETY: argument types match the kernel signature (bf16*, long long, unsigned long long,
    // float); the grid-stride loop stays inside `n` elements of `out`.
    unsafe { b.launch(grid_for(n)) }.map_err(cuda_err(OP))?;
    Ok(out)
}

/// The fill kernel on `backend`'s device (compiled on first use).
fn function(backend: &CudaBackend) -> Result<CudaFunction> {
    static FUNCTIONS: OnceLock<Mutex<HashMap<usize, CudaFunction>>> = OnceLock::new();
    let map = FUNCTIONS.get_or_init(|| Mutex::new(HashMap::new()));
    let mut map = map.lock().map_err(|_| TensorError::Invalid {
        op: "cuda::random",
        detail: "kernel registry poisoned".into(),
    })?;
    if let Some(f) = map.get(&backend.ordinal()) {
        return Ok(f.clone());
    }
    let toolchain = NvrtcToolchain::from_env()?;
    let cache = KernelCache::from_env();
    let rt = backend.runtime();
    let (cubin, _) = cache.get_or_compile(&toolchain, &RANDOM, rt.arch())?;
    let module = rt
        .context()
        .load_module(Ptx::from_binary(cubin))
        .map_err(cuda_err("loading tensor_random"))?;
    let f = module
        .load_function("dummy_fill_bf16")
        .map_err(cuda_err("loading kernel dummy_fill_bf16"))?;
    map.insert(backend.ordinal(), f.clone());
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CPU-only: the fill kernel compiles through NVRTC from the PyPI wheels (skipped without
    /// them; `scripts/fetch-nvrtc.sh` fetches them).
    #[test]
    fn fill_kernel_compiles_for_sm90() {
        let prefix = std::env::var_os("ARLE_NVRTC_PREFIX")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.cache/nvrtc")
            });
        if !prefix.join("nvidia/cu13/lib/libnvrtc.so.13").is_file() {
            eprintln!("NVRTC wheels not found under {}: skipped", prefix.display());
            return;
        }
        let tc = NvrtcToolchain::locate(Some(&prefix)).expect("locate NVRTC");
        let cubin = tc
            .compile(&RANDOM, arle_kernels::GpuArch::SM90)
            .expect("random.cu compiles");
        assert!(cubin.windows(15).any(|w| w == b"dummy_fill_bf16"));
    }
}
