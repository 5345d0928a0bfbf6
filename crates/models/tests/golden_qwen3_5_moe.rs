//! Qwen3.5-MoE vs HF goldens on the tiny checkpoint in fixtures/golden/qwen3_5_moe
//! (scripts/make_goldens.py, MODEL-SPECS §9): alternating Gated DeltaNet / gated attention
//! layers, 8 experts top-3 with a shared expert. Also snapshots → resume, batch invariance, the
//! VL layout and the fused expert layout (HF writes per-expert keys; real checkpoints are fused).

#![allow(clippy::unwrap_used)]

mod golden_support;
mod hybrid_support;

use std::collections::BTreeMap;

use arle_models::config::Architecture;
use hybrid_support::RawTensors;

/// (expert id, projection name, shape, bytes) of one per-expert tensor.
type ExpertPart = (usize, String, Vec<usize>, Vec<u8>);

const MODEL: &str = "qwen3_5_moe";

#[test]
fn qwen3_5_moe_full_pass_and_every_layer_match_hf() {
    let compared = hybrid_support::check_full(MODEL);
    assert!(compared >= 40, "only {compared} traced tensors compared");
}

#[test]
fn qwen3_5_moe_prefill_states_and_decode_match_hf() {
    let (state_diff, logits_diff) = hybrid_support::check_prefill_then_decode(MODEL);
    eprintln!("qwen3_5_moe: GDN state diff {state_diff:e}, decode logits diff {logits_diff:e}");
}

#[test]
fn qwen3_5_moe_prefill_then_continue_matches_hf() {
    let d = hybrid_support::check_prefill_then_continue(MODEL);
    eprintln!("qwen3_5_moe: continuation logits diff {d:e}");
}

#[test]
fn qwen3_5_moe_snapshot_resume_equals_uninterrupted() {
    let d = hybrid_support::check_snapshot_resume(MODEL, &[64, 100, 128]);
    eprintln!("qwen3_5_moe: resume vs uninterrupted max diff {d:e}");
}

#[test]
fn qwen3_5_moe_batch_with_resumed_and_fresh_sequences_matches_alone() {
    let d = hybrid_support::check_batch_with_resume(MODEL);
    eprintln!("qwen3_5_moe: batched vs alone max diff {d:e}");
}

#[test]
fn qwen3_5_moe_vision_language_layout_loads_to_identical_logits() {
    let golden = golden_support::Golden::open(MODEL);
    let dir = tempfile::tempdir().unwrap();
    hybrid_support::write_vl_layout(MODEL, dir.path());
    let vl = hybrid_support::full_logits(dir.path(), &golden.input_ids);
    let plain = hybrid_support::full_logits(&golden_support::fixture_dir(MODEL), &golden.input_ids);
    assert_eq!(vl.data(), plain.data(), "VL layout logits differ");
    let loaded = arle_models::load_model(dir.path()).unwrap();
    assert_eq!(loaded.config.architecture, Architecture::Qwen3_5Moe);
}

/// Per-expert `experts.{e}.{gate,up,down}_proj.weight` → fused `experts.gate_up_proj`
/// `[E, 2·Ie, H]` (gate rows first) and `experts.down_proj` `[E, H, Ie]`.
fn fuse_experts(tensors: RawTensors, num_experts: usize) -> RawTensors {
    let mut out = BTreeMap::new();
    let mut fused: BTreeMap<String, Vec<ExpertPart>> = BTreeMap::new();
    for (name, (dt, shape, bytes)) in tensors {
        let Some((prefix, rest)) = name.split_once(".mlp.experts.") else {
            out.insert(name, (dt, shape, bytes));
            continue;
        };
        let (e, proj) = rest.split_once('.').unwrap();
        assert_eq!(dt, safetensors::Dtype::F32);
        fused
            .entry(format!("{prefix}.mlp.experts"))
            .or_default()
            .push((e.parse().unwrap(), proj.to_string(), shape, bytes));
    }
    for (prefix, mut parts) in fused {
        parts.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        let (mut gate_up, mut down) = (Vec::new(), Vec::new());
        let (mut ie, mut h) = (0, 0);
        for e in 0..num_experts {
            let get = |p: &str| {
                parts
                    .iter()
                    .find(|x| x.0 == e && x.1 == format!("{p}.weight"))
                    .unwrap()
            };
            let (g, u, d) = (get("gate_proj"), get("up_proj"), get("down_proj"));
            (ie, h) = (g.2[0], g.2[1]);
            gate_up.extend_from_slice(&g.3);
            gate_up.extend_from_slice(&u.3);
            down.extend_from_slice(&d.3);
        }
        let f32 = safetensors::Dtype::F32;
        out.insert(
            format!("{prefix}.gate_up_proj"),
            (f32, vec![num_experts, 2 * ie, h], gate_up),
        );
        out.insert(
            format!("{prefix}.down_proj"),
            (f32, vec![num_experts, h, ie], down),
        );
    }
    out
}

#[test]
fn qwen3_5_moe_fused_expert_layout_loads_to_identical_logits() {
    let golden = golden_support::Golden::open(MODEL);
    let src = golden_support::fixture_dir(MODEL);
    let tensors = hybrid_support::read_tensors(&src.join("model.safetensors"));
    assert!(tensors.contains_key("model.layers.0.mlp.experts.7.up_proj.weight"));
    let fused = fuse_experts(tensors, 8);
    assert!(fused.contains_key("model.layers.0.mlp.experts.gate_up_proj"));
    assert!(!fused.keys().any(|k| k.contains("experts.0.")));
    let dir = tempfile::tempdir().unwrap();
    hybrid_support::write_tensors(&dir.path().join("model.safetensors"), &fused);
    std::fs::copy(src.join("config.json"), dir.path().join("config.json")).unwrap();
    let fused_logits = hybrid_support::full_logits(dir.path(), &golden.input_ids);
    let plain = hybrid_support::full_logits(&src, &golden.input_ids);
    assert_eq!(
        fused_logits.data(),
        plain.data(),
        "fused layout logits differ"
    );
    golden_support::assert_close(
        "fused vs HF",
        fused_logits.data(),
        golden.get("logits.full"),
        1e-4,
    );
}

#[test]
fn qwen3_5_moe_config_and_info() {
    let loaded = golden_support::load(MODEL);
    let moe = loaded.config.hybrid.as_ref().unwrap().moe.unwrap();
    assert_eq!((moe.num_experts, moe.num_experts_per_tok), (8, 3));
    assert_eq!(moe.moe_intermediate_size, 32);
    assert_eq!(moe.shared_expert_intermediate_size, 48);
    assert_eq!(loaded.model.info().architecture, "qwen3_5_moe");
    assert_eq!(loaded.model.info().cache.layers.len(), 4);
}
