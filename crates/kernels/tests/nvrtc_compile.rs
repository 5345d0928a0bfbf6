//! CPU-only (CI) tests: every kernel source compiles through NVRTC for sm_90 with the PyPI
//! wheels (`scripts/fetch-nvrtc.sh`), the disk cache keys and reuses CUBINs, and failures come
//! back as typed errors. No GPU is needed.

use std::path::PathBuf;

use arle_kernels::{
    CacheOutcome, GpuArch, KernelCache, KernelError, KernelSource, NvrtcToolchain, ALL_SOURCES,
};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The wheel prefix: `ARLE_NVRTC_PREFIX`, else `<repo>/.cache/nvrtc`; panics if absent.
fn toolchain() -> NvrtcToolchain {
    let prefix = std::env::var_os("ARLE_NVRTC_PREFIX")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".cache/nvrtc"));
    assert!(
        prefix.join("nvidia/cu13/lib/libnvrtc.so.13").is_file(),
        "NVRTC wheels not found under {}: run scripts/fetch-nvrtc.sh (or set ARLE_NVRTC_PREFIX)",
        prefix.display()
    );
    NvrtcToolchain::locate(Some(&prefix)).expect("locate NVRTC from the wheel prefix")
}

#[test]
fn nvrtc_compiles_every_kernel() {
    let tc = toolchain();
    assert_eq!(tc.version().0, 13, "the wheels are pinned to CUDA 13.0.x");
    let mut failures = Vec::new();
    for source in ALL_SOURCES {
        match tc.compile(source, GpuArch::SM90) {
            Ok(cubin) => {
                assert!(
                    cubin.starts_with(b"\x7fELF"),
                    "{}: CUBIN is not an ELF image",
                    source.name
                );
                for f in source.functions {
                    let symbol = f.as_bytes();
                    assert!(
                        cubin.windows(symbol.len()).any(|w| w == symbol),
                        "{}: kernel {f} missing from the CUBIN",
                        source.name
                    );
                }
            }
            Err(e) => failures.push(format!("{e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "NVRTC failures:\n{}",
        failures.join("\n")
    );
}

#[test]
fn every_cu_file_is_registered() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/cu");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .expect("read src/cu")
        .filter_map(|e| {
            let path = e.expect("dir entry").path();
            if path.extension()? != "cu" {
                return None;
            }
            Some(path.file_stem()?.to_string_lossy().into_owned())
        })
        .collect();
    on_disk.sort();
    let mut registered: Vec<String> = ALL_SOURCES.iter().map(|s| s.name.to_string()).collect();
    registered.sort();
    assert_eq!(on_disk, registered);
    for source in ALL_SOURCES {
        assert!(
            source.code.starts_with(&format!("// {}.cu:", source.name)),
            "{}: header comment",
            source.name
        );
        for f in source.functions {
            assert!(
                source.code.contains(&format!("void {f}("))
                    || source.code.contains(&format!("{f}(\n")),
                "{}: no kernel named {f}",
                source.name
            );
        }
    }
}

#[test]
fn cache_compiles_once_then_hits_and_keys_on_arch() {
    let tc = toolchain();
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = KernelCache::new(dir.path().join("kernels"));
    let source = &arle_kernels::sources::SILU_MUL;
    let (first, outcome) = cache
        .get_or_compile(&tc, source, GpuArch::SM90)
        .expect("compile");
    assert_eq!(outcome, CacheOutcome::Compiled);
    let (second, outcome) = cache
        .get_or_compile(&tc, source, GpuArch::SM90)
        .expect("hit");
    assert_eq!(outcome, CacheOutcome::Hit);
    assert_eq!(first, second);
    let sm80 = GpuArch { major: 8, minor: 0 };
    assert_ne!(
        KernelCache::key(&tc, source, GpuArch::SM90),
        KernelCache::key(&tc, source, sm80)
    );
    let (_, outcome) = cache
        .get_or_compile(&tc, source, sm80)
        .expect("sm80 compile");
    assert_eq!(outcome, CacheOutcome::Compiled);
    let entries = std::fs::read_dir(cache.dir()).expect("cache dir").count();
    assert_eq!(
        entries, 2,
        "one CUBIN per (source, arch), no temp files left"
    );
}

#[test]
fn compile_error_returns_the_log() {
    let tc = toolchain();
    let broken = KernelSource {
        name: "broken",
        code: "extern \"C\" __global__ void broken(float* x) { x[0] = undeclared_name; }\n",
        functions: &["broken"],
    };
    match tc.compile(&broken, GpuArch::SM90) {
        Err(KernelError::Compile {
            source_name, log, ..
        }) => {
            assert_eq!(source_name, "broken");
            assert!(log.contains("undeclared_name"), "log: {log}");
        }
        other => panic!("expected a compile error, got {other:?}"),
    }
}

#[test]
fn missing_wheel_prefix_is_a_typed_error() {
    let missing = tempfile::tempdir().expect("tempdir");
    match NvrtcToolchain::locate(Some(missing.path())) {
        Err(KernelError::LibraryMissing { library, hint }) => {
            assert_eq!(library, "libnvrtc.so.13");
            assert!(hint.contains("fetch-nvrtc.sh"), "hint: {hint}");
        }
        other => panic!("expected LibraryMissing, got {other:?}"),
    }
}
