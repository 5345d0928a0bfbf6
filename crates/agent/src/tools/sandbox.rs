//! The tool sandbox: bubblewrap when it is installed and works here, else Linux Landlock, else
//! none (and the caller says so loudly).
//!
//! Policy (both backends): the whole file system is readable; writes are allowed only under the
//! working directory and the tool's private temp directory (`TMPDIR` points there); network:
//! bubblewrap gives the tool an empty network namespace (no network at all), Landlock ABI >= 4
//! denies TCP bind/connect (older kernels: no network restriction, reported as such).
//!
//! Invariant: [`probe`] runs the real backends (not just a presence check), so what it reports is
//! what tool processes get.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use landlock::{
    path_beneath_rules, Access, AccessFs, AccessNet, CompatLevel, Compatible, Ruleset, RulesetAttr,
    RulesetCreated, RulesetCreatedAttr, RulesetStatus, ABI,
};

use crate::AgentError;

/// The Landlock ABI whose rights we ask for (newer kernels: same rights; older: best effort).
const LANDLOCK_TARGET_ABI: ABI = ABI::V5;
/// Device files a sandboxed tool may write (shell redirections need `/dev/null`).
const WRITABLE_DEVICES: &[&str] = &["/dev/null", "/dev/zero", "/dev/full", "/dev/tty"];

/// Which mechanism confines tool processes.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SandboxBackend {
    Bubblewrap { path: PathBuf },
    Landlock { abi: i32 },
    None,
}

/// What the network of a sandboxed tool looks like.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkPolicy {
    /// Empty network namespace: nothing reachable, loopback included.
    Isolated,
    /// TCP bind and connect denied (Landlock ABI >= 4); UDP still possible.
    TcpDenied,
    /// No restriction.
    Open,
}

/// What this machine offers, as observed by actually running the backends.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SandboxReport {
    /// The backend tools will use (the first that works).
    pub backend: SandboxBackend,
    pub bwrap_path: Option<PathBuf>,
    pub bwrap_works: bool,
    /// Why bwrap did not work, when present but failing.
    pub bwrap_error: Option<String>,
    /// The kernel's Landlock ABI version; `None` when unsupported or disabled.
    pub landlock_abi: Option<i32>,
    pub landlock_works: bool,
    pub writes_restricted: bool,
    pub network: NetworkPolicy,
}

/// Runs the backends with the real policy on throwaway directories and reports what works.
///
/// Each call has its own scratch directory (concurrent probes in one process must not share
/// one: a probe that removed it under another made that one's tools fail to start).
pub fn probe() -> SandboxReport {
    let bwrap_path = find_in_path("bwrap");
    let landlock_abi = landlock_abi();
    let scratch_dir = tempfile::Builder::new()
        .prefix("arle-sandbox-probe-")
        .tempdir()
        .ok();
    let scratch = scratch_dir.as_ref().map(|d| d.path());
    let (bwrap_works, bwrap_error) = match (&bwrap_path, scratch) {
        (Some(path), Some(scratch)) => {
            let sandbox = Sandbox::with_backend(
                SandboxBackend::Bubblewrap { path: path.clone() },
                scratch,
                scratch,
            );
            match try_true(&sandbox) {
                Ok(()) => (true, None),
                Err(e) => (false, Some(e)),
            }
        }
        _ => (false, None),
    };
    let landlock_works = match (landlock_abi, scratch) {
        (Some(abi), Some(scratch)) => {
            let sandbox = Sandbox::with_backend(SandboxBackend::Landlock { abi }, scratch, scratch);
            try_true(&sandbox).is_ok()
        }
        _ => false,
    };
    drop(scratch_dir); // removes the scratch directory
    let backend = match (&bwrap_path, bwrap_works, landlock_abi, landlock_works) {
        (Some(path), true, _, _) => SandboxBackend::Bubblewrap { path: path.clone() },
        (_, _, Some(abi), true) => SandboxBackend::Landlock { abi },
        _ => SandboxBackend::None,
    };
    let network = match &backend {
        SandboxBackend::Bubblewrap { .. } => NetworkPolicy::Isolated,
        SandboxBackend::Landlock { abi } if *abi >= 4 => NetworkPolicy::TcpDenied,
        _ => NetworkPolicy::Open,
    };
    SandboxReport {
        writes_restricted: backend != SandboxBackend::None,
        backend,
        bwrap_path,
        bwrap_works,
        bwrap_error,
        landlock_abi,
        landlock_works,
        network,
    }
}

fn try_true(sandbox: &Sandbox) -> Result<(), String> {
    let output = sandbox
        .command("true", &[])
        .map_err(|e| e.to_string())?
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_string())
    }
}

/// The kernel's Landlock ABI version, `None` when Landlock is unavailable.
pub fn landlock_abi() -> Option<i32> {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: landlock_create_ruleset(NULL, 0, VERSION) only returns the ABI version (or -1);
    // it reads no memory.
    let version = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    i32::try_from(version).ok().filter(|&v| v > 0)
}

fn find_in_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}

/// Confinement for the tool processes of one session.
#[derive(Clone, Debug)]
pub struct Sandbox {
    backend: SandboxBackend,
    work_dir: PathBuf,
    tmp_dir: PathBuf,
}

impl Sandbox {
    /// A sandbox on `backend` that lets tools write `work_dir` and `tmp_dir` only.
    pub fn with_backend(backend: SandboxBackend, work_dir: &Path, tmp_dir: &Path) -> Self {
        Self {
            backend,
            work_dir: work_dir.to_path_buf(),
            tmp_dir: tmp_dir.to_path_buf(),
        }
    }

    pub fn backend(&self) -> &SandboxBackend {
        &self.backend
    }

    /// A command that runs `program args` inside the sandbox, in the working directory.
    pub fn command(&self, program: &str, args: &[String]) -> Result<Command, AgentError> {
        let mut command = match &self.backend {
            SandboxBackend::Bubblewrap { path } => self.bwrap_command(path, program, args),
            SandboxBackend::Landlock { .. } => {
                let mut command = Command::new(program);
                command.args(args);
                self.apply_landlock(&mut command)?;
                command
            }
            SandboxBackend::None => {
                let mut command = Command::new(program);
                command.args(args);
                command
            }
        };
        command
            .current_dir(&self.work_dir)
            .env("TMPDIR", &self.tmp_dir);
        Ok(command)
    }

    fn bwrap_command(&self, bwrap: &Path, program: &str, args: &[String]) -> Command {
        let mut command = Command::new(bwrap);
        command.args(["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]);
        for dir in [&self.work_dir, &self.tmp_dir] {
            command.arg("--bind").arg(dir).arg(dir);
        }
        command
            .args([
                "--unshare-net",
                "--unshare-pid",
                "--die-with-parent",
                "--new-session",
            ])
            .arg("--chdir")
            .arg(&self.work_dir)
            .arg("--")
            .arg(program)
            .args(args);
        command
    }

    /// Builds the ruleset here (allocation is fine in the parent) and enforces it in the child
    /// between fork and exec.
    fn apply_landlock(&self, command: &mut Command) -> Result<(), AgentError> {
        let ruleset = self.landlock_ruleset().map_err(AgentError::Sandbox)?;
        let slot = Mutex::new(Some(ruleset));
        let restrict = move || -> std::io::Result<()> {
            let ruleset = slot
                .lock()
                .ok()
                .and_then(|mut g| g.take())
                .ok_or_else(|| std::io::Error::other("landlock ruleset already used"))?;
            let status = ruleset.restrict_self().map_err(std::io::Error::other)?;
            if status.ruleset == RulesetStatus::NotEnforced {
                return Err(std::io::Error::other("landlock is not enforced"));
            }
            Ok(())
        };
        // SAFETY: the closure runs in the forked child before exec; it only takes the prepared
        // ruleset out of an uncontended mutex and makes the prctl/landlock syscalls.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(command, restrict);
        }
        Ok(())
    }

    fn landlock_ruleset(&self) -> Result<RulesetCreated, String> {
        let abi = LANDLOCK_TARGET_ABI;
        let err = |e: landlock::RulesetError| e.to_string();
        let devices: Vec<&str> = WRITABLE_DEVICES
            .iter()
            .copied()
            .filter(|p| Path::new(p).exists())
            .collect();
        Ruleset::default()
            .set_compatibility(CompatLevel::BestEffort)
            .handle_access(AccessFs::from_all(abi))
            .map_err(err)?
            .handle_access(AccessNet::from_all(abi))
            .map_err(err)?
            .create()
            .map_err(err)?
            .add_rules(path_beneath_rules(["/"], AccessFs::from_read(abi)))
            .map_err(err)?
            .add_rules(path_beneath_rules(
                [&self.work_dir, &self.tmp_dir],
                AccessFs::from_all(abi),
            ))
            .map_err(err)?
            .add_rules(path_beneath_rules(devices, AccessFs::from_file(abi)))
            .map_err(err)
    }
}
