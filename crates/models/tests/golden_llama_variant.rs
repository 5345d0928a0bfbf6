//! Llama variant vs HF goldens (fixtures/golden/llama_variant, scripts/make_goldens.py): q/k/v/o
//! and MLP biases, an untied lm_head, GQA 4:1 and llama3 RoPE scaling; T = 64, prefill P = 40.

mod golden_support;

const MODEL: &str = "llama_variant";

#[test]
fn llama_variant_logits_match_hf() {
    golden_support::check_logits(MODEL, 40);
}

#[test]
fn llama_variant_config_is_untied_with_biases_and_llama3_rope() {
    let loaded = golden_support::load(MODEL);
    assert!(!loaded.config.tie_word_embeddings);
    assert!(loaded.config.attention_bias && loaded.config.mlp_bias);
    assert!(matches!(
        loaded.config.rope.scaling,
        arle_models::rope::RopeScaling::Llama3 { .. }
    ));
}
