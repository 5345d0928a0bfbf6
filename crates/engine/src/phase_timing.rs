//! `ARLE_ENGINE_TIMING`: where the engine thread's time goes per step — scheduling, the model
//! call (forward + sampling on the device, or the forward alone on the CPU), and the host work
//! after it (host sampling, detokenizing, stop checks, events, the scheduler's update) — logged
//! to stderr every N steps. It bounds what overlapping the host work of step N+1 with the GPU
//! work of step N can buy: at most the schedule + after share of a step.
//!
//! `ARLE_ENGINE_TIMING=1` logs every 100 steps, `=N` (N > 1) every N steps; unset or `0` is off,
//! and then nothing is timed. Invariant: timing never changes what a step does.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Steps per log line from the environment, or None when the knob is off.
fn every_from_env() -> Option<u64> {
    static EVERY: OnceLock<Option<u64>> = OnceLock::new();
    *EVERY
        .get_or_init(|| arle_tensor::timing_knob::steps_per_log_from_env("ARLE_ENGINE_TIMING", 100))
}

/// Phase sums of the current window of steps.
#[derive(Debug, Default)]
pub(crate) struct PhaseTimes {
    every: u64,
    steps: u64,
    sequences: u64,
    schedule: Duration,
    model: Duration,
    after: Duration,
}

/// One step's phase boundaries.
pub(crate) struct StepClock {
    start: Instant,
    scheduled: Option<Instant>,
    modelled: Option<Instant>,
}

impl PhaseTimes {
    /// Off unless `ARLE_ENGINE_TIMING` is set.
    pub(crate) fn from_env() -> Self {
        Self::every(every_from_env().unwrap_or(0))
    }

    /// A window of `every` steps; 0 turns timing off.
    pub(crate) fn every(every: u64) -> Self {
        Self {
            every,
            ..Self::default()
        }
    }

    /// A clock for the step starting now, or None when timing is off.
    pub(crate) fn start(&self) -> Option<StepClock> {
        (self.every > 0).then(|| StepClock {
            start: Instant::now(),
            scheduled: None,
            modelled: None,
        })
    }

    /// Adds a finished step of `sequences` scheduled sequences; returns the window's line when
    /// it completes (and starts the next window).
    pub(crate) fn record(&mut self, clock: StepClock, sequences: usize) -> Option<String> {
        let end = Instant::now();
        let scheduled = clock.scheduled.unwrap_or(end);
        let modelled = clock.modelled.unwrap_or(end).max(scheduled);
        self.steps += 1;
        self.sequences += sequences as u64;
        self.schedule += scheduled - clock.start;
        self.model += modelled - scheduled;
        self.after += end - modelled;
        (self.steps >= self.every).then(|| {
            let line = self.line();
            *self = Self::every(self.every);
            line
        })
    }

    fn line(&self) -> String {
        let s = self.steps.max(1) as f64;
        let ms = |d: Duration| d.as_secs_f64() * 1e3 / s;
        let total = self.schedule + self.model + self.after;
        format!(
            "[arle engine-timing] {} steps, {:.1} sequences/step: schedule {:.3} ms, model {:.3} \
             ms, after {:.3} ms, total {:.3} ms per step (host share {:.1}%)",
            self.steps,
            self.sequences as f64 / s,
            ms(self.schedule),
            ms(self.model),
            ms(self.after),
            ms(total),
            100.0 * (self.schedule + self.after).as_secs_f64() / total.as_secs_f64().max(1e-12),
        )
    }
}

impl StepClock {
    /// The scheduler has produced the step's batch.
    pub(crate) fn scheduled(&mut self) {
        self.scheduled = Some(Instant::now());
    }

    /// The model call has returned (its outputs are on the host).
    pub(crate) fn modelled(&mut self) {
        self.modelled = Some(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_means_no_clock() {
        assert!(PhaseTimes::every(0).start().is_none());
    }

    #[test]
    fn a_window_reports_once_then_restarts() {
        let mut t = PhaseTimes::every(2);
        let mut c = t.start().expect("on");
        c.scheduled();
        std::thread::sleep(Duration::from_millis(2));
        c.modelled();
        assert!(t.record(c, 4).is_none());
        let c = t.start().expect("on");
        let line = t.record(c, 8).expect("second step ends the window");
        assert!(line.contains("2 steps, 6.0 sequences/step"), "{line}");
        // The 2 ms slept between `scheduled` and `modelled` is model time: >= 1 ms per step.
        let model_ms: f64 = line
            .split("model ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|v| v.parse().ok())
            .expect("model field");
        assert!(model_ms >= 1.0, "{line}");
        assert_eq!(t.steps, 0, "the window restarted");
        assert_eq!(t.every, 2);
    }
}
