//! `arle-tensor`: the small, LLM-shaped tensor layer every model is written against.
//!
//! - [`DType`]: element and GGUF block formats with their exact byte sizes.
//! - [`Bytes`]: a cheap, shareable view of weight bytes (memory-mapped file or owned buffer).
//! - [`Weight`]: a read-only parameter kept in its file format (f32/bf16/f16/GGUF blocks).
//! - [`Tensor`]: an activation on a [`Device`] (f32 on the CPU; bf16 on a GPU with `cuda`).
//! - `cuda` (feature `cuda`): the CUDA backend the ops dispatch to for GPU tensors.
//! - [`ops`]: the op set (linear, norms, rope, paged attention, ...). Models call only these.
//! - [`quant`]: GGUF block dequantisation and dot products.
//! - [`kv`]: paged KV storage (16-token pages) read through block tables.
//! - [`timing_knob`]: the value convention of the `ARLE_*_TIMING` diagnostics knobs.
//!
//! Invariant: every op checks shapes and returns [`TensorError`] instead of panicking.

pub mod bytes;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod dtype;
pub mod error;
pub mod kv;
pub mod ops;
pub mod quant;
pub mod tensor;
pub mod threads;
pub mod timing_knob;
pub mod weight;

pub use bytes::Bytes;
pub use dtype::DType;
pub use error::{Result, TensorError};
pub use kv::{KvLayer, KV_BLOCK_TOKENS};
pub use tensor::{Device, Tensor};
pub use weight::Weight;
