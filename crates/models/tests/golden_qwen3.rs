//! Qwen3 vs HF goldens on the tiny checkpoint in fixtures/golden/qwen3 (scripts/make_goldens.py):
//! explicit head_dim (nH·D = 128 ≠ H = 64) and per-head q/k norm before RoPE.

mod golden_support;

const MODEL: &str = "qwen3";

#[test]
fn qwen3_full_pass_matches_hf() {
    golden_support::check_full(MODEL);
}

#[test]
fn qwen3_prefill_then_decode_matches_hf() {
    golden_support::check_prefill_then_decode(MODEL);
}

#[test]
fn qwen3_prefill_then_continue_matches_hf() {
    golden_support::check_prefill_then_continue(MODEL);
}

#[test]
fn qwen3_batched_sequences_match_each_alone() {
    golden_support::check_batched_equals_alone(MODEL);
}

#[test]
fn qwen3_tiny_checkpoint_fills_info() {
    let loaded = golden_support::load(MODEL);
    let info = loaded.model.info();
    assert_eq!(info.architecture, "qwen3");
    assert_eq!(info.hidden_size, 64);
    assert_eq!(
        info.cache.layers,
        vec![
            arle_models::LayerCacheSpec::Attention {
                num_kv_heads: 2,
                head_dim: 32
            };
            2
        ]
    );
}
