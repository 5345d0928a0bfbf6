//! arle-models (work in progress).
