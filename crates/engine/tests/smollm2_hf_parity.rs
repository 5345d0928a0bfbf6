//! End-to-end parity with HF transformers on the real SmolLM2 GGUF: for each chat case in
//! `tests/fixtures/smollm2/hf_greedy.json` (made by scripts/make_smollm2_reference.py, which runs
//! the same GGUF dequantized to f32 in transformers):
//! - our chat template + tokenizer produce exactly HF's prompt text and prompt ids;
//! - engine greedy decoding picks HF's tokens up to and including the first step whose HF
//!   top-2 logit margin is below [`NEAR_TIE_MARGIN`] (past a near-tie, activation rounding
//!   legitimately decides the argmax, and the continuations diverge); on a GPU (bf16) that
//!   near-tie step itself may take HF's runner-up;
//! - at those compared steps, our top-5 logprob gaps to the best token match HF's logit gaps.
#![allow(clippy::unwrap_used)]

mod engine_common;

use arle_engine::tokenizer::{ChatMessage, RenderOptions};
use arle_engine::{FinishReason, SamplingParams};
use engine_common::{generate, start_default};
use serde_json::Value;

/// HF top-2 logit margins below this are near-ties: the comparison stops after such a step.
const NEAR_TIE_MARGIN: f64 = 0.2;
/// Largest allowed difference between our and HF's `logit[k] - logit[best]` (f32 activations
/// over identical dequantized weights: only summation order differs; measured <= 3e-5 with HF
/// logits rounded to 1e-5 in the fixture).
const LOGIT_GAP_TOLERANCE: f32 = 1e-3;
/// The same on a GPU (`ARLE_TEST_DEVICE=cuda`), a sanity bound only: Q4_1 weights dequantised
/// to bf16 (relative error up to 2^-9) and bf16 activations through 30 layers move SmolLM2's
/// logits (magnitude ~20) by tenths — 0.22 on a gap was seen on an H200. The gate on the GPU is
/// the token check (HF's greedy tokens up to the first near-tie), as issue 5 states it.
const LOGIT_GAP_TOLERANCE_BF16: f32 = 0.5;

fn gap_tolerance() -> f32 {
    if engine_common::on_gpu() {
        LOGIT_GAP_TOLERANCE_BF16
    } else {
        LOGIT_GAP_TOLERANCE
    }
}

fn fixture() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/smollm2/hf_greedy.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn u32s(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| u32::try_from(x.as_u64().unwrap()).unwrap())
        .collect()
}

fn messages(v: &Value) -> Vec<ChatMessage> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|m| ChatMessage::new(m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
        .collect()
}

#[test]
fn greedy_generation_matches_transformers() {
    let fixture = fixture();
    let max_new_tokens = fixture["meta"]["max_new_tokens"].as_u64().unwrap() as usize;
    let cases = fixture["cases"].as_array().unwrap();
    assert!(cases.len() >= 8);
    let handle = start_default();
    let mut compared_per_case = Vec::new();
    let mut worst_gap = 0.0f32;
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let opts = RenderOptions {
            add_generation_prompt: true,
            ..Default::default()
        };
        let text = handle
            .render_chat(&messages(&case["messages"]), &opts)
            .unwrap();
        assert_eq!(
            text,
            case["prompt_text"].as_str().unwrap(),
            "{name}: prompt text"
        );
        let prompt_ids = handle.tokenizer().encode(&text, false).unwrap();
        assert_eq!(prompt_ids, u32s(&case["prompt_ids"]), "{name}: prompt ids");

        let params = SamplingParams {
            temperature: 0.0,
            max_tokens: Some(max_new_tokens),
            logprobs: Some(5),
            ..Default::default()
        };
        let ours = generate(&handle, prompt_ids, params);
        let steps = case["steps"].as_array().unwrap();
        let hf_ids = u32s(&case["generated_ids"]);
        let mut compared = 0;
        for (i, step) in steps.iter().enumerate() {
            let got = ours.token_ids.get(i).copied();
            let near_tie = step["margin"].as_f64().unwrap() < NEAR_TIE_MARGIN;
            // bf16 (GPU) moves logit gaps by up to ~0.2: at a near-tie step HF's runner-up is
            // as legitimate a greedy pick as its top token. Every step before it must match.
            let allowed = if near_tie && engine_common::on_gpu() {
                u32s(&step["top_ids"])[..2].to_vec()
            } else {
                vec![hf_ids[i]]
            };
            assert!(
                got.is_some_and(|g| allowed.contains(&g)),
                "{name}: step {i} (HF margin {:.3}): ours {got:?} not in {allowed:?}; ours {:?} vs \
                 HF {:?}",
                step["margin"].as_f64().unwrap(),
                ours.token_ids,
                hf_ids
            );
            let gap = assert_logit_gaps(name, i, step, ours.token_logprobs[i].as_ref().unwrap());
            worst_gap = worst_gap.max(gap);
            compared += 1;
            if step["margin"].as_f64().unwrap() < NEAR_TIE_MARGIN {
                break;
            }
        }
        if compared == steps.len() {
            // No near-tie anywhere: the whole generation, including where it ended, matches.
            assert_eq!(ours.token_ids, hf_ids, "{name}: full generation");
            let expected = if case["stopped_at_eos"].as_bool().unwrap() {
                FinishReason::Stop
            } else {
                FinishReason::Length
            };
            assert_eq!(ours.reason, Some(expected), "{name}: finish reason");
        }
        compared_per_case.push((name.to_string(), compared));
    }
    eprintln!(
        "compared tokens per case ({:?}): {compared_per_case:?}; largest top-5 logit-gap \
         difference to HF {worst_gap:.4}",
        engine_common::test_device()
    );
    let long = compared_per_case.iter().filter(|(_, n)| *n >= 10).count();
    assert!(
        long >= 2,
        "too few decisive comparisons: {compared_per_case:?}"
    );
}

/// Our `logprob[k] - logprob[best]` for HF's top-5 ids equals HF's logit gaps.
/// Returns the largest |our gap - HF gap| seen.
fn assert_logit_gaps(name: &str, step: usize, hf: &Value, ours: &arle_engine::TokenLogprob) -> f32 {
    let mut worst = 0.0f32;
    let hf_ids = u32s(&hf["top_ids"]);
    let hf_logits: Vec<f32> = hf["top_logits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    assert_eq!(ours.top.len(), 5, "{name}: step {step}: top-5 asked");
    assert_eq!(
        ours.top[0].0, ours.token_id,
        "{name}: step {step}: greedy = top-1"
    );
    for (k, (&id, &hf_logit)) in hf_ids.iter().zip(&hf_logits).enumerate().skip(1) {
        let Some(&(_, our_lp)) = ours.top.iter().find(|(t, _)| *t == id) else {
            // A near-equal neighbour may swap in or out of the top 5 at rank 5: HF's id may be
            // missing only when its logit is within the gap tolerance of HF's 5th.
            assert!(
                k == 4 || hf_logit - hf_logits[4] <= gap_tolerance(),
                "{name}: step {step}: HF rank-{k} id {id} not in our top 5"
            );
            continue;
        };
        let hf_gap = hf_logit - hf_logits[0];
        let our_gap = our_lp - ours.top[0].1;
        worst = worst.max((hf_gap - our_gap).abs());
        assert!(
            (hf_gap - our_gap).abs() <= gap_tolerance(),
            "{name}: step {step}: rank-{k} id {id}: gap ours {our_gap} vs HF {hf_gap}"
        );
    }
    worst
}
