//! Summary statistics over samples (latencies in ms, rates in tok/s).
//!
//! Invariant: a [`Summary`] of an empty sample set is all zeros with `count == 0`, so reports
//! never divide by zero; percentiles use linear interpolation between closest ranks (numpy's
//! default), so `p50 == median`.

/// Mean, spread and percentiles of one metric.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Summary {
    pub count: usize,
    pub mean: f64,
    pub std: f64,
    pub median: f64,
    pub p99: f64,
    pub min: f64,
    pub max: f64,
}

impl Summary {
    /// Summarises `samples` (order does not matter).
    pub fn of(samples: &[f64]) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let count = sorted.len();
        let mean = sorted.iter().sum::<f64>() / count as f64;
        let var = sorted.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / count as f64;
        Self {
            count,
            mean,
            std: var.sqrt(),
            median: percentile_sorted(&sorted, 50.0),
            p99: percentile_sorted(&sorted, 99.0),
            min: sorted[0],
            max: sorted[count - 1],
        }
    }
}

/// The `pct`-th percentile (0..=100) of ascending `sorted`, interpolating linearly.
pub fn percentile_sorted(sorted: &[f64], pct: f64) -> f64 {
    match sorted.len() {
        0 => 0.0,
        1 => sorted[0],
        n => {
            let rank = pct.clamp(0.0, 100.0) / 100.0 * (n - 1) as f64;
            let lo = rank.floor() as usize;
            let hi = (lo + 1).min(n - 1);
            let frac = rank - lo as f64;
            sorted[lo] + (sorted[hi] - sorted[lo]) * frac
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_matches_hand_computed_values() {
        let s = Summary::of(&[4.0, 1.0, 3.0, 2.0]);
        assert_eq!(s.count, 4);
        assert!((s.mean - 2.5).abs() < 1e-12);
        assert!((s.median - 2.5).abs() < 1e-12);
        // population std of 1..4 = sqrt(1.25)
        assert!((s.std - 1.25f64.sqrt()).abs() < 1e-12);
        // rank 0.99 * 3 = 2.97 -> 3 + 0.97 * (4 - 3)
        assert!((s.p99 - 3.97).abs() < 1e-12);
        assert_eq!((s.min, s.max), (1.0, 4.0));
    }

    #[test]
    fn empty_and_single_samples() {
        assert_eq!(Summary::of(&[]), Summary::default());
        let s = Summary::of(&[7.0]);
        assert_eq!((s.mean, s.median, s.p99, s.std), (7.0, 7.0, 7.0, 0.0));
    }

    #[test]
    fn odd_count_median_is_middle_element() {
        assert_eq!(percentile_sorted(&[1.0, 5.0, 9.0], 50.0), 5.0);
        assert_eq!(percentile_sorted(&[1.0, 5.0, 9.0], 100.0), 9.0);
        assert_eq!(percentile_sorted(&[1.0, 5.0, 9.0], 0.0), 1.0);
    }
}
