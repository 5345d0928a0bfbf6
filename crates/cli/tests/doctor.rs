//! `arle --doctor --json` parses and matches the machine: CPU features as this process detects
//! them, CUDA reported as not compiled in, the sandbox state equal to what the agent crate's
//! probe observes and to what a tool actually experiences (a write outside the work directory
//! fails exactly when doctor says writes are restricted), model resolution for `--model`, and
//! `--strict` exit codes.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use arle_agent::tools::sandbox::probe;
use arle_agent::{CancelFlag, SandboxBackend, ToolCall, ToolConfig, ToolRegistry};
use serde_json::{json, Value as Json};

fn smollm2_gguf() -> PathBuf {
    if let Some(p) = std::env::var_os("ARLE_SMOLLM2_GGUF") {
        return PathBuf::from(p);
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        p.is_file(),
        "{} is missing: run scripts/fetch-test-assets.sh",
        p.display()
    );
    p
}

fn doctor(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_arle"))
        .arg("--doctor")
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
    )
}

fn doctor_json(args: &[&str]) -> (i32, Json) {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let (code, text) = doctor(&all);
    let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    (code, json)
}

/// Whether a shell tool under `backend` manages to write outside its work directory.
fn tool_escapes(backend: SandboxBackend) -> bool {
    let work = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let tools = ToolRegistry::new(ToolConfig {
        work_dir: work.path().to_path_buf(),
        tmp_dir: tmp.path().to_path_buf(),
        timeout: Duration::from_secs(20),
        max_output_bytes: 1024,
        sandbox: backend,
    });
    let target = outside.path().join("x");
    let call = ToolCall {
        id: "c".into(),
        name: "shell".into(),
        arguments: json!({"command": format!("echo x > {}", target.display())}),
    };
    tools.run(&call, &CancelFlag::new());
    target.exists()
}

#[test]
fn doctor_json_matches_the_machine() {
    let gguf = smollm2_gguf();
    let (code, report) = doctor_json(&["--model", gguf.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert_eq!(report["schema_version"], 1);

    #[cfg(target_arch = "x86_64")]
    {
        let features = &report["backends"]["cpu"]["features"];
        assert_eq!(
            features["avx2"],
            std::arch::is_x86_feature_detected!("avx2")
        );
        assert_eq!(features["fma"], std::arch::is_x86_feature_detected!("fma"));
        assert_eq!(
            features["avx512f"],
            std::arch::is_x86_feature_detected!("avx512f")
        );
    }
    assert_eq!(
        report["backends"]["cuda"]["compiled"],
        cfg!(feature = "cuda")
    );
    assert_eq!(
        report["system"]["cpu_threads"],
        std::thread::available_parallelism().unwrap().get()
    );

    // Sandbox: same as the probe, and the same as a tool observes.
    let observed = probe();
    let sb = &report["sandbox"];
    assert_eq!(
        sb["backend"],
        serde_json::to_value(&observed.backend).unwrap()
    );
    assert_eq!(sb["bwrap_works"], observed.bwrap_works);
    assert_eq!(sb["landlock_works"], observed.landlock_works);
    assert_eq!(sb["landlock_abi"], json!(observed.landlock_abi));
    assert_eq!(
        sb["network"],
        serde_json::to_value(observed.network).unwrap()
    );
    let restricted = sb["writes_restricted"].as_bool().unwrap();
    assert_eq!(tool_escapes(observed.backend.clone()), !restricted, "{sb}");
    assert_eq!(
        sb["bwrap_path"].as_str().is_some(),
        std::env::split_paths(&std::env::var_os("PATH").unwrap())
            .any(|d| d.join("bwrap").is_file())
    );

    let model = &report["model"];
    assert_eq!(model["kind"], "local_path");
    assert_eq!(model["present"], true);
    assert_eq!(
        PathBuf::from(model["path"].as_str().unwrap()),
        gguf.canonicalize().unwrap()
    );
    assert_eq!(report["tools"]["python3"]["found"], true);
    assert!(report["cache"]["arle_cache_dir"].is_string());
}

#[test]
fn strict_fails_when_the_model_cannot_be_resolved() {
    let (code, report) = doctor_json(&["--strict", "--model", "/nonexistent/model.bin"]);
    assert_ne!(code, 0);
    assert_eq!(report["model"]["resolvable"], false);
    let problems = report["problems"].as_array().unwrap();
    assert!(problems
        .iter()
        .any(|p| p.as_str().unwrap().contains("cannot be resolved")));
    // Without --strict the same report exits 0.
    let (code, _) = doctor_json(&["--model", "/nonexistent/model.bin"]);
    assert_eq!(code, 0);
}

#[test]
fn strict_passes_on_a_complete_machine_and_text_mode_agrees() {
    let gguf = smollm2_gguf();
    let (code, report) = doctor_json(&["--strict", "--model", gguf.to_str().unwrap()]);
    let problems = report["problems"].as_array().unwrap();
    assert_eq!(code, i32::from(!problems.is_empty()), "{problems:?}");
    let (text_code, text) = doctor(&["--model", gguf.to_str().unwrap()]);
    assert_eq!(text_code, 0);
    assert!(text.contains("backend cuda: not compiled in"), "{text}");
    let sandbox_line = text.lines().find(|l| l.contains("sandbox:")).unwrap();
    assert!(sandbox_line.contains(report["sandbox"]["description"].as_str().unwrap()));
}
