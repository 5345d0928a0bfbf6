//! Typed launchers, one module per op family (mirroring `src/cu/`). Each launcher takes device
//! views (`CudaView` in, `CudaViewMut` out) plus a shape struct, checks every size the kernel
//! relies on (buffer lengths, divisibility, limits) and only then launches on the runtime's
//! stream. Values that live on the device (token ids, slots, sequence lengths) cannot be checked
//! without a host round-trip; each kernel's header says how it treats out-of-range values.

pub mod attention;
pub mod basic;
pub mod gdn_chunked;
pub mod gemv;
pub mod linear_attn;
pub mod moe;
pub mod norm;
pub mod routing;
pub mod sampling;

use crate::error::{ensure, KernelError, Result};

/// Converts a size to the kernels' `int`, failing when it does not fit.
pub(crate) fn to_i32(op: &'static str, what: &str, value: usize) -> Result<i32> {
    i32::try_from(value).map_err(|_| KernelError::Precondition {
        op,
        message: format!("{what} = {value} exceeds i32"),
    })
}

/// Converts a grid dimension, failing when it is zero or too large.
pub(crate) fn to_grid(op: &'static str, what: &str, value: usize) -> Result<u32> {
    ensure(value > 0, op, || format!("{what} must be > 0"))?;
    u32::try_from(value).map_err(|_| KernelError::Precondition {
        op,
        message: format!("{what} = {value} exceeds the grid limit"),
    })
}

/// Checks that a buffer holds at least `need` elements.
pub(crate) fn check_len(op: &'static str, what: &str, have: usize, need: usize) -> Result<()> {
    ensure(have >= need, op, || {
        format!("{what} holds {have} elements, needs {need}")
    })
}
