//! arle-sched (work in progress).
