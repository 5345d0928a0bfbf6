//! Sandbox tests on the real machine: every backend `probe()` says works is exercised with a
//! tool that writes outside the work directory and one that opens a TCP connection to a
//! listener in this test process; both must fail, while writing inside the work directory
//! works. With no sandbox the same tools succeed (the control that shows the tests can fail).

#![allow(clippy::unwrap_used)]

use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use arle_agent::tools::sandbox::probe;
use arle_agent::{CancelFlag, SandboxBackend, ToolCall, ToolConfig, ToolRegistry, ToolResult};
use serde_json::json;

struct Dirs {
    work: tempfile::TempDir,
    tmp: tempfile::TempDir,
    outside: tempfile::TempDir,
}

fn dirs() -> Dirs {
    Dirs {
        work: tempfile::tempdir().unwrap(),
        tmp: tempfile::tempdir().unwrap(),
        outside: tempfile::tempdir().unwrap(),
    }
}

fn registry(backend: SandboxBackend, d: &Dirs) -> ToolRegistry {
    ToolRegistry::new(ToolConfig {
        work_dir: d.work.path().to_path_buf(),
        tmp_dir: d.tmp.path().to_path_buf(),
        timeout: Duration::from_secs(20),
        max_output_bytes: 4096,
        sandbox: backend,
    })
}

fn run(reg: &ToolRegistry, name: &str, arg: &str, text: &str) -> ToolResult {
    let call = ToolCall {
        id: "c".into(),
        name: name.into(),
        arguments: json!({ arg: text }),
    };
    reg.run(&call, &CancelFlag::new())
}

fn write_outside(reg: &ToolRegistry, outside: &Path) -> (ToolResult, bool) {
    let target = outside.join("escaped.txt");
    let result = run(
        reg,
        "shell",
        "command",
        &format!("echo pwned > {}", target.display()),
    );
    (result, target.exists())
}

fn connect_local(reg: &ToolRegistry) -> ToolResult {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let _ = listener.accept();
    });
    let code = format!(
        "import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=3)\nprint('CONNECTED')"
    );
    run(reg, "python", "code", &code)
}

fn assert_confined(backend: SandboxBackend) {
    let d = dirs();
    let reg = registry(backend.clone(), &d);
    let inside = run(
        &reg,
        "shell",
        "command",
        "echo ok > inside.txt && cat inside.txt && echo t > $TMPDIR/t && cat $TMPDIR/t",
    );
    assert_eq!(inside.exit_code, Some(0), "{backend:?}: {}", inside.content);
    assert!(d.work.path().join("inside.txt").exists(), "{backend:?}");
    let py = run(&reg, "python", "code", "print(6 * 7)");
    assert_eq!(py.exit_code, Some(0), "{backend:?}: {}", py.content);
    assert!(py.content.contains("42"), "{backend:?}: {}", py.content);
    let (outside, escaped) = write_outside(&reg, d.outside.path());
    assert!(
        !escaped,
        "{backend:?} let a tool write outside: {}",
        outside.content
    );
    assert_ne!(
        outside.exit_code,
        Some(0),
        "{backend:?}: {}",
        outside.content
    );
    let net = connect_local(&reg);
    assert!(
        !net.content.contains("CONNECTED"),
        "{backend:?}: {}",
        net.content
    );
    assert_ne!(net.exit_code, Some(0), "{backend:?}: {}", net.content);
}

#[test]
fn without_sandbox_the_escapes_succeed() {
    let d = dirs();
    let reg = registry(SandboxBackend::None, &d);
    let (result, escaped) = write_outside(&reg, d.outside.path());
    assert!(escaped, "{}", result.content);
    let net = connect_local(&reg);
    assert!(net.content.contains("CONNECTED"), "{}", net.content);
}

#[test]
fn probed_backends_confine_writes_and_network() {
    let report = probe();
    eprintln!("sandbox report: {report:?}");
    let mut tested = 0;
    if report.bwrap_works {
        let path = report.bwrap_path.clone().unwrap();
        assert_confined(SandboxBackend::Bubblewrap { path });
        tested += 1;
    }
    if report.landlock_works {
        let abi = report.landlock_abi.unwrap();
        assert!(
            abi >= 4,
            "network denial needs Landlock ABI 4, kernel has {abi}"
        );
        assert_confined(SandboxBackend::Landlock { abi });
        tested += 1;
    }
    // The chosen backend is the first that works, and the report is consistent with it.
    match &report.backend {
        SandboxBackend::Bubblewrap { .. } => assert!(report.bwrap_works),
        SandboxBackend::Landlock { .. } => assert!(report.landlock_works && !report.bwrap_works),
        SandboxBackend::None => assert_eq!(tested, 0),
    }
    assert_eq!(report.writes_restricted, tested > 0);
}

#[test]
fn landlock_report_matches_the_kernel() {
    // When the kernel reports a Landlock ABI, the report's `landlock_works` must agree with
    // what a tool observes: where it works, a harmless command runs and a write outside is
    // refused; where it does not (e.g. a container whose seccomp filter refuses
    // `landlock_restrict_self`), a tool under it cannot start at all — and so cannot escape —
    // and the report does not pick it.
    let report = probe();
    if let Some(abi) = report.landlock_abi {
        assert!(abi >= 1);
        let d = dirs();
        let reg = registry(SandboxBackend::Landlock { abi }, &d);
        let harmless = run(&reg, "shell", "command", "echo ok");
        let (outside, escaped) = write_outside(&reg, d.outside.path());
        assert!(!escaped, "{}", outside.content);
        if report.landlock_works {
            assert_eq!(harmless.exit_code, Some(0), "{}", harmless.content);
        } else {
            assert_ne!(harmless.exit_code, Some(0), "{}", harmless.content);
            assert!(!matches!(report.backend, SandboxBackend::Landlock { .. }));
        }
    } else {
        assert!(!report.landlock_works);
    }
}
