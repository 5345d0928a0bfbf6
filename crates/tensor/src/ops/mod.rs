//! The op set models are written against. Every op validates shapes and returns
//! [`crate::TensorError`] on mismatch; none panics on bad input.
//!
//! CPU implementations use rayon for parallelism and runtime-selected SIMD (AVX2/FMA on
//! x86_64, see `simd`/`gemm`; [`crate::quant`] for the weight dot products and dequantisation).
//! [`reference`] keeps the naive single-threaded versions as the test oracle.

mod activation;
mod attention;
mod conv1d;
mod gated_norm;
mod gdn;
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
pub use conv1d::{causal_conv1d_silu, conv_window_after};
pub use gated_norm::gated_rms_norm;
pub use gdn::{
    gated_delta_rule_chunked, gated_delta_rule_recurrent, gdn_gates, GdnInput, GdnShape, GDN_CHUNK,
};
pub use linear::{embedding, linear, linear_into};
pub use norm::{rms_norm, RmsNormKind};
pub use rope::{apply_rope, RopeTable};
pub use softmax::log_softmax_rows;
