//! Qwen3.5 (dense hybrid) vs HF goldens on the tiny checkpoint in fixtures/golden/qwen3_5
//! (scripts/make_goldens.py, MODEL-SPECS §9): three Gated DeltaNet layers and one gated attention
//! layer; Dk ≠ Dv, GVA r = 2, partial RoPE (rot 8). Also state snapshots → resume, batch
//! invariance with a resumed and a fresh sequence, and the vision-language checkpoint layout.

#![allow(clippy::unwrap_used)]

mod golden_support;
mod hybrid_support;

use arle_models::config::{Architecture, LayerType};
use arle_models::LayerCacheSpec;

const MODEL: &str = "qwen3_5";

#[test]
fn qwen3_5_full_pass_and_every_layer_match_hf() {
    let compared = hybrid_support::check_full(MODEL);
    assert!(compared >= 25, "only {compared} traced tensors compared");
}

#[test]
fn qwen3_5_prefill_states_and_decode_match_hf() {
    let (state_diff, logits_diff) = hybrid_support::check_prefill_then_decode(MODEL);
    eprintln!("qwen3_5: GDN state diff {state_diff:e}, decode logits diff {logits_diff:e}");
}

#[test]
fn qwen3_5_prefill_then_continue_matches_hf() {
    let d = hybrid_support::check_prefill_then_continue(MODEL);
    eprintln!("qwen3_5: continuation logits diff {d:e}");
}

#[test]
fn qwen3_5_snapshot_resume_equals_uninterrupted() {
    // Chunk-aligned boundaries (64, 128) and a mid-chunk one (100, not a page multiple).
    let d = hybrid_support::check_snapshot_resume(MODEL, &[64, 100, 128]);
    eprintln!("qwen3_5: resume vs uninterrupted max diff {d:e}");
}

#[test]
fn qwen3_5_snapshot_at_p_equals_hf_cache_and_short_prefill() {
    // A capture at P = 100 inside a 150-token prefill holds HF's cache after a P-token prefill.
    let golden = golden_support::Golden::open(MODEL);
    let loaded = golden_support::load(MODEL);
    let ids = &golden.input_ids;
    let table: Vec<u32> = (0..10).collect();
    let mut cache = hybrid_support::new_cache(&loaded);
    let batch = hybrid_support::single(ids, 0, &table, 0, &[golden_support::P], false);
    golden_support::run(&loaded, &mut cache, &batch, false);
    let snap = cache.captured.pop().expect("snapshot").snapshot;
    cache.restore_state(3, &snap).unwrap();
    let d = hybrid_support::linear_state_diff(&cache, &golden, 3);
    assert!(d <= 1e-5, "captured state vs HF cache: {d:e}");
    for p in [64, 100, 128] {
        let d = hybrid_support::check_capture_equals_short_prefill(MODEL, p);
        assert!(d <= 1e-5, "capture at {p} vs a {p}-token prefill: {d:e}");
    }
}

#[test]
fn qwen3_5_batch_with_resumed_and_fresh_sequences_matches_alone() {
    let d = hybrid_support::check_batch_with_resume(MODEL);
    eprintln!("qwen3_5: batched vs alone max diff {d:e}");
}

#[test]
fn qwen3_5_vision_language_layout_loads_to_identical_logits() {
    let golden = golden_support::Golden::open(MODEL);
    let dir = tempfile::tempdir().unwrap();
    hybrid_support::write_vl_layout(MODEL, dir.path());
    let vl = hybrid_support::full_logits(dir.path(), &golden.input_ids);
    let plain = hybrid_support::full_logits(&golden_support::fixture_dir(MODEL), &golden.input_ids);
    assert_eq!(vl.data(), plain.data(), "VL layout logits differ");
    let loaded = arle_models::load_model(dir.path()).unwrap();
    assert_eq!(loaded.config.architecture, Architecture::Qwen3_5);
    assert!(
        !loaded.config.tie_word_embeddings,
        "carried over from the top level"
    );
}

#[test]
fn qwen3_5_config_and_cache_spec() {
    let loaded = golden_support::load(MODEL);
    let cfg = &loaded.config;
    assert_eq!(cfg.architecture, Architecture::Qwen3_5);
    assert_eq!(cfg.rope.rotary_dim(cfg.head_dim), 8);
    let hybrid = cfg.hybrid.as_ref().unwrap();
    assert_eq!(hybrid.layer_types[3], LayerType::FullAttention);
    assert!(hybrid.moe.is_none());
    let info = loaded.model.info();
    assert_eq!(info.architecture, "qwen3_5");
    let linear = LayerCacheSpec::Linear {
        conv_dim: 2 * 2 * 16 + 4 * 24,
        conv_kernel: 4,
        num_v_heads: 4,
        k_head_dim: 16,
        v_head_dim: 24,
    };
    let attention = LayerCacheSpec::Attention {
        num_kv_heads: 2,
        head_dim: 32,
    };
    assert_eq!(
        info.cache.layers,
        vec![linear.clone(), linear.clone(), linear, attention]
    );
    assert!(info.cache.has_linear_layers());
}

#[test]
fn qwen3_5_config_defaults_follow_hf() {
    use arle_models::config::ModelConfig;
    // An interval-derived layer pattern and class defaults (MODEL-SPECS §4.1).
    let cfg = ModelConfig::from_hf_json_str(r#"{"model_type": "qwen3_5_text"}"#).unwrap();
    let hybrid = cfg.hybrid.as_ref().unwrap();
    assert_eq!(cfg.hidden_size, 4096);
    assert_eq!(cfg.head_dim, 256);
    assert_eq!(cfg.rope.rotary_dim(cfg.head_dim), 64);
    assert_eq!(hybrid.layer_types.len(), 32);
    assert_eq!(hybrid.num_linear_layers(), 24);
    assert_eq!(hybrid.layer_types[3], LayerType::FullAttention);
    assert_eq!(hybrid.linear.num_value_heads, 32);
    let moe = ModelConfig::from_hf_json_str(
        r#"{"model_type": "qwen3_5_moe", "text_config": {"full_attention_interval": 2}}"#,
    )
    .unwrap();
    let h = moe.hybrid.as_ref().unwrap();
    assert_eq!(moe.num_hidden_layers, 40);
    assert_eq!(h.num_linear_layers(), 20);
    let m = h.moe.unwrap();
    assert_eq!((m.num_experts, m.num_experts_per_tok), (256, 8));
    assert_eq!(moe.intermediate_size, 512);
    let bad = ModelConfig::from_hf_json_str(
        r#"{"model_type": "qwen3_5", "num_hidden_layers": 2, "layer_types": ["linear_attention"]}"#,
    );
    assert!(bad.is_err());
}
