//! arle-kernels (work in progress).
