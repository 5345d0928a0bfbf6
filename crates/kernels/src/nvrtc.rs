//! Locating NVRTC and compiling the embedded sources to CUBIN for one architecture.
//!
//! NVRTC is loaded dynamically (cudarc `dynamic-loading`): either from the loader path (the GPU
//! machine's CUDA install) or from a PyPI-wheel prefix (`<prefix>/nvidia/cu13/{lib,include}`,
//! made by `scripts/fetch-nvrtc.sh`), which is preloaded by absolute path so cudarc's later
//! lookup by soname finds it. Invariant: cudarc's loader (which panics when the library is
//! missing) is only reached after [`NvrtcToolchain::locate`] checked that the library loads.

use std::ffi::{c_char, c_int, CString};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use cudarc::nvrtc::{result as nvrtc_result, sys as nvrtc_sys};

use crate::arch::GpuArch;
use crate::error::{KernelError, Result};
use crate::sources::KernelSource;

/// Sub-directory of a PyPI-wheel prefix holding `lib/` and `include/`.
const WHEEL_SUBDIR: &str = "nvidia/cu13";
/// Environment variable naming a PyPI-wheel NVRTC prefix.
pub const NVRTC_PREFIX_ENV: &str = "ARLE_NVRTC_PREFIX";

/// A loaded NVRTC and the CUDA include directory to compile against.
#[derive(Debug, Clone)]
pub struct NvrtcToolchain {
    include_dir: PathBuf,
    version: (i32, i32),
}

/// Libraries preloaded from a wheel prefix; kept for the life of the process.
static PRELOADED: OnceLock<Vec<libloading::Library>> = OnceLock::new();

fn preload_prefix(lib_dir: &Path) -> Result<()> {
    let libnvrtc = lib_dir.join("libnvrtc.so.13");
    if !libnvrtc.is_file() {
        return Err(KernelError::LibraryMissing {
            library: "libnvrtc.so.13",
            hint: format!(
                "not under {}; run scripts/fetch-nvrtc.sh",
                lib_dir.display()
            ),
        });
    }
    let mut loaded = Vec::new();
    // The builtins library first: libnvrtc dlopens it by soname during compilation.
    for name in ["libnvrtc-builtins.so.13.0", "libnvrtc.so.13"] {
        let path = lib_dir.join(name);
        if !path.is_file() {
            continue;
        }
        // SAFETY: loading NVIDIA's shared library runs its initialisers, which have no
        // preconditions on our side.
        let lib = unsafe { libloading::Library::new(&path) }.map_err(|e| {
            KernelError::LibraryMissing {
                library: "libnvrtc.so.13",
                hint: format!("{}: {e}", path.display()),
            }
        })?;
        loaded.push(lib);
    }
    let _ = PRELOADED.set(loaded);
    Ok(())
}

fn system_include_dir() -> PathBuf {
    let home = std::env::var_os("CUDA_HOME")
        .or_else(|| std::env::var_os("CUDA_PATH"))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/local/cuda"));
    home.join("include")
}

fn nvrtc_error(call: &'static str) -> impl FnOnce(nvrtc_result::NvrtcError) -> KernelError {
    move |e| KernelError::Nvrtc {
        call,
        code: format!("{e:?}"),
    }
}

impl NvrtcToolchain {
    /// Locates NVRTC from `ARLE_NVRTC_PREFIX` when set, else from the system.
    pub fn from_env() -> Result<Self> {
        let prefix = std::env::var_os(NVRTC_PREFIX_ENV).map(PathBuf::from);
        Self::locate(prefix.as_deref())
    }

    /// Locates NVRTC: from a PyPI-wheel `prefix` if given, else from the loader path with headers
    /// from `CUDA_HOME`/`CUDA_PATH`/`/usr/local/cuda`. Errors name the missing library or header.
    pub fn locate(prefix: Option<&Path>) -> Result<Self> {
        let include_dir = match prefix {
            Some(prefix) => {
                preload_prefix(&prefix.join(WHEEL_SUBDIR).join("lib"))?;
                prefix.join(WHEEL_SUBDIR).join("include")
            }
            None => system_include_dir(),
        };
        // SAFETY: only tries to dlopen the candidate names; no symbols are used.
        if !unsafe { nvrtc_sys::is_culib_present() } {
            return Err(KernelError::LibraryMissing {
                library: "libnvrtc.so.13",
                hint:
                    "not on the loader path; install the CUDA 13 toolkit, add its lib dir to \
                       LD_LIBRARY_PATH, or set ARLE_NVRTC_PREFIX to a scripts/fetch-nvrtc.sh prefix"
                        .into(),
            });
        }
        if !include_dir.join("cuda_bf16.h").is_file() {
            return Err(KernelError::HeadersMissing {
                path: include_dir,
                hint: "set CUDA_HOME to the CUDA install or ARLE_NVRTC_PREFIX to a wheel prefix"
                    .into(),
            });
        }
        let (mut major, mut minor): (c_int, c_int) = (0, 0);
        // SAFETY: both out-pointers are valid for the call.
        unsafe { nvrtc_sys::nvrtcVersion(&mut major, &mut minor) }
            .result()
            .map_err(nvrtc_error("nvrtcVersion"))?;
        Ok(Self {
            include_dir,
            version: (major, minor),
        })
    }

    /// NVRTC's (major, minor) version, part of the kernel cache key.
    pub fn version(&self) -> (i32, i32) {
        self.version
    }

    /// The include directory passed to NVRTC with `-I`.
    pub fn include_dir(&self) -> &Path {
        &self.include_dir
    }

    /// The NVRTC options used for `arch` (also hashed into the cache key).
    pub fn options(&self, arch: GpuArch) -> Vec<String> {
        vec![
            format!("--gpu-architecture={}", arch.sm_name()),
            format!("-I{}", self.include_dir.display()),
            "--std=c++17".into(),
            "--device-as-default-execution-space".into(),
        ]
    }

    /// Compiles one source for `arch`, returning CUBIN bytes or the compiler log as an error.
    pub fn compile(&self, source: &KernelSource, arch: GpuArch) -> Result<Vec<u8>> {
        let text = CString::new(source.full_text()).map_err(|_| KernelError::Precondition {
            op: "nvrtc compile",
            message: format!("{} contains a NUL byte", source.name),
        })?;
        let name =
            CString::new(format!("{}.cu", source.name)).map_err(|_| KernelError::Precondition {
                op: "nvrtc compile",
                message: "bad source name".into(),
            })?;
        let program = nvrtc_result::create_program(&text, Some(&name))
            .map_err(nvrtc_error("nvrtcCreateProgram"))?;
        let outcome = self.compile_program(program, source, arch);
        // SAFETY: `program` came from create_program and is destroyed exactly once.
        let destroyed = unsafe { nvrtc_result::destroy_program(program) };
        let cubin = outcome?;
        destroyed.map_err(nvrtc_error("nvrtcDestroyProgram"))?;
        Ok(cubin)
    }

    fn compile_program(
        &self,
        program: nvrtc_sys::nvrtcProgram,
        source: &KernelSource,
        arch: GpuArch,
    ) -> Result<Vec<u8>> {
        let options = self.options(arch);
        // SAFETY: `program` is a live NVRTC program; options are valid C strings.
        if unsafe { nvrtc_result::compile_program(program, &options) }.is_err() {
            // SAFETY: as above; the log is read from the same live program.
            let log = unsafe { nvrtc_result::get_program_log(program) }
                .map(|chars| log_to_string(&chars))
                .unwrap_or_else(|e| format!("(no log: {e:?})"));
            return Err(KernelError::Compile {
                source_name: source.name,
                arch: arch.sm_name(),
                log,
            });
        }
        let mut size = 0usize;
        // SAFETY: valid program and out-pointer.
        unsafe { nvrtc_sys::nvrtcGetCUBINSize(program, &mut size) }
            .result()
            .map_err(nvrtc_error("nvrtcGetCUBINSize"))?;
        let mut cubin = vec![0u8; size];
        // SAFETY: `cubin` has exactly the size NVRTC reported.
        unsafe { nvrtc_sys::nvrtcGetCUBIN(program, cubin.as_mut_ptr() as *mut c_char) }
            .result()
            .map_err(nvrtc_error("nvrtcGetCUBIN"))?;
        Ok(cubin)
    }
}

fn log_to_string(chars: &[c_char]) -> String {
    let bytes: Vec<u8> = chars
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}
