//! The op set models are written against. Every op validates shapes and returns
//! [`crate::TensorError`] on mismatch; none panics on bad input.
//!
//! CPU implementations use rayon for parallelism and runtime-selected SIMD (AVX2/FMA on
//! x86_64, see `simd`/`gemm`; [`crate::quant`] for the weight dot products and dequantisation).
//! [`reference`] keeps the naive single-threaded versions as the test oracle.
//!
//! With the `cuda` feature the ops of the llama/qwen3 forward are exported from `dispatch`
//! instead, which runs each on the device of its inputs (CPU op or `crate::cuda`).

mod activation;
mod attention;
mod conv1d;
#[cfg(feature = "cuda")]
mod dispatch;
mod gated_norm;
mod gdn;
mod gemm;
mod linear;
pub(crate) mod norm;
#[doc(hidden)]
pub mod reference;
mod rope;
mod simd;
mod softmax;

#[cfg(not(feature = "cuda"))]
pub use activation::sigmoid_mul;
#[cfg(not(feature = "cuda"))]
pub use activation::{add_inplace, silu_mul};
#[cfg(not(feature = "cuda"))]
pub use attention::{kv_append, paged_attention};
pub use attention::{AttentionMeta, SeqSpan, PAD_SLOT};
pub use conv1d::{causal_conv1d_silu, conv_window_after};
#[cfg(feature = "cuda")]
pub use dispatch::sparse_moe;
#[cfg(feature = "cuda")]
pub use dispatch::{
    add_inplace, add_rms_norm, apply_rope, embedding, kv_append, linear, paged_attention, rms_norm,
    silu_mul,
};
#[cfg(feature = "cuda")]
pub use dispatch::{gated_rms_norm, sigmoid_mul};
#[cfg(not(feature = "cuda"))]
pub use gated_norm::gated_rms_norm;
pub use gdn::{
    gated_delta_rule_chunked, gated_delta_rule_recurrent, gdn_gates, GdnInput, GdnShape, GDN_CHUNK,
};
pub use linear::linear_into;
#[cfg(not(feature = "cuda"))]
pub use linear::{embedding, linear};
pub use norm::RmsNormKind;
#[cfg(not(feature = "cuda"))]
pub use norm::{add_rms_norm, rms_norm};
#[cfg(not(feature = "cuda"))]
pub use rope::apply_rope;
pub use rope::RopeTable;
pub use softmax::log_softmax_rows;

/// The GPU sparse-MoE op (see `dispatch::sparse_moe`); without the `cuda` feature no tensor lives
/// on a GPU, so it always errors (models call it only for GPU activations).
#[cfg(not(feature = "cuda"))]
pub fn sparse_moe(
    _x: &crate::Tensor,
    _router_logits: &crate::Tensor,
    _gate_up: &crate::Weight,
    _down: &crate::Weight,
    _top_k: usize,
    _shared: Option<(&crate::Tensor, &crate::Weight)>,
) -> crate::Result<crate::Tensor> {
    Err(crate::TensorError::Invalid {
        op: "sparse_moe",
        detail: "built without the `cuda` feature".into(),
    })
}

/// Several projections of one input: `[linear(x, w, b) for (w, b) in layers]` (q|k|v, gate|up).
/// On a GPU, up to three decode-sized ones (at most 8 rows) run as one GEMV launch with the same
/// values as separate `linear`s; otherwise, and on the CPU, one `linear` each.
pub fn linear_group(
    x: &crate::Tensor,
    layers: &[(&crate::Weight, Option<&crate::Weight>)],
) -> crate::Result<Vec<crate::Tensor>> {
    #[cfg(feature = "cuda")]
    if x.gpu().is_some() {
        if let Some(out) = crate::cuda::ops::linear_group(x, layers)? {
            return Ok(out);
        }
    }
    layers.iter().map(|&(w, b)| linear(x, w, b)).collect()
}
