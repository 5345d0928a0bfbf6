//! Device memory queries for planning (KV pool sizing): [`memory_info`] and [`pool_stats`].
//!
//! Invariant: read-only; `used_bytes` counts everything resident on the device (weights, the
//! KV pages, the buffer pool's cached and live buffers, other processes), as the driver sees it.

use super::pool::PoolStats;
use super::{backend, cuda_err};
use crate::Result;

/// Free and total memory of one GPU, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryInfo {
    pub free_bytes: usize,
    pub total_bytes: usize,
}

impl MemoryInfo {
    pub fn used_bytes(&self) -> usize {
        self.total_bytes.saturating_sub(self.free_bytes)
    }
}

/// Free/total memory of GPU `ordinal` after every enqueued op has run (its backend is created
/// on first use).
pub fn memory_info(ordinal: usize) -> Result<MemoryInfo> {
    let b = backend(ordinal)?;
    b.synchronize()?;
    let (free_bytes, total_bytes) = b
        .runtime()
        .context()
        .mem_get_info()
        .map_err(cuda_err("cuMemGetInfo"))?;
    Ok(MemoryInfo {
        free_bytes,
        total_bytes,
    })
}

/// The buffer-pool counters of GPU `ordinal` (`misses` = driver allocations so far).
pub fn pool_stats(ordinal: usize) -> Result<PoolStats> {
    Ok(backend(ordinal)?.pool().stats())
}
