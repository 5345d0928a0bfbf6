//! arle-server (work in progress).
