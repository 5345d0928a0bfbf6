//! [`LtPlans`]: cached cuBLASLt plans for the bf16 GEMMs of `ops::linear`.
//!
//! cudarc's `Matmul::matmul` creates a matmul descriptor, three matrix layouts and a preference
//! and asks cuBLASLt for a heuristic on every call (tens of µs of host time per GEMM, seven GEMMs
//! per decoder layer). Here one [`LtPlan`] per `(m, n, k, bias)` keeps the descriptor, the layouts
//! and the chosen algorithm; a call only sets the bias pointer and enqueues `cublasLtMatmul`.
//!
//! Math (row-major): `y[n, m] = x[n, k] · W[m, k]ᵀ (+ bias[m])`, i.e. column-major
//! `C(m×n) = Aᵀ(m×k) · B(k×n)` with A = W (k×m, lda k), B = x (k×n, ldb k), C ldc m; bf16 in and
//! out, f32 compute and scale — exactly the configuration the cudarc path used.
//!
//! Invariants: the algorithm for a shape is chosen once (the same one cuBLASLt's heuristic
//! returns for that shape, so results match the uncached path and stay fixed across calls —
//! deterministic mode's fixed-row GEMMs keep one shape and thus one algorithm); plans are used
//! under the cache's mutex (the bias pointer is written into the shared descriptor per call);
//! everything runs on the backend's single stream with this cache's own workspace.

use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::{Arc, Mutex};

use arle_kernels::cudarc::cublaslt::{result as lt, sys, CudaBlasLT, MatmulShared};
use arle_kernels::cudarc::driver::{CudaSlice, CudaStream, DevicePtr, DevicePtrMut};
use half::bf16;

use super::cuda_err;
use crate::{Result, TensorError};

/// Workspace bytes offered to cuBLASLt (NVIDIA's recommendation for Hopper).
const WORKSPACE_BYTES: usize = 32 << 20;

/// Plans kept before the cache is cleared (prefill chunk sizes vary; decode shapes repeat).
const MAX_PLANS: usize = 4096;

/// Shape key: `(m, n, k, has_bias)`.
type Key = (usize, usize, usize, bool);

/// One GEMM shape's descriptor, layouts and algorithm (raw cuBLASLt handles, owned).
struct LtPlan {
    desc: sys::cublasLtMatmulDesc_t,
    a: sys::cublasLtMatrixLayout_t,
    b: sys::cublasLtMatrixLayout_t,
    c: sys::cublasLtMatrixLayout_t,
    algo: sys::cublasLtMatmulAlgo_t,
}

// SAFETY: the handles are plain cuBLASLt objects, only touched under `LtPlans::plans`' mutex.
unsafe impl Send for LtPlan {}

impl Drop for LtPlan {
    fn drop(&mut self) {
        // SAFETY: each handle was created by this plan and is destroyed once; errors are ignored
        // (nothing useful can be done in a destructor).
        unsafe {
            let _ = lt::destroy_matrix_layout(self.a);
            let _ = lt::destroy_matrix_layout(self.b);
            let _ = lt::destroy_matrix_layout(self.c);
            let _ = lt::destroy_matmul_desc(self.desc);
        }
    }
}

fn lt_err(what: &'static str) -> impl FnOnce(lt::CublasError) -> TensorError {
    move |e| TensorError::Cuda {
        detail: format!("cuBLASLt {what}: {e:?}"),
    }
}

/// Tracks the raw handles created so far so a failure half-way frees them (via [`LtPlan`]'s
/// drop once complete, or here when building fails).
fn build_plan(handle: sys::cublasLtHandle_t, (m, n, k, bias): Key) -> Result<LtPlan> {
    let bf = sys::cudaDataType_t::CUDA_R_16BF;
    let (m64, n64, k64) = (m as u64, n as u64, k as u64);
    let a = lt::create_matrix_layout(bf, k64, m64, k as i64).map_err(lt_err("layout"))?;
    let mut plan = LtPlan {
        desc: std::ptr::null_mut(),
        a,
        b: std::ptr::null_mut(),
        c: std::ptr::null_mut(),
        algo: sys::cublasLtMatmulAlgo_t { data: [0; 8] },
    };
    plan.b = lt::create_matrix_layout(bf, k64, n64, k as i64).map_err(lt_err("layout"))?;
    plan.c = lt::create_matrix_layout(bf, m64, n64, m as i64).map_err(lt_err("layout"))?;
    plan.desc = lt::create_matmul_desc(
        sys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
        sys::cudaDataType_t::CUDA_R_32F,
    )
    .map_err(lt_err("descriptor"))?;
    let set = |attr, v: i32| {
        // SAFETY: `desc` is live; the attribute takes a 4-byte value.
        unsafe {
            lt::set_matmul_desc_attribute(
                plan.desc,
                attr,
                (&v) as *const i32 as *const c_void,
                std::mem::size_of::<i32>(),
            )
        }
        .map_err(lt_err("descriptor attribute"))
    };
    use sys::cublasLtMatmulDescAttributes_t as A;
    set(A::CUBLASLT_MATMUL_DESC_TRANSA, 1)?;
    set(A::CUBLASLT_MATMUL_DESC_TRANSB, 0)?;
    set(A::CUBLASLT_MATMUL_DESC_TRANSC, 0)?;
    let epilogue = if bias {
        sys::cublasLtEpilogue_t::CUBLASLT_EPILOGUE_BIAS
    } else {
        sys::cublasLtEpilogue_t::CUBLASLT_EPILOGUE_DEFAULT
    };
    set(A::CUBLASLT_MATMUL_DESC_EPILOGUE, epilogue as i32)?;
    let pref = lt::create_matmul_pref().map_err(lt_err("preference"))?;
    let ws = WORKSPACE_BYTES;
    // SAFETY: `pref` is live; MAX_WORKSPACE_BYTES takes a u64 (usize on 64-bit targets).
    let heuristic = unsafe {
        lt::set_matmul_pref_attribute(
            pref,
            sys::cublasLtMatmulPreferenceAttributes_t::CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
            (&ws) as *const usize as *const c_void,
            std::mem::size_of::<usize>(),
        )
        .and_then(|_| {
            lt::get_matmul_algo_heuristic(handle, plan.desc, plan.a, plan.b, plan.c, plan.c, pref)
        })
    };
    // SAFETY: created above, destroyed once.
    let _ = unsafe { lt::destroy_matmul_pref(pref) };
    plan.algo = heuristic.map_err(lt_err("heuristic"))?.algo;
    Ok(plan)
}

/// The plan cache and its workspace (one per backend).
pub(crate) struct LtPlans {
    plans: Mutex<HashMap<Key, LtPlan>>,
    workspace: CudaSlice<u8>,
}

impl std::fmt::Debug for LtPlans {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.plans.lock().map(|p| p.len()).unwrap_or(0);
        write!(f, "LtPlans({n} shapes)")
    }
}

impl LtPlans {
    pub(crate) fn new(stream: &Arc<CudaStream>) -> Result<Self> {
        // SAFETY: cuBLASLt only uses the workspace as scratch; its contents never matter.
        let workspace = unsafe { stream.alloc::<u8>(WORKSPACE_BYTES) }
            .map_err(cuda_err("cuBLASLt workspace"))?;
        Ok(Self {
            plans: Mutex::new(HashMap::new()),
            workspace,
        })
    }

    /// Number of cached shapes.
    pub(crate) fn len(&self) -> usize {
        self.plans.lock().map(|p| p.len()).unwrap_or(0)
    }

    /// bf16 `y[n, m] = x[n, k] · W[m, k]ᵀ (+ bias)` on `blas`' stream.
    ///
    /// # Safety
    /// `w` holds `m*k`, `x` `n*k`, `out` `n*m` and `bias` `m` values, all on `blas`' stream.
    pub(crate) unsafe fn matmul(
        &self,
        blas: &CudaBlasLT,
        w: &CudaSlice<bf16>,
        x: &CudaSlice<bf16>,
        out: &mut CudaSlice<bf16>,
        bias: Option<&CudaSlice<bf16>>,
        (m, n, k): (usize, usize, usize),
    ) -> Result<()> {
        let mut plans = self.plans.lock().map_err(|_| TensorError::Invalid {
            op: "linear",
            detail: "cuBLASLt plan cache poisoned".into(),
        })?;
        let key = (m, n, k, bias.is_some());
        if !plans.contains_key(&key) {
            if plans.len() >= MAX_PLANS {
                plans.clear();
            }
            let plan = build_plan(*blas.handle(), key)?;
            plans.insert(key, plan);
        }
        let plan = plans.get(&key).ok_or_else(|| TensorError::Invalid {
            op: "linear",
            detail: "cuBLASLt plan missing".into(),
        })?;
        let stream = blas.stream();
        let (alpha, beta) = (1.0f32, 0.0f32);
        let (bias_ptr, _rb) = bias.map(|b| b.device_ptr(stream)).unzip();
        if let Some(p) = bias_ptr {
            // SAFETY: `desc` is live (owned by the plan, used under the lock); the attribute
            // takes a device pointer.
            unsafe {
                lt::set_matmul_desc_attribute(
                    plan.desc,
                    sys::cublasLtMatmulDescAttributes_t::CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                    (&p) as *const _ as *const c_void,
                    std::mem::size_of_val(&p),
                )
            }
            .map_err(lt_err("bias pointer"))?;
        }
        let (a, _ra) = w.device_ptr(stream);
        let (b, _rx) = x.device_ptr(stream);
        let (c, _rc) = out.device_ptr_mut(stream);
        let (ws, _rw) = self.workspace.device_ptr(stream);
        // SAFETY: the plan's layouts match the buffers (caller contract); scalars are host f32;
        // the workspace holds WORKSPACE_BYTES; everything is on `stream`.
        unsafe {
            lt::matmul(
                *blas.handle(),
                plan.desc,
                (&alpha) as *const f32 as *const c_void,
                (&beta) as *const f32 as *const c_void,
                a as *const c_void,
                plan.a,
                b as *const c_void,
                plan.b,
                c as *const c_void,
                plan.c,
                c as *mut c_void,
                plan.c,
                &plan.algo,
                ws as *mut c_void,
                WORKSPACE_BYTES,
                stream.cu_stream() as *mut _,
            )
        }
        .map_err(lt_err("matmul"))
    }
}
