//! `ARLE_STEP_TIMING`: host-vs-device time of each model forward, logged to stderr every N
//! steps, to see whether a decode step is bound by host work (launch overhead, uploads) or by
//! the GPU.
//!
//! A forward calls [`start`] (None unless the knob is set, so the cost when off is one cached
//! env read) and [`StepTimer::finish`] with its output: `host` is the wall time until the last
//! op was enqueued, `wait` the time then spent in a stream synchronize until the GPU finished.
//! `ARLE_STEP_TIMING=1` logs every 32 steps, `=N` (N > 1) every N steps. The log line also gives
//! the metadata uploads, buffer-pool misses and new cuBLASLt plans per step over the window
//! (all ~0 in a warm decode).
//!
//! Invariants: with the knob off nothing is synchronised or recorded; with it on the forward
//! waits for its own output (the caller reads the logits right after anyway).

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::{Result, Tensor};

/// Steps per log line, or None when the knob is off.
fn every() -> Option<u64> {
    static EVERY: OnceLock<Option<u64>> = OnceLock::new();
    *EVERY.get_or_init(|| crate::timing_knob::steps_per_log_from_env("ARLE_STEP_TIMING", 32))
}

/// Sums over the current window.
#[derive(Default)]
struct Window {
    steps: u64,
    tokens: u64,
    host: Duration,
    wait: Duration,
    uploads: u64,
    misses: u64,
    plans: u64,
    /// Counters at the window start (uploads, misses, plans).
    base: Option<(u64, u64, u64)>,
}

fn window() -> &'static Mutex<Window> {
    static W: OnceLock<Mutex<Window>> = OnceLock::new();
    W.get_or_init(|| Mutex::new(Window::default()))
}

/// One forward being timed.
#[derive(Debug)]
pub struct StepTimer {
    start: Instant,
    tokens: usize,
}

/// A timer for a forward over `tokens` tokens, when `ARLE_STEP_TIMING` is set.
pub fn start(tokens: usize) -> Option<StepTimer> {
    if super::graph::session_active() {
        return None; // a step being captured must not synchronise
    }
    every().map(|_| StepTimer {
        start: Instant::now(),
        tokens,
    })
}

impl StepTimer {
    /// Ends the step: waits for `out`'s device (if on a GPU), records, logs at window ends.
    pub fn finish(self, out: &Tensor) -> Result<()> {
        let host = self.start.elapsed();
        let counters = match out.gpu() {
            Some(g) => {
                let b = g.backend();
                b.synchronize()?;
                let pool = b.pool().stats();
                Some((
                    b.metadata_uploads(),
                    pool.misses,
                    b.gemm_plan_count() as u64,
                ))
            }
            None => None,
        };
        let wait = self.start.elapsed().saturating_sub(host);
        let Some(every) = every() else {
            return Ok(());
        };
        let Ok(mut w) = window().lock() else {
            return Ok(());
        };
        let c = counters.unwrap_or((0, 0, 0));
        let base = *w.base.get_or_insert(c);
        w.steps += 1;
        w.tokens += self.tokens as u64;
        w.host += host;
        w.wait += wait;
        (w.uploads, w.misses, w.plans) = (
            c.0.saturating_sub(base.0),
            c.1.saturating_sub(base.1),
            c.2.saturating_sub(base.2),
        );
        if w.steps >= every {
            let s = w.steps as f64;
            let ms = |d: Duration| d.as_secs_f64() * 1e3 / s;
            eprintln!(
                "[arle step-timing] {} steps, {:.1} tokens/step: host enqueue {:.3} ms, device \
                 wait {:.3} ms, total {:.3} ms per step; per step: {:.1} metadata uploads, {:.1} \
                 pool misses, {:.2} new GEMM plans",
                w.steps,
                w.tokens as f64 / s,
                ms(w.host),
                ms(w.wait),
                ms(w.host + w.wait),
                w.uploads as f64 / s,
                w.misses as f64 / s,
                w.plans as f64 / s,
            );
            *w = Window {
                base: Some(c),
                ..Window::default()
            };
        }
        Ok(())
    }
}
