//! The embedded CUDA C sources: one `.cu` file per op family under `src/cu/`, each prefixed with
//! `common.cuh` before compilation. Invariant: every kernel a launcher loads is listed in its
//! source's `functions`, and every `.cu` file in `src/cu/` appears in [`ALL_SOURCES`] (a test
//! checks the directory against this list).

/// Shared prelude (bf16 helpers and reductions) prepended to every source.
pub const PRELUDE: &str = include_str!("cu/common.cuh");

/// One compilation unit: a `.cu` file and the `extern "C"` kernels it defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KernelSource {
    /// File stem, also the module name (`rms_norm` for `cu/rms_norm.cu`).
    pub name: &'static str,
    /// The file's text (without the prelude).
    pub code: &'static str,
    /// Kernel entry points defined in the file.
    pub functions: &'static [&'static str],
}

impl KernelSource {
    /// The text NVRTC compiles: prelude, then the file.
    pub fn full_text(&self) -> String {
        format!("{PRELUDE}\n#line 1 \"{}.cu\"\n{}", self.name, self.code)
    }
}

macro_rules! source {
    ($name:literal, [$($f:literal),* $(,)?]) => {
        KernelSource {
            name: $name,
            code: include_str!(concat!("cu/", $name, ".cu")),
            functions: &[$($f),*],
        }
    };
}

pub const EMBEDDING: KernelSource = source!("embedding", ["embedding_bf16"]);
pub const RMS_NORM: KernelSource = source!(
    "rms_norm",
    ["rms_norm_bf16", "add_rms_norm_bf16", "rms_norm_gated_bf16"]
);
pub const ROPE: KernelSource = source!("rope", ["rope_neox_bf16"]);
pub const SILU_MUL: KernelSource = source!("silu_mul", ["silu_mul_bf16"]);
pub const GEMV: KernelSource =
    source!("gemv", ["gemv_bf16", "gemv_bf16_f32out", "gemv_multi_bf16"]);
pub const PAGED_KV: KernelSource = source!("paged_kv", ["paged_kv_append_bf16"]);
pub const PAGED_ATTENTION_DECODE: KernelSource = source!(
    "paged_attention_decode",
    [
        "paged_attn_decode_partial_bf16",
        "paged_attn_decode_reduce_bf16",
        "paged_attn_decode_gqa_bf16"
    ]
);
pub const PAGED_ATTENTION_PREFILL: KernelSource =
    source!("paged_attention_prefill", ["paged_attn_prefill_bf16"]);
pub const PAGED_ATTENTION_PREFILL_MMA: KernelSource = source!(
    "paged_attention_prefill_mma",
    ["paged_attn_prefill_mma_bf16"]
);
pub const GATED_DELTA_NET: KernelSource =
    source!("gated_delta_net", ["gdn_decode_bf16", "gdn_prefill_bf16"]);
pub const GDN_CHUNKED: KernelSource = source!("gdn_chunked", ["gdn_chunked_prefill_bf16"]);
pub const CAUSAL_CONV1D: KernelSource = source!(
    "causal_conv1d",
    ["causal_conv1d_prefill_bf16", "causal_conv1d_decode_bf16"]
);
pub const MOE_ROUTING: KernelSource = source!("moe_routing", ["moe_topk_softmax_bf16"]);
pub const MOE_EXPERTS: KernelSource = source!(
    "moe_experts",
    [
        "moe_topk_softmax_f32w",
        "moe_align",
        "moe_grouped_gemm_bf16",
        "moe_combine_bf16"
    ]
);
pub const LOGPROBS: KernelSource = source!("logprobs", ["log_softmax_bf16", "log_softmax_f32"]);
pub const SAMPLING: KernelSource =
    source!("sampling", ["apply_penalties_f32", "sample_tokens_f32"]);

/// Every compilation unit of the crate.
pub const ALL_SOURCES: &[KernelSource] = &[
    EMBEDDING,
    RMS_NORM,
    ROPE,
    SILU_MUL,
    GEMV,
    PAGED_KV,
    PAGED_ATTENTION_DECODE,
    PAGED_ATTENTION_PREFILL,
    PAGED_ATTENTION_PREFILL_MMA,
    GATED_DELTA_NET,
    GDN_CHUNKED,
    CAUSAL_CONV1D,
    MOE_ROUTING,
    MOE_EXPERTS,
    LOGPROBS,
    SAMPLING,
];
