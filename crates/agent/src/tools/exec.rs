//! Runs one tool process: captured stdout/stderr with a byte cap, a wall-clock timeout, and
//! cancellation. The child gets its own process group, so a timeout or cancel kills everything
//! it started.
//!
//! Invariants: the returned output never holds more than `max_output_bytes` bytes per stream;
//! the number of bytes dropped is reported; the process group is killed before returning
//! whenever the child is still running.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::io_err;
use crate::llm::CancelFlag;
use crate::AgentError;

/// How often the runner checks the child, the deadline and the cancel flag.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Limits of one run.
#[derive(Clone, Copy, Debug)]
pub struct ExecLimits {
    pub timeout: Duration,
    pub max_output_bytes: usize,
}

/// One captured stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CapturedStream {
    /// Lossy UTF-8 of the first `max_output_bytes` bytes.
    pub text: String,
    /// Bytes produced beyond the cap.
    pub dropped_bytes: usize,
}

/// Result of a finished, timed-out or cancelled process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecOutput {
    /// `None` when killed (timeout, cancel) or ended by a signal.
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    pub cancelled: bool,
    pub stdout: CapturedStream,
    pub stderr: CapturedStream,
    pub elapsed: Duration,
}

/// Spawns `command` (stdin closed, stdout/stderr piped) and waits under `limits`.
pub fn run_limited(
    mut command: Command,
    limits: ExecLimits,
    cancel: &CancelFlag,
) -> Result<ExecOutput, AgentError> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let started = Instant::now();
    let mut child = command
        .spawn()
        .map_err(io_err(format!("starting {:?}", command.get_program())))?;
    let stdout = child
        .stdout
        .take()
        .map(|s| capture(s, limits.max_output_bytes));
    let stderr = child
        .stderr
        .take()
        .map(|s| capture(s, limits.max_output_bytes));
    let mut timed_out = false;
    let mut cancelled = false;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(io_err("waiting for the tool"))? {
            break status;
        }
        if started.elapsed() >= limits.timeout {
            timed_out = true;
        } else if cancel.is_cancelled() {
            cancelled = true;
        }
        if timed_out || cancelled {
            kill_group(child.id());
            break child
                .wait()
                .map_err(io_err("waiting for the killed tool"))?;
        }
        std::thread::sleep(POLL_INTERVAL);
    };
    // The group may hold children that keep the pipes open; they die with the group.
    kill_group(child.id());
    let join = |h: Option<std::thread::JoinHandle<CapturedStream>>| {
        h.and_then(|h| h.join().ok()).unwrap_or_default()
    };
    Ok(ExecOutput {
        exit_code: if timed_out || cancelled {
            None
        } else {
            status.code()
        },
        timed_out,
        cancelled,
        stdout: join(stdout),
        stderr: join(stderr),
        elapsed: started.elapsed(),
    })
}

fn kill_group(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: kill(2) with a negative pid signals the process group we created for the
        // child (process_group(0) makes its pgid equal its pid); no memory is touched.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}

/// Reads a pipe to the end on a thread, keeping the first `max_bytes` bytes.
fn capture(
    mut pipe: impl Read + Send + 'static,
    max_bytes: usize,
) -> std::thread::JoinHandle<CapturedStream> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut dropped_bytes = 0;
        let mut buf = [0u8; 8192];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let room = max_bytes.saturating_sub(kept.len());
                    let take = n.min(room);
                    kept.extend_from_slice(&buf[..take]);
                    dropped_bytes += n - take;
                }
            }
        }
        CapturedStream {
            text: String::from_utf8_lossy(&kept).into_owned(),
            dropped_bytes,
        }
    })
}
