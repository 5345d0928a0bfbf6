//! The op set models are written against. Every op validates shapes and returns
//! [`crate::TensorError`] on mismatch; none panics on bad input.
//!
//! CPU implementations use rayon for parallelism and runtime-selected SIMD
//! (see [`crate::quant`] for the weight dot products).

mod activation;
mod attention;
mod linear;
mod norm;
mod rope;
mod softmax;

pub use activation::{add_inplace, silu_mul};
pub use attention::{kv_append, paged_attention, AttentionMeta, SeqSpan};
pub use linear::{embedding, linear};
pub use norm::{rms_norm, RmsNormKind};
pub use rope::{apply_rope, RopeTable};
pub use softmax::log_softmax_rows;
