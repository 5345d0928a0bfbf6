//! Sandbox tests on the real machine: every backend `probe()` says works is exercised with a
//! tool that writes outside the work directory and one that opens a TCP connection to a
//! listener in this test process; both must fail, while writing inside the work directory
//! works. With no sandbox the same tools succeed (the control that shows the tests can fail).
//! A kernel that reports a Landlock ABI but refuses `landlock_restrict_self` (a container's
//! seccomp profile can) is reproduced with a seccomp filter in a child of this binary: the report
//! must say Landlock does not work there. Probes run concurrently must agree (they once shared a
//! scratch directory, and one probe removing it failed another's tools: CI's failure).

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

/// Set in a child of this test binary that must print its `probe()` report and exit.
const PROBE_CHILD: &str = "ARLE_SANDBOX_TEST_PROBE_CHILD";

/// This test binary again, running `test_name` alone with `env` set, under a seccomp filter that
/// makes `landlock_restrict_self` fail with EPERM — what a container's seccomp profile can do
/// while the kernel still reports a Landlock ABI.
/// `Err` when the filter cannot be installed here (a sandbox that forbids seccomp filters).
fn run_with_landlock_refused(
    test_name: &str,
    env: &[(&str, &str)],
) -> std::io::Result<std::process::Output> {
    use std::os::unix::process::CommandExt;
    let mut command = std::process::Command::new(std::env::current_exe().unwrap());
    command.args(["--exact", test_name, "--nocapture", "--test-threads=1"]);
    command.envs(env.iter().copied());
    let nr = u32::try_from(libc::SYS_landlock_restrict_self).unwrap();
    // SAFETY: runs in the forked child before exec; builds a 4-instruction filter on the stack and
    // makes two prctl calls (async-signal-safe).
    unsafe {
        command.pre_exec(move || {
            let ld = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
            let jeq = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
            let ret = (libc::BPF_RET | libc::BPF_K) as u16;
            let mut filter = [
                libc::BPF_STMT(ld, 0), // seccomp_data.nr
                libc::BPF_JUMP(jeq, nr, 0, 1),
                libc::BPF_STMT(ret, libc::SECCOMP_RET_ERRNO | libc::EPERM as u32),
                libc::BPF_STMT(ret, libc::SECCOMP_RET_ALLOW),
            ];
            let program = libc::sock_fprog {
                len: filter.len() as u16,
                filter: filter.as_mut_ptr(),
            };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER,
                    &program as *const libc::sock_fprog,
                ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command.output()
}

#[test]
fn a_refused_landlock_is_reported_and_tested_as_not_working() {
    if std::env::var_os(PROBE_CHILD).is_some() {
        println!("REPORT {}", serde_json::to_string(&probe()).unwrap());
        return;
    }
    if probe().landlock_abi.is_none() {
        return; // no Landlock on this kernel: nothing to refuse
    }
    let child = match run_with_landlock_refused(
        "a_refused_landlock_is_reported_and_tested_as_not_working",
        &[(PROBE_CHILD, "1")],
    ) {
        Ok(child) => child,
        Err(e) => {
            eprintln!("cannot install a seccomp filter here ({e}); nothing to reproduce");
            return;
        }
    };
    let stdout = String::from_utf8_lossy(&child.stdout);
    let report: serde_json::Value = stdout
        .lines()
        .find_map(|l| l.split_once("REPORT ").map(|(_, json)| json))
        .map(|j| serde_json::from_str(j).unwrap())
        .unwrap_or_else(|| panic!("no report from the child: {stdout}"));
    assert!(report["landlock_abi"].is_i64(), "{report}");
    assert_eq!(report["landlock_works"], false, "{report}");
    assert_ne!(report["backend"]["kind"], "landlock", "{report}");
    // The kernel-agreement test holds there too (before it learnt this case it did not).
    let agreement = run_with_landlock_refused("landlock_report_matches_the_kernel", &[]).unwrap();
    assert!(
        agreement.status.success(),
        "{}{}",
        String::from_utf8_lossy(&agreement.stdout),
        String::from_utf8_lossy(&agreement.stderr)
    );
}

#[test]
fn concurrent_probes_agree() {
    // Probes running at once in one process (the tests here, or an agent and a doctor check)
    // each get their own scratch directory: one finishing must not break another's tools.
    let reports: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| (0..4).map(|_| probe()).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let first = &reports[0];
    for r in &reports {
        assert_eq!(r, first);
    }
}
