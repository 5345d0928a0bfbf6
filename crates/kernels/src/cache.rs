//! On-disk cache of compiled kernels. Key: SHA-256 over (full source text, NVRTC options incl.
//! the architecture, NVRTC version); one `<name>-<key>.cubin` file per entry under
//! `ARLE_KERNEL_CACHE`, else `$XDG_CACHE_HOME/arle/kernels`, else `~/.cache/arle/kernels`.
//! Invariant: an entry is written to a temporary file and renamed, so readers never see a
//! partial CUBIN; any change to a source, option or NVRTC version changes the key.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::arch::GpuArch;
use crate::error::{KernelError, Result};
use crate::nvrtc::NvrtcToolchain;
use crate::sources::KernelSource;

/// Environment variable relocating the cache.
pub const KERNEL_CACHE_ENV: &str = "ARLE_KERNEL_CACHE";

/// Where a compiled kernel came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    Hit,
    Compiled,
}

/// A directory of compiled CUBINs.
#[derive(Debug, Clone)]
pub struct KernelCache {
    dir: PathBuf,
}

impl KernelCache {
    /// A cache in `dir` (created on first store).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The default location (see the module doc).
    pub fn from_env() -> Self {
        if let Some(dir) = std::env::var_os(KERNEL_CACHE_ENV) {
            return Self::new(PathBuf::from(dir));
        }
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .unwrap_or_else(std::env::temp_dir);
        Self::new(base.join("arle").join("kernels"))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The cache key of `source` compiled by `toolchain` for `arch`.
    pub fn key(toolchain: &NvrtcToolchain, source: &KernelSource, arch: GpuArch) -> String {
        let mut hasher = Sha256::new();
        hasher.update(source.full_text().as_bytes());
        for option in toolchain.options(arch) {
            hasher.update([0u8]);
            hasher.update(option.as_bytes());
        }
        let (major, minor) = toolchain.version();
        hasher.update(format!("\0nvrtc {major}.{minor}").as_bytes());
        hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn entry_path(&self, source: &KernelSource, key: &str) -> PathBuf {
        self.dir
            .join(format!("{}-{}.cubin", source.name, &key[..32]))
    }

    /// Returns the cached CUBIN, compiling and storing it on a miss.
    pub fn get_or_compile(
        &self,
        toolchain: &NvrtcToolchain,
        source: &KernelSource,
        arch: GpuArch,
    ) -> Result<(Vec<u8>, CacheOutcome)> {
        let path = self.entry_path(source, &Self::key(toolchain, source, arch));
        match std::fs::read(&path) {
            Ok(bytes) if !bytes.is_empty() => return Ok((bytes, CacheOutcome::Hit)),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(KernelError::CacheIo { path, source }),
        }
        let cubin = toolchain.compile(source, arch)?;
        self.store(&path, &cubin)?;
        Ok((cubin, CacheOutcome::Compiled))
    }

    fn store(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| KernelError::CacheIo { path, source }
        };
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        // A uniquely named temporary file, renamed into place: concurrent stores of the same
        // kernel (threads or processes) each rename a complete file; readers never see a part.
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir).map_err(io(&self.dir))?;
        tmp.write_all(bytes).map_err(io(tmp.path()))?;
        tmp.persist(path).map_err(|e| io(path)(e.error))?;
        Ok(())
    }
}
