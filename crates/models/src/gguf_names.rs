//! GGUF -> HF tensor names for the llama and qwen3 architectures, and the llama Q/K row
//! un-permutation (MODEL-SPECS §10).
//!
//! Invariants: the mapping is one-to-one; names it does not know are returned unchanged (so a
//! strict loader reports them as unexpected rather than silently dropping them). The
//! un-permutation only moves whole rows, so it is exact for every dtype, quantised included.

use arle_tensor::{Bytes, Weight};

use crate::{ModelError, Result};

/// How a GGUF tensor must be transformed into its HF layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowTransform {
    None,
    /// llama.cpp's llama Q/K layout: within each of `num_heads` heads of size D, GGUF row 2i+s
    /// holds HF row s·(D/2)+i.
    UnpermuteHeads {
        num_heads: usize,
    },
}

/// Per-block GGUF name (after `blk.N.`) -> HF module path (after `model.layers.N.`).
const BLOCK_NAMES: &[(&str, &str)] = &[
    ("attn_norm", "input_layernorm"),
    ("attn_q", "self_attn.q_proj"),
    ("attn_k", "self_attn.k_proj"),
    ("attn_v", "self_attn.v_proj"),
    ("attn_output", "self_attn.o_proj"),
    ("attn_q_norm", "self_attn.q_norm"),
    ("attn_k_norm", "self_attn.k_norm"),
    ("ffn_norm", "post_attention_layernorm"),
    ("ffn_gate", "mlp.gate_proj"),
    ("ffn_up", "mlp.up_proj"),
    ("ffn_down", "mlp.down_proj"),
];

/// Top-level GGUF tensor (without `.weight`/`.bias`) -> HF module path.
const GLOBAL_NAMES: &[(&str, &str)] = &[
    ("token_embd", "model.embed_tokens"),
    ("output_norm", "model.norm"),
    ("output", "lm_head"),
];

/// The HF name of GGUF tensor `gguf_name` (llama/qwen3 naming), or `None` if unknown.
pub fn hf_name(gguf_name: &str) -> Option<String> {
    let (stem, kind) = gguf_name.rsplit_once('.')?;
    if kind != "weight" && kind != "bias" {
        return None;
    }
    if let Some(rest) = stem.strip_prefix("blk.") {
        let (layer, part) = rest.split_once('.')?;
        if layer.is_empty() || !layer.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let hf = BLOCK_NAMES.iter().find(|(g, _)| *g == part)?.1;
        return Some(format!("model.layers.{layer}.{hf}.{kind}"));
    }
    let hf = GLOBAL_NAMES.iter().find(|(g, _)| *g == stem)?.1;
    Some(format!("{hf}.{kind}"))
}

/// The transform GGUF tensor `gguf_name` needs for architecture `arch`.
pub fn row_transform(
    arch: crate::config::Architecture,
    gguf_name: &str,
    num_heads: usize,
    num_kv_heads: usize,
) -> RowTransform {
    if arch != crate::config::Architecture::Llama || !gguf_name.starts_with("blk.") {
        return RowTransform::None;
    }
    if gguf_name.ends_with(".attn_q.weight") || gguf_name.ends_with(".attn_q.bias") {
        RowTransform::UnpermuteHeads { num_heads }
    } else if gguf_name.ends_with(".attn_k.weight") || gguf_name.ends_with(".attn_k.bias") {
        RowTransform::UnpermuteHeads {
            num_heads: num_kv_heads,
        }
    } else {
        RowTransform::None
    }
}

/// Applies `transform` to `weight` (rows are the outermost dimension); `path` is for errors.
pub fn apply(
    weight: Weight,
    transform: RowTransform,
    name: &str,
    path: &std::path::Path,
) -> Result<Weight> {
    let RowTransform::UnpermuteHeads { num_heads } = transform else {
        return Ok(weight);
    };
    let corrupt = |detail: String| ModelError::Corrupt {
        path: path.to_path_buf(),
        detail: format!("tensor `{name}`: {detail}"),
    };
    let num_rows = weight.shape().first().copied().unwrap_or(0);
    if num_heads == 0
        || !num_rows.is_multiple_of(num_heads)
        || !(num_rows / num_heads).is_multiple_of(2)
    {
        return Err(corrupt(format!(
            "{num_rows} rows cannot be split into {num_heads} heads of even size"
        )));
    }
    let bytes = weight.bytes().as_slice();
    if num_rows == 0 || !bytes.len().is_multiple_of(num_rows) {
        return Err(corrupt(format!(
            "{} bytes are not {num_rows} equal rows",
            bytes.len()
        )));
    }
    let row_bytes = bytes.len() / num_rows;
    let head_dim = num_rows / num_heads;
    let half = head_dim / 2;
    let mut out = Vec::with_capacity(bytes.len());
    for hf_row in 0..num_rows {
        let (head, within) = (hf_row / head_dim, hf_row % head_dim);
        let (s, i) = (within / half, within % half);
        let src = head * head_dim + 2 * i + s;
        out.extend_from_slice(&bytes[src * row_bytes..(src + 1) * row_bytes]);
    }
    Ok(Weight::new(
        weight.dtype(),
        weight.shape().to_vec(),
        Bytes::from_vec(out),
    )?)
}
