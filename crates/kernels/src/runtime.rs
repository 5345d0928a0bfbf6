//! The CUDA side: a device context, its stream, and every kernel of [`ALL_SOURCES`] compiled for
//! the device's exact architecture (through the disk cache) and loaded once at construction, so
//! no compilation or module loading happens inside a forward step.

use std::collections::HashMap;
use std::sync::Arc;

use cudarc::driver::{CudaContext, CudaFunction, CudaStream, LaunchConfig};
use cudarc::nvrtc::Ptx;

use crate::arch::GpuArch;
use crate::cache::{CacheOutcome, KernelCache};
use crate::error::{driver, KernelError, Result};
use crate::nvrtc::NvrtcToolchain;
use crate::sources::ALL_SOURCES;

/// A device plus all loaded kernels. Launchers in [`crate::ops`] take it by reference.
#[derive(Debug)]
pub struct KernelRuntime {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    arch: GpuArch,
    functions: HashMap<&'static str, CudaFunction>,
    compiled_sources: usize,
}

/// Fails with a typed error (instead of cudarc's panic) when `libcuda` cannot be loaded.
pub fn check_driver_present() -> Result<()> {
    // SAFETY: only tries to dlopen the candidate names.
    if unsafe { cudarc::driver::sys::is_culib_present() } {
        Ok(())
    } else {
        Err(KernelError::LibraryMissing {
            library: "libcuda.so.1",
            hint: "no NVIDIA driver on the loader path (a CUDA GPU machine is needed)".into(),
        })
    }
}

impl KernelRuntime {
    /// Opens GPU `ordinal`, compiles (or loads from `cache`) every kernel for its architecture.
    pub fn new(ordinal: usize, toolchain: &NvrtcToolchain, cache: &KernelCache) -> Result<Self> {
        check_driver_present()?;
        let ctx = CudaContext::new(ordinal).map_err(driver(format!("opening GPU {ordinal}")))?;
        let (major, minor) = ctx
            .compute_capability()
            .map_err(driver("compute capability"))?;
        let arch = GpuArch {
            major: major as u32,
            minor: minor as u32,
        };
        // A stream of our own: the legacy default stream cannot be captured into a CUDA graph.
        let stream = ctx.new_stream().map_err(driver("creating a stream"))?;
        let mut functions = HashMap::new();
        let mut compiled_sources = 0;
        for source in ALL_SOURCES {
            let (cubin, outcome) = cache.get_or_compile(toolchain, source, arch)?;
            compiled_sources += usize::from(outcome == CacheOutcome::Compiled);
            let module = ctx
                .load_module(Ptx::from_binary(cubin))
                .map_err(driver(format!("loading module {}", source.name)))?;
            for &name in source.functions {
                let function = module
                    .load_function(name)
                    .map_err(driver(format!("loading kernel {name}")))?;
                functions.insert(name, function);
            }
        }
        Ok(Self {
            ctx,
            stream,
            arch,
            functions,
            compiled_sources,
        })
    }

    pub fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }

    /// The stream every launcher enqueues on.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    pub fn arch(&self) -> GpuArch {
        self.arch
    }

    /// How many sources were compiled (cache misses) when this runtime was built.
    pub fn compiled_sources(&self) -> usize {
        self.compiled_sources
    }

    pub(crate) fn function(&self, name: &str) -> Result<&CudaFunction> {
        self.functions
            .get(name)
            .ok_or_else(|| KernelError::UnknownKernel(name.to_string()))
    }
}

/// Launch geometry helper: `grid` blocks of `block` threads with `smem_bytes` dynamic shared memory.
pub(crate) fn grid(grid: (u32, u32, u32), block: u32, smem_bytes: u32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: grid,
        block_dim: (block, 1, 1),
        shared_mem_bytes: smem_bytes,
    }
}

/// Launches kernel `$name` on the runtime's stream with the listed arguments (references).
macro_rules! launch_kernel {
    ($rt:expr, $name:expr, $cfg:expr, [$($arg:expr),* $(,)?]) => {{
        let func = $rt.function($name)?;
        #[allow(unused_imports)]
        use cudarc::driver::PushKernelArg as _;
        let mut builder = $rt.stream().launch_builder(func);
        $( builder.arg($arg); )*
        // SAFETY: the argument list matches the kernel's signature in its .cu file, and the
        // calling launcher checked the sizes the kernel relies on.
        unsafe { builder.launch($cfg) }
            .map(|_| ())
            .map_err($crate::error::driver($name))
    }};
}
pub(crate) use launch_kernel;
