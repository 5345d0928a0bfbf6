//! Server-side metrics and their Prometheus text rendering.
//!
//! [`Metrics`] holds what only the HTTP layer sees: request counts by (route, method, status)
//! and latency histograms (time to first token, inter-token latency, end-to-end). Engine
//! gauges and counters ([`EngineStats`]) are rendered next to them at scrape time.
//! Invariant: every histogram's `_count` equals its `+Inf` bucket and buckets are cumulative.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use arle_engine::handle::EngineStats;

/// Upper bucket bounds in seconds, shared by all latency histograms.
const LATENCY_BUCKETS_SECONDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0,
];

/// A fixed-bucket histogram of seconds.
#[derive(Debug)]
pub struct Histogram {
    /// Per-bucket (non-cumulative) counts; the last slot is `+Inf`.
    counts: Vec<AtomicU64>,
    sum_micros: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: (0..=LATENCY_BUCKETS_SECONDS.len())
                .map(|_| AtomicU64::new(0))
                .collect(),
            sum_micros: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub fn observe(&self, value: Duration) {
        let seconds = value.as_secs_f64();
        let slot = LATENCY_BUCKETS_SECONDS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(LATENCY_BUCKETS_SECONDS.len());
        if let Some(count) = self.counts.get(slot) {
            count.fetch_add(1, Ordering::Relaxed);
        }
        let micros = u64::try_from(value.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (i, count) in self.counts.iter().enumerate() {
            cumulative += count.load(Ordering::Relaxed);
            let le = LATENCY_BUCKETS_SECONDS
                .get(i)
                .map_or("+Inf".to_owned(), |b| b.to_string());
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
        }
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {cumulative}");
    }
}

/// Key of the request counter.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct RequestKey {
    route: String,
    method: String,
    status: u16,
}

/// Everything the HTTP layer measures.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<RequestKey, u64>>,
    pub time_to_first_token: Histogram,
    pub inter_token_latency: Histogram,
    pub e2e_request_latency: Histogram,
}

impl Metrics {
    /// Counts one finished HTTP request. `route` is the matched route pattern (or
    /// `unmatched`), so the label set stays bounded.
    pub fn record_request(&self, route: &str, method: &str, status: u16) {
        if let Ok(mut map) = self.requests.lock() {
            let key = RequestKey {
                route: route.to_owned(),
                method: method.to_owned(),
                status,
            };
            *map.entry(key).or_insert(0) += 1;
        }
    }

    /// The Prometheus text exposition (format 0.0.4) of these metrics plus `engine`.
    pub fn render(&self, engine: &EngineStats) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP arle_http_requests_total HTTP requests by route, method and status.\n",
        );
        out.push_str("# TYPE arle_http_requests_total counter\n");
        if let Ok(map) = self.requests.lock() {
            for (k, v) in map.iter() {
                let _ = writeln!(
                    out,
                    "arle_http_requests_total{{route=\"{}\",method=\"{}\",status=\"{}\"}} {v}",
                    k.route, k.method, k.status
                );
            }
        }
        self.time_to_first_token.render(
            &mut out,
            "arle_time_to_first_token_seconds",
            "Time from request submission to the first generated token.",
        );
        self.inter_token_latency.render(
            &mut out,
            "arle_inter_token_latency_seconds",
            "Time between consecutive generated tokens of one choice.",
        );
        self.e2e_request_latency.render(
            &mut out,
            "arle_e2e_request_latency_seconds",
            "Time from submission to the end of one choice.",
        );
        render_engine(&mut out, engine);
        out
    }
}

fn gauge(out: &mut String, name: &str, help: &str, value: impl std::fmt::Display) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
    );
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
    );
}

fn render_engine(out: &mut String, s: &EngineStats) {
    gauge(
        out,
        "arle_num_requests_waiting",
        "Requests queued, not yet running.",
        s.waiting_requests,
    );
    gauge(
        out,
        "arle_num_requests_running",
        "Sequences in the running batch.",
        s.running_requests,
    );
    gauge(
        out,
        "arle_kv_blocks_total",
        "KV cache pages in the pool.",
        s.kv_blocks_total,
    );
    gauge(
        out,
        "arle_kv_blocks_free",
        "KV cache pages not held by a request.",
        s.kv_blocks_free,
    );
    let used = s.kv_blocks_total.saturating_sub(s.kv_blocks_free);
    gauge(
        out,
        "arle_kv_blocks_used",
        "KV cache pages held by requests.",
        used,
    );
    gauge(
        out,
        "arle_kv_blocks_cached",
        "Free pages still holding reusable prefixes.",
        s.kv_blocks_cached,
    );
    gauge(
        out,
        "arle_kv_block_tokens",
        "Tokens per KV cache page.",
        s.kv_block_tokens,
    );
    let usage = if s.kv_blocks_total == 0 {
        0.0
    } else {
        used as f64 / s.kv_blocks_total as f64
    };
    gauge(
        out,
        "arle_kv_cache_usage_ratio",
        "Fraction of KV pages held by requests.",
        usage,
    );
    counter(
        out,
        "arle_prompt_tokens_total",
        "Prompt tokens processed.",
        s.prompt_tokens_total,
    );
    counter(
        out,
        "arle_generation_tokens_total",
        "Tokens generated.",
        s.generation_tokens_total,
    );
    counter(
        out,
        "arle_prefix_cache_hit_tokens_total",
        "Prompt tokens served from the prefix cache.",
        s.prefix_cache_hit_tokens_total,
    );
    counter(
        out,
        "arle_requests_finished_total",
        "Requests finished by the engine.",
        s.requests_finished_total,
    );
    counter(
        out,
        "arle_preemptions_total",
        "Sequences preempted for lack of KV pages.",
        s.preemptions_total,
    );
    counter(
        out,
        "arle_engine_steps_total",
        "Engine scheduling steps.",
        s.steps_total,
    );
    gauge(
        out,
        "arle_cuda_graphs",
        "Decode step shapes captured as CUDA graphs.",
        s.cuda_graphs,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_count_matches() {
        let m = Metrics::default();
        m.time_to_first_token.observe(Duration::from_millis(3));
        m.time_to_first_token.observe(Duration::from_millis(30));
        m.time_to_first_token.observe(Duration::from_secs(1000));
        let text = m.render(&EngineStats::default());
        assert!(
            text.contains("arle_time_to_first_token_seconds_bucket{le=\"0.005\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("arle_time_to_first_token_seconds_bucket{le=\"0.05\"} 2\n"));
        assert!(text.contains("arle_time_to_first_token_seconds_bucket{le=\"160\"} 2\n"));
        assert!(text.contains("arle_time_to_first_token_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("arle_time_to_first_token_seconds_count 3\n"));
        assert!(text.contains("arle_time_to_first_token_seconds_sum 1000.033\n"));
        assert_eq!(m.time_to_first_token.count(), 3);
    }

    #[test]
    fn request_counts_and_engine_stats_are_rendered() {
        let m = Metrics::default();
        m.record_request("/v1/models", "GET", 200);
        m.record_request("/v1/models", "GET", 200);
        m.record_request("unmatched", "GET", 404);
        let stats = EngineStats {
            kv_blocks_total: 10,
            kv_blocks_free: 7,
            prefix_cache_hit_tokens_total: 48,
            ..EngineStats::default()
        };
        let text = m.render(&stats);
        assert!(text.contains(
            "arle_http_requests_total{route=\"/v1/models\",method=\"GET\",status=\"200\"} 2\n"
        ));
        assert!(text.contains("status=\"404\"} 1\n"));
        assert!(text.contains("arle_kv_blocks_used 3\n"));
        assert!(text.contains("arle_kv_blocks_free 7\n"));
        assert!(text.contains("arle_prefix_cache_hit_tokens_total 48\n"));
        assert!(text.contains("arle_kv_cache_usage_ratio 0.3\n"));
    }
}
