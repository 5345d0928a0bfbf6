//! The op set models are written against. Every op validates shapes and returns
//! [`crate::TensorError`] on mismatch; none panics on bad input.
//!
//! CPU implementations use rayon for parallelism and runtime-selected SIMD (AVX2/FMA on
//! x86_64, see `simd`/`gemm`; [`crate::quant`] for the weight dot products and dequantisation).
//! [`reference`] keeps the naive single-threaded versions as the test oracle.

mod activation;
mod attention;
mod gemm;
mod linear;
mod norm;
#[doc(hidden)]
pub mod reference;
mod rope;
mod simd;
mod softmax;

pub use activation::{add_inplace, sigmoid_mul, silu_mul};
pub use attention::{kv_append, paged_attention, AttentionMeta, SeqSpan};
pub use linear::{embedding, linear, linear_into};
pub use norm::{rms_norm, RmsNormKind};
pub use rope::{apply_rope, RopeTable};
pub use softmax::log_softmax_rows;
