//! arle-engine (work in progress).
