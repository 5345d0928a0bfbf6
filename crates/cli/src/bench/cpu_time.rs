//! CPU time used by this process (all threads), for tok-per-CPU-second figures that stay
//! meaningful on a machine shared with other loads.
//!
//! Linux only: reads utime + stime from `/proc/self/stat` (clock ticks, assumed 100 Hz, the
//! kernel's USER_HZ on every mainstream architecture), so the resolution is 10 ms; returns
//! `None` elsewhere or if the file cannot be parsed.

/// Ticks per second of the `/proc/*/stat` time fields.
const USER_HZ: f64 = 100.0;

/// User + system CPU time of this process so far, in ms.
pub fn process_cpu_ms() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_stat_cpu_ms(&stat)
}

/// utime + stime of a `/proc/<pid>/stat` line, in ms. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted after its closing `)`.
pub fn parse_stat_cpu_ms(stat: &str) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11); // field 14 (utime) is the 12th after `)`
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 * 1e3 / USER_HZ)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_utime_and_stime_after_the_command_name() {
        let line = "4242 (a b) c) R 1 4242 4242 0 -1 4194304 100 0 0 0 250 30 0 0 20 0 3 0";
        assert_eq!(parse_stat_cpu_ms(line), Some(2800.0));
        assert_eq!(parse_stat_cpu_ms("garbage"), None);
    }

    #[test]
    fn grows_while_spinning() {
        let Some(before) = process_cpu_ms() else {
            return; // not Linux
        };
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed().as_millis() < 300 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let after = process_cpu_ms().expect("readable twice");
        assert!(after > before, "{before} -> {after}");
    }
}
