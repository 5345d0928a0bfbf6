//! [`Bytes`]: an immutable, cheaply clonable byte range backed by a memory map or a vector.
//! Invariant: `start..end` always lies inside the owner's bytes.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

enum Owner {
    Mmap(memmap2::Mmap),
    Vec(Vec<u8>),
}

impl Owner {
    fn as_slice(&self) -> &[u8] {
        match self {
            Owner::Mmap(m) => m,
            Owner::Vec(v) => v,
        }
    }
}

/// Shared, read-only bytes.
#[derive(Clone)]
pub struct Bytes {
    owner: Arc<Owner>,
    start: usize,
    end: usize,
}

impl Bytes {
    /// Wraps a memory map (whole file).
    pub fn from_mmap(mmap: memmap2::Mmap) -> Self {
        let end = mmap.len();
        Self {
            owner: Arc::new(Owner::Mmap(mmap)),
            start: 0,
            end,
        }
    }

    /// Wraps an owned buffer.
    pub fn from_vec(v: Vec<u8>) -> Self {
        let end = v.len();
        Self {
            owner: Arc::new(Owner::Vec(v)),
            start: 0,
            end,
        }
    }

    /// A sub-range, relative to this view; `None` if out of bounds.
    pub fn slice(&self, range: Range<usize>) -> Option<Bytes> {
        if range.start > range.end || range.end > self.len() {
            return None;
        }
        Some(Bytes {
            owner: self.owner.clone(),
            start: self.start + range.start,
            end: self.start + range.end,
        })
    }

    pub fn len(&self) -> usize {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.owner.as_slice()[self.start..self.end]
    }
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bytes({} bytes)", self.len())
    }
}
