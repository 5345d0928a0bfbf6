//! Step graphs: one decode forward captured as a CUDA graph and replayed with new inputs, so a
//! decode step costs one graph launch instead of hundreds of kernel launches.
//!
//! [`CudaBackend::capture_step`] runs the caller's forward twice. The *record* run executes
//! eagerly (its logits are this step's result) with a [`GraphSession`] active: every per-step
//! metadata upload (`meta_cache::cached_i32` / `cached_f32`, by tag: token ids, positions, slots,
//! block tables, RoPE frequencies) goes into a dedicated *static* buffer instead of the metadata
//! cache, and intermediates come from the pool's graph lists. The *capture* run repeats the same
//! host code under stream capture: every tag gets its static buffer back without an upload and
//! every intermediate hits the graph lists again (same sizes, same order), so nothing allocates
//! or copies from the host inside the capture. [`StepGraph::replay`] then uploads the next step's
//! values into the static buffers, launches the graph and copies the logits out.
//!
//! Invariants:
//! - The caller states the inputs it will provide at replay ([`decode_step_inputs`]); the record
//!   run's uploads must be exactly those tags with exactly those values, else no graph is made
//!   (so a replay can never feed a kernel a stale or differently laid-out buffer). f32 tags are
//!   constants of the model (RoPE inverse frequencies) kept as recorded.
//! - Static buffers are eager-family pool buffers held by the graph, never shared with another
//!   graph; intermediates are graph-family buffers shared by every graph (graphs never run
//!   concurrently: one stream). The logits are copied into an eager buffer after every launch,
//!   so no graph-family buffer escapes to the caller.
//! - A graph is valid while the backend's decode workspace keeps its generation
//!   ([`StepGraph::is_current`]) and the KV pages it captured stay allocated (the owner drops
//!   its graphs when it replaces its cache).
//! - Capture needs the backend's stream to itself: another thread launching on it while a
//!   capture is under way fails the capture (and that thread's op).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arle_kernels::cudarc::driver::sys::{
    CUdeviceptr, CUgraphInstantiate_flags, CUstreamCaptureMode,
};
use arle_kernels::cudarc::driver::{result as cu, CudaGraph, DevicePtr, DeviceRepr};

use super::attention::decode_launch_meta;
use super::meta_cache::tags;
use super::pool::{Family, PoolSlice};
use super::{cuda_err, to_i32s, CudaBackend, GpuData, GpuHandle};
use crate::ops::AttentionMeta;
use crate::{Result, Tensor, TensorError};

/// Set while any backend records or captures a step (step timing must not synchronise then).
static SESSION_ACTIVE: AtomicBool = AtomicBool::new(false);

pub(crate) fn session_active() -> bool {
    SESSION_ACTIVE.load(Ordering::SeqCst)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    Record,
    Capture,
}

/// One tag's static buffer and the host values it was recorded with (`H`: values or f32 bits).
type Static<H, T> = (Vec<H>, Arc<PoolSlice<T>>);

/// The state of one `capture_step` (held by the backend while its forward runs).
#[derive(Debug)]
pub(crate) struct GraphSession {
    phase: Phase,
    /// Block-table width of decode attention in this graph (pages).
    pub(crate) pad_pages: usize,
    i32s: HashMap<&'static str, Static<i32, i32>>,
    f32s: HashMap<&'static str, Static<u32, f32>>,
}

fn layout_err(tag: &str, detail: &str) -> TensorError {
    TensorError::Cuda {
        detail: format!("step graph input {tag}: {detail}"),
    }
}

/// The static buffer of `tag` (record: allocated and filled; capture: handed back as is).
fn static_input<T: DeviceRepr + Copy, H: PartialEq + Clone>(
    backend: &CudaBackend,
    map: &mut HashMap<&'static str, Static<H, T>>,
    phase: Phase,
    tag: &'static str,
    values: &[T],
    host: Vec<H>,
) -> Result<Arc<PoolSlice<T>>> {
    if let Some((recorded, dev)) = map.get(tag) {
        return if *recorded == host {
            Ok(dev.clone())
        } else {
            Err(layout_err(tag, "changes within one step"))
        };
    }
    if phase == Phase::Capture {
        return Err(layout_err(tag, "not uploaded by the recording run"));
    }
    // SAFETY: fully written by the copy right below. Eager family: the buffer is this graph's
    // alone (held live by it), never an intermediate of another graph.
    let mut buf = unsafe {
        backend
            .pool()
            .alloc_in::<T>(Family::Eager, values.len().max(1))?
    };
    backend
        .stream()
        .memcpy_htod(values, &mut buf.slice_mut(0..values.len()))
        .map_err(cuda_err("step graph input upload"))?;
    let dev = Arc::new(PoolSlice::new(backend.pool().clone(), buf));
    map.insert(tag, (host, dev.clone()));
    Ok(dev)
}

impl GraphSession {
    pub(crate) fn i32_input(
        &mut self,
        backend: &CudaBackend,
        tag: &'static str,
        values: &[i32],
    ) -> Result<Arc<PoolSlice<i32>>> {
        static_input(
            backend,
            &mut self.i32s,
            self.phase,
            tag,
            values,
            values.to_vec(),
        )
    }

    pub(crate) fn f32_input(
        &mut self,
        backend: &CudaBackend,
        tag: &'static str,
        values: &[f32],
    ) -> Result<Arc<PoolSlice<f32>>> {
        let bits = values.iter().map(|v| v.to_bits()).collect();
        static_input(backend, &mut self.f32s, self.phase, tag, values, bits)
    }
}

/// Per-step i32 inputs of a decode graph, by tag, exactly as the ops upload them: token ids,
/// RoPE positions, KV slots and the decode attention block tables (`pad_pages` wide) + lengths.
pub fn decode_step_inputs(
    token_ids: &[u32],
    positions: &[u32],
    meta: &AttentionMeta,
    pad_pages: usize,
) -> Result<Vec<(&'static str, Vec<i32>)>> {
    const OP: &str = "decode_step_inputs";
    Ok(vec![
        (tags::EMBEDDING_IDS, to_i32s(OP, token_ids)?),
        (tags::ROPE_POSITIONS, to_i32s(OP, positions)?),
        (
            tags::KV_SLOTS,
            super::attention::slots_i32(&meta.slot_mapping)?,
        ),
        (
            tags::DECODE_ATTENTION,
            decode_launch_meta(meta, token_ids.len(), pad_pages)?,
        ),
    ])
}

/// Where the captured logits live (a graph-family buffer) and what they look like.
#[derive(Debug)]
struct GraphOutput {
    ptr: CUdeviceptr,
    len: usize,
    is_f32: bool,
    shape: Vec<usize>,
}

/// A captured decode forward (see the module docs).
pub struct StepGraph {
    backend: Arc<CudaBackend>,
    graph: CudaGraph,
    inputs: Vec<(&'static str, Arc<PoolSlice<i32>>)>,
    _constants: Vec<Arc<PoolSlice<f32>>>,
    output: GraphOutput,
    generation: u64,
}

// SAFETY: a CUDA graph may be used from any thread as long as calls on it are serialised; a
// `StepGraph` is only used through `&self`/`&mut self` of its single owner (the model runner),
// never from two threads at once. Its buffers are ordinary device allocations.
unsafe impl Send for StepGraph {}

impl std::fmt::Debug for StepGraph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StepGraph(logits {:?})", self.output.shape)
    }
}

/// A copy of `t` in an eager-family buffer.
fn eager_copy(backend: &Arc<CudaBackend>, t: &Tensor) -> Result<Tensor> {
    let g = t.gpu().ok_or_else(|| TensorError::Cuda {
        detail: "step graph: the forward returned host logits".into(),
    })?;
    let data = g.data().try_clone(backend)?;
    Ok(Tensor::from_gpu(
        t.shape().to_vec(),
        GpuHandle::new(backend.clone(), data),
    ))
}

impl StepGraph {
    /// False once the backend's decode workspace was reallocated (the graph would read freed
    /// memory): drop it and capture again.
    pub fn is_current(&self) -> bool {
        self.generation == self.backend.workspace_generation()
    }

    /// Uploads `inputs` (the same tags and lengths as at capture, from [`decode_step_inputs`]),
    /// launches the graph and returns a copy of its logits.
    pub fn replay(&self, inputs: &[(&'static str, Vec<i32>)]) -> Result<Tensor> {
        if !self.is_current() {
            return Err(TensorError::Cuda {
                detail: "step graph replayed after the decode workspace was reallocated".into(),
            });
        }
        if inputs.len() != self.inputs.len() {
            return Err(layout_err("*", "different input tags than at capture"));
        }
        let stream = self.backend.stream();
        for ((tag, values), (want, dev)) in inputs.iter().zip(&self.inputs) {
            if tag != want || values.len() != dev.len() {
                return Err(layout_err(tag, "different tag or length than at capture"));
            }
            let (ptr, _record) = dev.device_ptr(stream);
            // SAFETY: `dev` holds exactly `values.len()` i32s on this stream; a pageable-source
            // async copy returns once the values are staged, so `values` may go away after it.
            unsafe { cu::memcpy_htod_async(ptr, values, stream.cu_stream()) }
                .map_err(cuda_err("step graph input upload"))?;
        }
        self.graph.launch().map_err(cuda_err("graph launch"))?;
        let out = &self.output;
        let bytes = out.len * if out.is_f32 { 4 } else { 2 };
        let pool = self.backend.pool();
        let copy = |dst: CUdeviceptr| {
            // SAFETY: both buffers hold `bytes` bytes on this stream; the copy is ordered after
            // the graph launch that wrote the source.
            unsafe { cu::memcpy_dtod_async(dst, out.ptr, bytes, stream.cu_stream()) }
                .map_err(cuda_err("step graph logits copy"))
        };
        let data = if out.is_f32 {
            // SAFETY: fully written by the copy right below.
            let buf = unsafe { pool.alloc_in::<f32>(Family::Eager, out.len)? };
            copy(buf.device_ptr(stream).0)?;
            GpuData::F32(buf)
        } else {
            // SAFETY: as above.
            let buf = unsafe { pool.alloc_in::<half::bf16>(Family::Eager, out.len)? };
            copy(buf.device_ptr(stream).0)?;
            GpuData::Bf16(buf)
        };
        let handle = GpuHandle::new(self.backend.clone(), data);
        Ok(Tensor::from_gpu(out.shape.clone(), handle))
    }
}

/// An active session: installs it and the pool modes, and clears them however the run ends.
struct SessionGuard<'a>(&'a CudaBackend);

impl<'a> SessionGuard<'a> {
    fn begin(backend: &'a CudaBackend, session: GraphSession) -> Self {
        let capturing = session.phase == Phase::Capture;
        SESSION_ACTIVE.store(true, Ordering::SeqCst);
        backend.set_graph_session(Some(session));
        backend.pool().set_graph_mode(true);
        backend.pool().set_capturing(capturing);
        Self(backend)
    }
}

impl Drop for SessionGuard<'_> {
    fn drop(&mut self) {
        self.0.pool().set_capturing(false);
        self.0.pool().set_graph_mode(false);
        self.0.set_graph_session(None);
        SESSION_ACTIVE.store(false, Ordering::SeqCst);
    }
}

impl CudaBackend {
    /// Runs `forward` (one decode step whose attention block tables are `pad_pages` wide) and
    /// captures it as a [`StepGraph`] whose per-step inputs are `expected` (see the module
    /// docs). Returns this step's logits and the graph, or why the step cannot be one (its
    /// uploads differ from `expected`, or the capture failed); the logits are valid either way.
    pub fn capture_step<F, E>(
        self: &Arc<Self>,
        pad_pages: usize,
        expected: &[(&'static str, Vec<i32>)],
        mut forward: F,
    ) -> std::result::Result<(Tensor, std::result::Result<StepGraph, String>), E>
    where
        F: FnMut() -> std::result::Result<Tensor, E>,
        E: From<TensorError> + std::fmt::Display,
    {
        // Record: executes, fills the static buffers.
        let (logits, session) = {
            let session = GraphSession {
                phase: Phase::Record,
                pad_pages,
                i32s: HashMap::new(),
                f32s: HashMap::new(),
            };
            let _guard = SessionGuard::begin(self, session);
            let logits = forward()?;
            let session = self.set_graph_session(None);
            (logits, session)
        };
        let logits_out = eager_copy(self, &logits)?;
        let Some(mut session) = session else {
            return Ok((logits_out, Err("graph session lost".into())));
        };
        if let Err(why) = check_inputs(&session, expected) {
            return Ok((logits_out, Err(why)));
        }
        let generation = self.workspace_generation();
        drop(logits);

        // Capture: the same host code; no uploads, no driver allocations.
        session.phase = Phase::Capture;
        let (run, graph, session) = {
            let _guard = SessionGuard::begin(self, session);
            let stream = self.stream();
            let begun =
                stream.begin_capture(CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL);
            if let Err(e) = begun {
                return Ok((logits_out, Err(format!("begin capture: {e:?}"))));
            }
            let run = forward();
            // Always end the capture, even after a failed forward, so the stream is usable.
            let graph = stream.end_capture(CUgraphInstantiate_flags(0));
            let session = self.set_graph_session(None);
            (run, graph, session)
        };
        let out = match run {
            Ok(t) => t,
            Err(e) => return Ok((logits_out, Err(format!("forward under capture: {e}")))),
        };
        let graph = match graph {
            Ok(Some(g)) => g,
            Ok(None) => return Ok((logits_out, Err("empty capture".into()))),
            Err(e) => return Ok((logits_out, Err(format!("end capture: {e:?}")))),
        };
        let Some(session) = session else {
            return Ok((logits_out, Err("graph session lost".into())));
        };
        let output = {
            let Some(g) = out.gpu() else {
                return Ok((logits_out, Err("captured logits are on the host".into())));
            };
            let stream = self.stream();
            let (ptr, len, is_f32) = match g.data() {
                GpuData::F32(s) => (s.device_ptr(stream).0, s.len(), true),
                GpuData::Bf16(s) => (s.device_ptr(stream).0, s.len(), false),
            };
            GraphOutput {
                ptr,
                len,
                is_f32,
                shape: out.shape().to_vec(),
            }
        };
        // The buffer returns to the graph lists; the graph keeps writing it (no one else can
        // take it outside a graph session), and every replay copies it out first.
        drop(out);
        if let Err(e) = graph.upload() {
            return Ok((logits_out, Err(format!("graph upload: {e:?}"))));
        }
        let inputs = expected
            .iter()
            .map(|(tag, _)| (*tag, session.i32s[tag].1.clone()))
            .collect();
        let constants = session.f32s.values().map(|(_, d)| d.clone()).collect();
        let graph = StepGraph {
            backend: self.clone(),
            graph,
            inputs,
            _constants: constants,
            output,
            generation,
        };
        Ok((logits_out, Ok(graph)))
    }
}

/// The recorded i32 uploads must be exactly `expected` (same tags, same values).
fn check_inputs(
    session: &GraphSession,
    expected: &[(&'static str, Vec<i32>)],
) -> std::result::Result<(), String> {
    if session.i32s.len() != expected.len() {
        let mut tags: Vec<&str> = session.i32s.keys().copied().collect();
        tags.sort_unstable();
        return Err(format!("the step uploaded {tags:?}"));
    }
    for (tag, values) in expected {
        match session.i32s.get(tag) {
            Some((recorded, _)) if recorded == values => {}
            Some(_) => return Err(format!("{tag}: recorded values differ from the inputs")),
            None => return Err(format!("{tag} was not uploaded by the step")),
        }
    }
    Ok(())
}
