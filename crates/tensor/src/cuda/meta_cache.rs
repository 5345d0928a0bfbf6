//! [`MetaCache`]: device copies of a step's small metadata (RoPE positions and inverse
//! frequencies, KV slot mapping, attention block tables and lengths), uploaded once and reused
//! by every layer of the forward.
//!
//! Every attention layer of one forward passes the same positions, slots and block tables; the
//! cache keeps, per tag (which op's metadata), the host values of the last upload and its device
//! buffer, and hands the buffer out again while the host values compare equal. A new step's
//! values differ (positions advance), so its first layer uploads once and the rest reuse.
//!
//! While a step graph is recorded or captured, uploads go to the graph's static buffers instead
//! (`graph::GraphSession`).
//!
//! Invariants: a hit is decided by comparing the full host contents, never by address, so a
//! reused buffer always holds exactly the values asked for; a replaced buffer returns to the
//! backend's pool, and since all work is on the backend's single stream, the kernels that read
//! it were enqueued before any later reuse writes it. Buffers are shared (`Arc`) so a caller can
//! hold one across its launch while another call replaces the entry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arle_kernels::cudarc::driver::DeviceRepr;

use super::pool::PoolSlice;
use super::{upload_pooled, CudaBackend};
use crate::{Result, TensorError};

/// The tags of per-step uploads that a decode step graph feeds at replay
/// (`graph::decode_step_inputs` builds their values; the ops upload under the same names).
pub(crate) mod tags {
    pub const EMBEDDING_IDS: &str = "embedding.ids";
    pub const ROPE_POSITIONS: &str = "rope.positions";
    pub const KV_SLOTS: &str = "kv_append.slots";
    pub const DECODE_ATTENTION: &str = "paged_attention.decode";
}

/// One tag's last upload: its host values (`H`: the values, or f32 bits) and the device copy.
type Entry<H, T> = (Vec<H>, Arc<PoolSlice<T>>);

/// Last uploads per tag (i32 metadata; f32 values such as RoPE inverse frequencies).
#[derive(Debug, Default)]
pub(crate) struct MetaCache {
    i32s: Mutex<HashMap<&'static str, Entry<i32, i32>>>,
    f32s: Mutex<HashMap<&'static str, Entry<u32, f32>>>,
    uploads: std::sync::atomic::AtomicU64,
}

fn poisoned() -> TensorError {
    TensorError::Invalid {
        op: "cuda metadata cache",
        detail: "lock poisoned".into(),
    }
}

impl MetaCache {
    /// Uploads that missed the cache so far (a warm decode step makes a handful, not one per
    /// layer).
    pub(crate) fn uploads(&self) -> u64 {
        self.uploads.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The device copy of `values` under `tag`: the cached buffer when the last upload under `tag`
/// had the same values, else a fresh upload (which becomes the cached one).
pub(crate) fn cached_i32(
    backend: &CudaBackend,
    tag: &'static str,
    values: &[i32],
) -> Result<Arc<PoolSlice<i32>>> {
    if let Some(r) = backend.with_graph_session(|g| g.i32_input(backend, tag, values)) {
        return r; // a step graph's static input (see `graph`)
    }
    cached(
        backend,
        &backend.meta_cache().i32s,
        tag,
        values,
        |host| host == values,
        || values.to_vec(),
    )
}

/// [`cached_i32`] for f32 values (compared bit for bit).
pub(crate) fn cached_f32(
    backend: &CudaBackend,
    tag: &'static str,
    values: &[f32],
) -> Result<Arc<PoolSlice<f32>>> {
    if let Some(r) = backend.with_graph_session(|g| g.f32_input(backend, tag, values)) {
        return r; // a step graph's static input (see `graph`)
    }
    let same = |host: &[u32]| {
        host.len() == values.len() && host.iter().zip(values).all(|(&h, v)| h == v.to_bits())
    };
    let bits = || values.iter().map(|v| v.to_bits()).collect();
    cached(backend, &backend.meta_cache().f32s, tag, values, same, bits)
}

/// The lookup-or-upload of both: `same` compares the cached host values, `host` makes them.
fn cached<T: DeviceRepr, H>(
    backend: &CudaBackend,
    map: &Mutex<HashMap<&'static str, Entry<H, T>>>,
    tag: &'static str,
    values: &[T],
    same: impl Fn(&[H]) -> bool,
    host: impl FnOnce() -> Vec<H>,
) -> Result<Arc<PoolSlice<T>>> {
    let mut map = map.lock().map_err(|_| poisoned())?;
    if let Some((cached, dev)) = map.get(tag) {
        if same(cached) {
            return Ok(dev.clone());
        }
    }
    let dev = Arc::new(upload_pooled(backend, values)?);
    backend
        .meta_cache()
        .uploads
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    map.insert(tag, (host(), dev.clone()));
    Ok(dev)
}
