//! arle-api (work in progress).
