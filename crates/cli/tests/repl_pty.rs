//! A real-model REPL session through a pseudo-terminal: `arle --no-tools` on the SmolLM2 GGUF,
//! a question answered by streaming, a long answer cancelled with Ctrl-C (the program keeps
//! running), `/stats` (the second turn reused the first turn's KV: cached tokens > 0), `/quit`
//! with exit status 0.

#![allow(clippy::unwrap_used)]

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// Everything the program wrote, with the time each chunk arrived.
#[derive(Default)]
struct Screen {
    text: String,
    chunks: Vec<(Instant, usize)>,
}

struct Pty {
    child: Child,
    writer: File,
    screen: Arc<Mutex<Screen>>,
}

impl Pty {
    fn spawn(args: &[String]) -> Pty {
        let mut master: libc::c_int = -1;
        let mut slave: libc::c_int = -1;
        let size = libc::winsize {
            ws_row: 40,
            ws_col: 120,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: openpty writes two fds; the null pointers mean "no name, default termios".
        let rc = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                &size,
            )
        };
        assert_eq!(rc, 0, "openpty failed");
        // SAFETY: both fds were just returned by openpty and are owned here.
        let (master, slave) =
            unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_arle"));
        cmd.args(args)
            .env("TERM", "xterm")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave));
        // SAFETY: setsid and ioctl(TIOCSCTTY) are async-signal-safe; they make the pty the
        // child's controlling terminal so Ctrl-C becomes SIGINT for it.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawning arle");
        let master = File::from(master);
        let mut reader = master.try_clone().unwrap();
        let mut answerer = master.try_clone().unwrap();
        let screen = Arc::new(Mutex::new(Screen::default()));
        let shared = screen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let chunk = String::from_utf8_lossy(&buf[..n]).into_owned();
                // rustyline asks where the cursor is; answer like a terminal would.
                for _ in 0..chunk.matches("\x1b[6n").count() {
                    let _ = answerer.write_all(b"\x1b[1;1R");
                }
                let mut s = shared.lock().unwrap();
                s.text.push_str(&chunk);
                let end = s.text.len();
                s.chunks.push((Instant::now(), end));
            }
        });
        Pty {
            child,
            writer: master,
            screen,
        }
    }

    fn len(&self) -> usize {
        self.screen.lock().unwrap().text.len()
    }

    /// Waits until `needle` appears after byte `from`; returns the end offset of the match.
    fn expect(&self, from: usize, needle: &str, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let s = self.screen.lock().unwrap();
                if let Some(pos) = s.text.get(from..).and_then(|t| t.find(needle)) {
                    return from + pos + needle.len();
                }
                if Instant::now() > deadline {
                    panic!(
                        "timed out waiting for {needle:?}; screen since {from}:\n{}",
                        s.text.get(from..).unwrap_or("")
                    );
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn text(&self, from: usize, to: usize) -> String {
        self.screen.lock().unwrap().text[from..to].to_string()
    }

    /// Number of separate reads that delivered bytes in `from..to`.
    fn chunks_between(&self, from: usize, to: usize) -> usize {
        let s = self.screen.lock().unwrap();
        s.chunks
            .iter()
            .filter(|(_, end)| *end > from && *end <= to)
            .count()
    }

    fn send(&mut self, bytes: &str) {
        self.writer.write_all(bytes.as_bytes()).unwrap();
        self.writer.flush().unwrap();
    }
}

const PROMPT: &str = "> ";

#[test]
fn repl_session_streams_cancels_reports_stats_and_quits() {
    let history = tempfile::tempdir().unwrap();
    let args = [
        "--model".to_string(),
        smollm2_gguf().display().to_string(),
        "--no-tools".into(),
        "--temperature".into(),
        "0".into(),
        "--max-tokens".into(),
        "600".into(),
        "--history".into(),
        history.path().join("history").display().to_string(),
    ];
    let mut pty = Pty::spawn(&args);
    let long = Duration::from_secs(120);
    let banner = pty.expect(0, "/help for commands", long);
    let at = pty.expect(banner, PROMPT, long);

    // 1. A question, answered by streaming.
    std::thread::sleep(Duration::from_millis(200));
    pty.send("What is the capital of France?\r");
    let asked = pty.expect(at, "France?", long);
    let answered = pty.expect(asked, "Paris", long);
    let back = pty.expect(answered, PROMPT, long);
    let answer = pty.text(asked, back);
    assert!(answer.contains("Paris"), "{answer}");
    assert!(
        pty.chunks_between(asked, back) >= 2,
        "answer arrived in one piece: {answer:?}"
    );

    // 2. A long answer, cancelled with Ctrl-C; the REPL stays up.
    std::thread::sleep(Duration::from_millis(200));
    pty.send("Write a very long story about a dragon who learns to cook.\r");
    let asked = pty.expect(back, "cook.", long);
    // Wait for some streamed text, then interrupt.
    let deadline = Instant::now() + long;
    while pty.len() < asked + 40 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    pty.send("\x03");
    let cancelled = pty.expect(asked, "[cancelled]", Duration::from_secs(30));
    let back = pty.expect(cancelled, PROMPT, long);

    // 3. /stats: two turns, and the second reused the first turn's KV.
    std::thread::sleep(Duration::from_millis(200));
    pty.send("/stats\r");
    let stats_end = pty.expect(back, "completion tokens:", long);
    let stats_line_end = pty.expect(stats_end, "\n", long);
    let stats = pty.text(back, stats_line_end);
    assert!(stats.contains("turns: 2"), "{stats}");
    let cached: usize = stats
        .split("cached tokens: ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no cached tokens in {stats}"));
    assert!(cached > 0, "the second turn did not reuse the KV: {stats}");
    let back = pty.expect(stats_line_end, PROMPT, long);

    // 4. /quit exits cleanly.
    std::thread::sleep(Duration::from_millis(200));
    pty.send("/quit\r");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = pty.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "arle did not exit after /quit");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        status.success(),
        "exit status {status}; screen:\n{}",
        pty.text(back, pty.len())
    );
    let saved = std::fs::read_to_string(history.path().join("history")).unwrap();
    assert!(saved.contains("What is the capital of France?"), "{saved}");
}
