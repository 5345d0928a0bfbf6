//! The CPU thread pool. `--threads N` configures rayon's global pool once at start-up.

/// Sets the number of CPU worker threads. Returns an error string if the pool was
/// already initialised (configuration must happen before the first op runs).
pub fn init_cpu_threads(num_threads: usize) -> Result<(), String> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(num_threads)
        .build_global()
        .map_err(|e| e.to_string())
}

/// Threads the CPU backend uses.
pub fn cpu_threads() -> usize {
    rayon::current_num_threads()
}
