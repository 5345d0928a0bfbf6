//! Llama vs HF goldens on the tiny checkpoint in fixtures/golden/llama (scripts/make_goldens.py),
//! plus a smoke test on the real SmolLM2 GGUF.

mod golden_support;

use std::path::PathBuf;

use arle_models::{load_model, ForwardBatch, ModelCache, ModelFormat};

const MODEL: &str = "llama";

#[test]
fn llama_full_pass_matches_hf() {
    golden_support::check_full(MODEL);
}

#[test]
fn llama_prefill_then_decode_matches_hf() {
    golden_support::check_prefill_then_decode(MODEL);
}

#[test]
fn llama_prefill_then_continue_matches_hf() {
    golden_support::check_prefill_then_continue(MODEL);
}

#[test]
fn llama_batched_sequences_match_each_alone() {
    golden_support::check_batched_equals_alone(MODEL);
}

#[test]
fn llama_tiny_checkpoint_is_tied_and_fills_info() {
    let loaded = golden_support::load(MODEL);
    let info = loaded.model.info();
    assert_eq!(info.architecture, "llama");
    assert_eq!(info.vocab_size, 512);
    assert_eq!(info.cache.layers.len(), 2);
    assert!(loaded.config.tie_word_embeddings);
    assert!(matches!(loaded.format, ModelFormat::HfFolder(_)));
}

/// `ARLE_SMOLLM2_GGUF`, else `<repo>/.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf`.
fn smollm2_gguf() -> PathBuf {
    let path = std::env::var_os("ARLE_SMOLLM2_GGUF")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf")
        });
    assert!(
        path.is_file(),
        "{} not found: run scripts/fetch-test-assets.sh (or set ARLE_SMOLLM2_GGUF)",
        path.display()
    );
    path
}

#[test]
fn smollm2_gguf_loads_and_gives_finite_logits() {
    let loaded = load_model(&smollm2_gguf()).expect("load SmolLM2 GGUF");
    assert!(matches!(loaded.format, ModelFormat::Gguf(_)));
    let info = loaded.model.info();
    assert_eq!(info.architecture, "llama");
    assert_eq!(info.cache.layers.len(), 30);
    let mut cache = ModelCache::new(&info.cache, 4);
    // Arbitrary in-vocab ids; pages 2 and 0 (non-contiguous).
    let ids = [1u32, 4093, 198, 19556, 28, 940, 359, 346, 47];
    let batch = ForwardBatch::single(&ids, 0, vec![2, 0], false);
    let logits = loaded
        .model
        .forward(&batch, &mut cache, None)
        .expect("forward");
    assert_eq!(logits.shape(), [1, 49152]);
    assert!(
        logits.data().iter().all(|v| v.is_finite()),
        "non-finite logits"
    );
    let spread = logits
        .data()
        .iter()
        .fold(f32::NEG_INFINITY, |m, &v| m.max(v))
        - logits.data().iter().fold(f32::INFINITY, |m, &v| m.min(v));
    assert!(spread > 1.0, "logits are nearly constant (spread {spread})");
}
