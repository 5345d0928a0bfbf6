//! [`CudaBackend`]: one GPU's kernel runtime (every arle-kernels source loaded), the glue kernels
//! of `extra.cu`, cuBLASLt and cuBLAS handles on the runtime's stream, and the split-K scratch of
//! decode attention. One backend per device ordinal, created on first use and shared (`Arc`) by
//! every tensor, weight and KV layer on that device.
//!
//! Invariants: all work is enqueued on the runtime's single stream, so ops are ordered without
//! events; kernels are compiled (or read from the disk cache) when the backend is created, never
//! inside a step; the decode workspace only grows (no allocation once it fits the largest step).
//! Short-lived buffers come from the backend's [`BufferPool`]. `deterministic` (off by default)
//! makes GEMMs and attention batch-invariant (see `ops::linear` and `attention`). GEMM plans are
//! cached per shape (`gemm_plan`) and a step's metadata uploads are reused by every layer
//! (`meta_cache`), so a decode layer costs kernel launches only.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use arle_kernels::cudarc::cublas::CudaBlas;
use arle_kernels::cudarc::cublaslt::CudaBlasLT;
use arle_kernels::cudarc::driver::{
    CudaFunction, CudaSlice, CudaStream, DevicePtr, LaunchArgs, LaunchConfig,
};
use arle_kernels::cudarc::nvrtc::Ptx;
use arle_kernels::ops::attention::DecodeWorkspace;
use arle_kernels::{KernelCache, KernelRuntime, KernelSource, NvrtcToolchain};

use super::cuda_err;
use super::gemm_plan::LtPlans;
use super::graph::GraphSession;
use super::meta_cache::MetaCache;
use super::pool::BufferPool;
use crate::{Result, TensorError};

/// The glue kernels (see the `.cu` header).
const EXTRA: KernelSource = KernelSource {
    name: "tensor_extra",
    code: include_str!("extra.cu"),
    functions: &[
        "add_bf16",
        "add_rows_bf16",
        "gather_rows_bf16",
        "bf16_to_f32",
        "sigmoid_mul_bf16",
    ],
};

/// cuBLAS workspace (the f32-output logits GEMM); fixed so that graph capture never allocates.
const BLAS_WORKSPACE_BYTES: usize = 32 << 20;

/// Keys per split-K partition of decode attention.
const DECODE_PART_TOKENS: usize = 512;

/// The decode workspace and the sizes it was allocated for.
#[derive(Debug)]
pub(crate) struct DecodeScratch {
    pub ws: DecodeWorkspace,
    pub max_seqs: usize,
    pub n_heads: usize,
    pub head_dim: usize,
}

pub struct CudaBackend {
    ordinal: usize,
    rt: KernelRuntime,
    blas_lt: CudaBlasLT,
    blas: CudaBlas,
    /// cuBLAS's own workspace, set once so that no call allocates (CUDA-graph capture).
    _blas_workspace: CudaSlice<u8>,
    gemm_plans: LtPlans,
    meta_cache: MetaCache,
    extra: HashMap<&'static str, CudaFunction>,
    decode: Mutex<Option<DecodeScratch>>,
    pool: Arc<BufferPool>,
    deterministic: AtomicBool,
    /// The step graph being recorded or captured, if any (see `graph`).
    graph_session: Mutex<Option<GraphSession>>,
    /// Bumped whenever the decode workspace is reallocated (captured graphs point into it).
    workspace_generation: AtomicU64,
}

impl std::fmt::Debug for CudaBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CudaBackend(cuda:{}, {:?})",
            self.ordinal,
            self.rt.arch()
        )
    }
}

/// The backend of GPU `ordinal`, created (kernels compiled or loaded from the cache) on first use.
pub fn backend(ordinal: usize) -> Result<Arc<CudaBackend>> {
    static BACKENDS: OnceLock<Mutex<HashMap<usize, Arc<CudaBackend>>>> = OnceLock::new();
    let map = BACKENDS.get_or_init(|| Mutex::new(HashMap::new()));
    let mut map = map.lock().map_err(|_| TensorError::Invalid {
        op: "cuda::backend",
        detail: "backend registry poisoned".into(),
    })?;
    if let Some(b) = map.get(&ordinal) {
        return Ok(b.clone());
    }
    let b = Arc::new(CudaBackend::new(ordinal)?);
    map.insert(ordinal, b.clone());
    Ok(b)
}

impl CudaBackend {
    fn new(ordinal: usize) -> Result<Self> {
        let toolchain = NvrtcToolchain::from_env()?;
        let cache = KernelCache::from_env();
        let rt = KernelRuntime::new(ordinal, &toolchain, &cache)?;
        // SAFETY: every buffer of this context is used on the runtime's single stream (module
        // invariant), so cudarc's cross-stream event tracking is never needed; left on, it
        // creates and destroys two CUDA events per allocation (every pooled op output).
        unsafe { rt.context().disable_event_tracking() };
        let (cubin, _) = cache.get_or_compile(&toolchain, &EXTRA, rt.arch())?;
        let module = rt
            .context()
            .load_module(Ptx::from_binary(cubin))
            .map_err(cuda_err("loading tensor_extra"))?;
        let mut extra = HashMap::new();
        for &name in EXTRA.functions {
            let f = module
                .load_function(name)
                .map_err(cuda_err(format!("loading kernel {name}")))?;
            extra.insert(name, f);
        }
        let blas_lt = CudaBlasLT::new(rt.stream().clone()).map_err(|e| TensorError::Cuda {
            detail: format!("cuBLASLt init: {e:?}"),
        })?;
        let blas = CudaBlas::new(rt.stream().clone()).map_err(|e| TensorError::Cuda {
            detail: format!("cuBLAS init: {e:?}"),
        })?;
        // SAFETY: scratch for cuBLAS; its contents never matter.
        let blas_workspace = unsafe { rt.stream().alloc::<u8>(BLAS_WORKSPACE_BYTES) }
            .map_err(cuda_err("cuBLAS workspace"))?;
        {
            let (ptr, _record) = blas_workspace.device_ptr(rt.stream());
            // SAFETY: the buffer outlives the handle's use (both live in this backend) and
            // holds BLAS_WORKSPACE_BYTES bytes on the handle's stream.
            let status = unsafe {
                arle_kernels::cudarc::cublas::sys::cublasSetWorkspace_v2(
                    *blas.handle(),
                    ptr as *mut std::ffi::c_void,
                    BLAS_WORKSPACE_BYTES,
                )
            };
            if status != arle_kernels::cudarc::cublas::sys::cublasStatus_t::CUBLAS_STATUS_SUCCESS {
                return Err(TensorError::Cuda {
                    detail: format!("cublasSetWorkspace: {status:?}"),
                });
            }
        }
        let pool = Arc::new(BufferPool::new(rt.stream().clone()));
        let gemm_plans = LtPlans::new(rt.stream())?;
        Ok(Self {
            ordinal,
            rt,
            blas_lt,
            blas,
            _blas_workspace: blas_workspace,
            gemm_plans,
            meta_cache: MetaCache::default(),
            extra,
            decode: Mutex::new(None),
            pool,
            deterministic: AtomicBool::new(false),
            graph_session: Mutex::new(None),
            workspace_generation: AtomicU64::new(0),
        })
    }

    pub fn ordinal(&self) -> usize {
        self.ordinal
    }

    pub fn runtime(&self) -> &KernelRuntime {
        &self.rt
    }

    pub fn stream(&self) -> &Arc<CudaStream> {
        self.rt.stream()
    }

    pub(crate) fn blas_lt(&self) -> &CudaBlasLT {
        &self.blas_lt
    }

    pub(crate) fn blas(&self) -> &CudaBlas {
        &self.blas
    }

    /// Metadata uploads that missed the per-step cache so far (see `meta_cache`).
    pub fn metadata_uploads(&self) -> u64 {
        self.meta_cache.uploads()
    }

    /// Cached cuBLASLt plans of the bf16 GEMMs (one per shape, see `gemm_plan`).
    pub(crate) fn gemm_plans(&self) -> &LtPlans {
        &self.gemm_plans
    }

    /// Number of GEMM shapes with a cached cuBLASLt plan (a steady decode adds none).
    pub fn gemm_plan_count(&self) -> usize {
        self.gemm_plans.len()
    }

    /// Device copies of per-step metadata, reused while the contents repeat (see `meta_cache`).
    pub(crate) fn meta_cache(&self) -> &MetaCache {
        &self.meta_cache
    }

    /// The caching allocator of this device's short-lived buffers.
    pub fn pool(&self) -> &Arc<BufferPool> {
        &self.pool
    }

    /// Batch-invariant mode: GEMMs run in fixed-shape row chunks and every attention query goes
    /// through the decode kernel, so a row's result never depends on the rest of the batch.
    pub fn set_deterministic(&self, on: bool) {
        self.deterministic.store(on, Ordering::Relaxed);
    }

    pub fn deterministic(&self) -> bool {
        self.deterministic.load(Ordering::Relaxed)
    }

    /// Replaces the active graph session (see `graph`), returning the previous one.
    pub(crate) fn set_graph_session(&self, session: Option<GraphSession>) -> Option<GraphSession> {
        match self.graph_session.lock() {
            Ok(mut g) => std::mem::replace(&mut *g, session),
            Err(p) => std::mem::replace(&mut *p.into_inner(), session),
        }
    }

    /// Runs `f` on the active graph session; `None` when no step graph is being made.
    pub(crate) fn with_graph_session<R>(
        &self,
        f: impl FnOnce(&mut GraphSession) -> R,
    ) -> Option<R> {
        let mut guard = self.graph_session.lock().ok()?;
        guard.as_mut().map(f)
    }

    /// Block-table width a step graph fixes for decode attention (0 outside a graph session).
    pub(crate) fn graph_pad_pages(&self) -> usize {
        self.with_graph_session(|s| s.pad_pages).unwrap_or(0)
    }

    /// Generation of the decode workspace (changes when it is reallocated).
    pub fn workspace_generation(&self) -> u64 {
        self.workspace_generation.load(Ordering::SeqCst)
    }

    /// Waits for every enqueued op (before a host read).
    pub fn synchronize(&self) -> Result<()> {
        self.stream()
            .synchronize()
            .map_err(cuda_err("stream synchronize"))
    }

    /// A launch of glue kernel `name` (push its arguments, then launch with [`grid_for`]).
    pub(crate) fn extra(&self, name: &'static str) -> Result<LaunchArgs<'_>> {
        let f = self.extra.get(name).ok_or_else(|| TensorError::Cuda {
            detail: format!("glue kernel {name} not loaded"),
        })?;
        Ok(self.stream().launch_builder(f))
    }

    /// The decode split-K workspace, grown to fit `max_seqs` sequences of up to `max_context`
    /// keys with `n_heads` heads of `head_dim` (allocates only when it does not fit yet).
    pub(crate) fn decode_workspace(
        &self,
        max_seqs: usize,
        n_heads: usize,
        head_dim: usize,
        max_context: usize,
    ) -> Result<MutexGuard<'_, Option<DecodeScratch>>> {
        let mut guard = self.decode.lock().map_err(|_| TensorError::Invalid {
            op: "cuda decode workspace",
            detail: "lock poisoned".into(),
        })?;
        let fits = guard.as_ref().is_some_and(|s| {
            s.max_seqs >= max_seqs
                && s.n_heads == n_heads
                && s.head_dim == head_dim
                && s.ws.max_parts * s.ws.part_tokens >= max_context
        });
        if !fits {
            let (old_seqs, old_ctx) = guard
                .as_ref()
                .filter(|s| s.n_heads == n_heads && s.head_dim == head_dim)
                .map_or((0, 0), |s| (s.max_seqs, s.ws.max_parts * s.ws.part_tokens));
            let seqs = max_seqs.max(old_seqs);
            let ctx = max_context.max(old_ctx).max(DECODE_PART_TOKENS);
            *guard = None; // free the old scratch before allocating the new one
            self.workspace_generation.fetch_add(1, Ordering::SeqCst);
            let ws = DecodeWorkspace::new(
                self.stream(),
                seqs,
                n_heads,
                head_dim,
                ctx,
                DECODE_PART_TOKENS,
            )?;
            *guard = Some(DecodeScratch {
                ws,
                max_seqs: seqs,
                n_heads,
                head_dim,
            });
        }
        Ok(guard)
    }
}

/// Grid-stride launch geometry for `n` elements (block 256, at most 65 535 blocks).
pub(crate) fn grid_for(n: usize) -> LaunchConfig {
    let blocks = n.div_ceil(256).clamp(1, 65_535) as u32;
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    }
}
