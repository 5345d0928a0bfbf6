//! The value convention of the `ARLE_*_TIMING` environment knobs (`ARLE_STEP_TIMING`,
//! `ARLE_ENGINE_TIMING`): how many steps one log line covers.
//!
//! Unset, empty or `0` → off (`None`); `1` or any non-number → the knob's default window;
//! `N > 1` → every N steps.

/// Steps per log line for a knob's raw `value`, or `None` when it is off.
pub fn steps_per_log(value: Option<&str>, default_steps: u64) -> Option<u64> {
    let v = value?.trim();
    match v.parse::<u64>() {
        Ok(0) => None,
        Ok(1) => Some(default_steps),
        Ok(n) => Some(n),
        Err(_) => (!v.is_empty()).then_some(default_steps),
    }
}

/// [`steps_per_log`] of the environment variable `name`.
pub fn steps_per_log_from_env(name: &str, default_steps: u64) -> Option<u64> {
    steps_per_log(std::env::var(name).ok().as_deref(), default_steps)
}

#[cfg(test)]
mod tests {
    use super::steps_per_log;

    #[test]
    fn knob_values() {
        assert_eq!(steps_per_log(None, 100), None);
        assert_eq!(steps_per_log(Some(""), 100), None);
        assert_eq!(steps_per_log(Some("0"), 100), None);
        assert_eq!(steps_per_log(Some("1"), 100), Some(100));
        assert_eq!(steps_per_log(Some(" 7 "), 100), Some(7));
        assert_eq!(steps_per_log(Some("yes"), 32), Some(32));
    }
}
