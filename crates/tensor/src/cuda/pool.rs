//! [`BufferPool`]: a caching allocator for a backend's short-lived device buffers (activations,
//! per-step metadata uploads, sampling scratch), so a steady-state step makes no driver
//! allocation.
//!
//! Buffers are size-bucketed (the requested bytes rounded up to 1/8 of their power of two, at
//! least 256 bytes) and kept in per-bucket free lists when their owner drops them
//! ([`super::GpuHandle`]'s tensor, or a [`PoolSlice`]). A request whose bucket list is empty is a
//! *miss*: one driver allocation of the bucket size, counted in [`PoolStats::misses`].
//!
//! Two families of free lists: the *eager* lists, and the *graph* lists used while a step graph is
//! recorded or captured (`super::graph`). Every CUDA graph reuses the graph lists' buffers for
//! its intermediates, so all graphs share one footprint (they never run concurrently), while
//! eager work never touches a buffer a graph writes. A buffer always returns to the family it
//! came from.
//!
//! Invariants: the pool only takes back pointers it handed out (it records each live pointer, its
//! bucket and family); anything else is freed as usual. All work is on the backend's single stream, so a
//! buffer handed out again is only touched after every earlier use of it (stream order); no
//! synchronisation is needed. On out-of-memory the cached buffers are freed and the allocation is
//! retried once.

use std::collections::HashMap;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arle_kernels::cudarc::driver::{sys::CUdeviceptr, CudaSlice, CudaStream, DeviceRepr};

use super::cuda_err;
use crate::{Result, TensorError};

/// Counters of one backend's pool.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Allocations served from a free list.
    pub hits: u64,
    /// Allocations that went to the driver (the number to keep at 0 in steady state).
    pub misses: u64,
    /// Bytes sitting in free lists.
    pub cached_bytes: usize,
    /// Bytes handed out and not yet returned.
    pub live_bytes: usize,
    /// Tensor buffers allocated outside the pool (then freed through the driver when dropped):
    /// ops that still allocate directly; also 0 in a warm step once every op uses the pool.
    pub foreign_frees: u64,
}

/// Which free lists a buffer belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Family {
    Eager,
    Graph,
}

#[derive(Debug, Default)]
struct Lists {
    free: HashMap<(Family, usize), Vec<CUdeviceptr>>,
    live: HashMap<CUdeviceptr, (Family, usize)>,
    cached_bytes: usize,
    live_bytes: usize,
}

/// Size-bucketed free lists of device buffers on one stream.
#[derive(Debug)]
pub struct BufferPool {
    stream: Arc<CudaStream>,
    lists: Mutex<Lists>,
    hits: AtomicU64,
    misses: AtomicU64,
    foreign_frees: AtomicU64,
    /// Allocations go to the graph lists (a step graph is being recorded or captured).
    graph_mode: AtomicBool,
    /// A stream capture is under way: a miss (a driver allocation) would be captured, so it fails.
    capturing: AtomicBool,
}

/// The bucket of a request of `bytes`: rounded up to 1/8 of its power of two, at least 256.
pub(crate) fn bucket_bytes(bytes: usize) -> usize {
    let p = bytes.max(1).next_power_of_two();
    let step = (p / 8).max(256);
    bytes.max(1).div_ceil(step) * step
}

impl BufferPool {
    pub(crate) fn new(stream: Arc<CudaStream>) -> Self {
        Self {
            stream,
            lists: Mutex::new(Lists::default()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            foreign_frees: AtomicU64::new(0),
            graph_mode: AtomicBool::new(false),
            capturing: AtomicBool::new(false),
        }
    }

    /// Marks a stream capture as under way (misses fail instead of allocating).
    pub(crate) fn set_capturing(&self, on: bool) {
        self.capturing.store(on, Ordering::SeqCst);
    }

    /// Routes allocations to the graph lists (`on`) or back to the eager lists.
    pub(crate) fn set_graph_mode(&self, on: bool) {
        self.graph_mode.store(on, Ordering::SeqCst);
    }

    fn family(&self) -> Family {
        if self.graph_mode.load(Ordering::SeqCst) {
            Family::Graph
        } else {
            Family::Eager
        }
    }

    fn lists(&self) -> Result<std::sync::MutexGuard<'_, Lists>> {
        self.lists.lock().map_err(|_| TensorError::Cuda {
            detail: "buffer pool lock poisoned".into(),
        })
    }

    /// An uninitialised buffer of `n` values (`n > 0`) whose bytes come from the pool.
    ///
    /// # Safety
    /// The caller writes every value before reading it.
    pub(crate) unsafe fn alloc<T: DeviceRepr>(&self, n: usize) -> Result<CudaSlice<T>> {
        unsafe { self.alloc_in(self.family(), n) }
    }

    /// [`BufferPool::alloc`] from the given family's lists.
    ///
    /// # Safety
    /// As [`BufferPool::alloc`].
    pub(crate) unsafe fn alloc_in<T: DeviceRepr>(
        &self,
        family: Family,
        n: usize,
    ) -> Result<CudaSlice<T>> {
        let bucket = bucket_bytes(n * std::mem::size_of::<T>());
        let reused = {
            let mut l = self.lists()?;
            let ptr = l.free.get_mut(&(family, bucket)).and_then(Vec::pop);
            if let Some(ptr) = ptr {
                l.cached_bytes -= bucket;
                l.live_bytes += bucket;
                l.live.insert(ptr, (family, bucket));
            }
            ptr
        };
        let ptr = match reused {
            Some(ptr) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                ptr
            }
            None if self.capturing.load(Ordering::SeqCst) => {
                return Err(TensorError::Cuda {
                    detail: format!(
                        "graph capture needs a {bucket}-byte buffer its recording run did not use"
                    ),
                });
            }
            None => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                let raw = match unsafe { self.stream.alloc::<u8>(bucket) } {
                    Ok(raw) => raw,
                    Err(_) => {
                        self.release_cached()?;
                        unsafe { self.stream.alloc::<u8>(bucket) }
                            .map_err(cuda_err("device alloc (pool)"))?
                    }
                };
                let ptr = raw.leak();
                let mut l = self.lists()?;
                l.live_bytes += bucket;
                l.live.insert(ptr, (family, bucket));
                ptr
            }
        };
        // SAFETY: `ptr` is a live allocation of `bucket >= n * size_of::<T>()` bytes owned by
        // the pool; the caller initialises it before reading.
        Ok(unsafe { self.stream.upgrade_device_ptr::<T>(ptr, n) })
    }

    /// A zero-filled buffer of `n` values from the pool.
    pub(crate) fn alloc_zeros<T: DeviceRepr + arle_kernels::cudarc::driver::ValidAsZeroBits>(
        &self,
        n: usize,
    ) -> Result<CudaSlice<T>> {
        // SAFETY: zeroed right below, before anything can read it.
        let mut s = unsafe { self.alloc::<T>(n)? };
        self.stream
            .memset_zeros(&mut s)
            .map_err(cuda_err("device memset"))?;
        Ok(s)
    }

    /// Takes `slice` back: into its bucket when the pool handed it out, else freed.
    pub(crate) fn recycle<T>(&self, slice: CudaSlice<T>) {
        let stream = slice.stream().clone();
        let ptr = slice.leak();
        let mut foreign = true;
        if let Ok(mut l) = self.lists.lock() {
            if let Some((family, bucket)) = l.live.remove(&ptr) {
                l.live_bytes -= bucket;
                l.cached_bytes += bucket;
                l.free.entry((family, bucket)).or_default().push(ptr);
                foreign = false;
            }
        }
        if foreign {
            self.foreign_frees.fetch_add(1, Ordering::Relaxed);
            // SAFETY: `ptr` came from `slice` (leaked above), so re-wrapping and dropping it frees
            // it exactly once, on its own stream.
            drop(unsafe { stream.upgrade_device_ptr::<u8>(ptr, 0) });
        }
    }

    /// Frees every cached eager buffer (e.g. before a large allocation outside the pool). The
    /// graph lists stay: captured graphs keep using their buffers.
    pub fn release_cached(&self) -> Result<()> {
        let ptrs: Vec<CUdeviceptr> = {
            let mut l = self.lists()?;
            let eager: Vec<(Family, usize)> = l
                .free
                .keys()
                .copied()
                .filter(|(f, _)| *f == Family::Eager)
                .collect();
            let mut ptrs = Vec::new();
            for key in eager {
                let list = l.free.remove(&key).unwrap_or_default();
                l.cached_bytes -= key.1 * list.len();
                ptrs.extend(list);
            }
            ptrs
        };
        for ptr in ptrs {
            // SAFETY: cached pointers are pool-owned allocations no one else references.
            drop(unsafe { self.stream.upgrade_device_ptr::<u8>(ptr, 0) });
        }
        Ok(())
    }

    pub fn stats(&self) -> PoolStats {
        let (cached_bytes, live_bytes) = self
            .lists
            .lock()
            .map(|l| (l.cached_bytes, l.live_bytes))
            .unwrap_or_default();
        PoolStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            cached_bytes,
            live_bytes,
            foreign_frees: self.foreign_frees.load(Ordering::Relaxed),
        }
    }
}

/// A pooled buffer that goes back to its pool when dropped (metadata uploads, scratch).
#[derive(Debug)]
pub struct PoolSlice<T> {
    slice: ManuallyDrop<CudaSlice<T>>,
    pool: Arc<BufferPool>,
}

impl<T> PoolSlice<T> {
    pub(crate) fn new(pool: Arc<BufferPool>, slice: CudaSlice<T>) -> Self {
        Self {
            slice: ManuallyDrop::new(slice),
            pool,
        }
    }
}

impl<T> Deref for PoolSlice<T> {
    type Target = CudaSlice<T>;
    fn deref(&self) -> &CudaSlice<T> {
        &self.slice
    }
}

impl<T> DerefMut for PoolSlice<T> {
    fn deref_mut(&mut self) -> &mut CudaSlice<T> {
        &mut self.slice
    }
}

impl<T> Drop for PoolSlice<T> {
    fn drop(&mut self) {
        // SAFETY: `slice` is taken exactly once, here.
        let slice = unsafe { ManuallyDrop::take(&mut self.slice) };
        self.pool.recycle(slice);
    }
}

#[cfg(test)]
mod tests {
    use super::bucket_bytes;

    #[test]
    fn buckets_round_up_within_an_eighth() {
        assert_eq!(bucket_bytes(0), 256);
        assert_eq!(bucket_bytes(1), 256);
        assert_eq!(bucket_bytes(256), 256);
        assert_eq!(bucket_bytes(257), 512);
        assert_eq!(bucket_bytes(4096), 4096);
        assert_eq!(bucket_bytes(4097), 4096 + 1024);
        for bytes in [3usize, 1000, 123_457, 77 << 20] {
            let b = bucket_bytes(bytes);
            assert!(b >= bytes && b - bytes <= b / 8 + 256, "{bytes} -> {b}");
            assert_eq!(bucket_bytes(b), b, "a bucket is its own bucket");
        }
    }
}
