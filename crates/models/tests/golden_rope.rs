//! RoPE inverse frequencies vs HF `ROPE_INIT_FUNCTIONS` (fixtures/golden/rope_inv_freq.json,
//! made by scripts/make_goldens.py).

use arle_models::rope::{RopeConfig, RopeScaling};
use serde_json::Value;

fn cases() -> Vec<Value> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/golden/rope_inv_freq.json"
    );
    let text = std::fs::read_to_string(path).expect("read rope_inv_freq.json");
    let json: Value = serde_json::from_str(&text).expect("parse rope_inv_freq.json");
    json["cases"].as_array().expect("cases").clone()
}

fn f(p: &Value, key: &str) -> f32 {
    p[key].as_f64().unwrap_or_else(|| panic!("{key}")) as f32
}

fn config_of(p: &Value) -> RopeConfig {
    let scaling = match p["rope_type"].as_str().expect("rope_type") {
        "default" => RopeScaling::Default,
        "linear" => RopeScaling::Linear {
            factor: f(p, "factor"),
        },
        "llama3" => RopeScaling::Llama3 {
            factor: f(p, "factor"),
            low_freq_factor: f(p, "low_freq_factor"),
            high_freq_factor: f(p, "high_freq_factor"),
            original_max_position_embeddings: p["original_max_position_embeddings"]
                .as_u64()
                .expect("orig") as usize,
        },
        "yarn" => RopeScaling::Yarn {
            factor: f(p, "factor"),
            original_max_position_embeddings: p["original_max_position_embeddings"]
                .as_u64()
                .expect("orig") as usize,
            beta_fast: p["beta_fast"].as_f64().unwrap_or(32.0) as f32,
            beta_slow: p["beta_slow"].as_f64().unwrap_or(1.0) as f32,
            truncate: p["truncate"].as_bool().unwrap_or(true),
            attention_factor: p["attention_factor"].as_f64().map(|v| v as f32),
        },
        other => panic!("unexpected rope_type {other}"),
    };
    RopeConfig {
        theta: f(p, "rope_theta"),
        partial_rotary_factor: p["partial_rotary_factor"].as_f64().unwrap_or(1.0) as f32,
        scaling,
    }
}

#[test]
fn inv_freq_matches_hf_for_every_scaling_type() {
    let cases = cases();
    assert!(
        cases.len() >= 5,
        "expected default/linear/llama3/yarn cases"
    );
    let mut seen = std::collections::BTreeSet::new();
    for case in &cases {
        let name = case["name"].as_str().expect("name");
        let params = &case["rope_parameters"];
        seen.insert(params["rope_type"].as_str().expect("type").to_string());
        let head_dim = case["head_dim"].as_u64().expect("head_dim") as usize;
        let table = config_of(params).table(head_dim);
        let expected: Vec<f32> = case["inv_freq_bits"]
            .as_array()
            .expect("bits")
            .iter()
            .map(|b| f32::from_bits(b.as_i64().expect("bit pattern") as i32 as u32))
            .collect();
        assert_eq!(table.inv_freq.len(), expected.len(), "{name}: length");
        assert_eq!(table.rotary_dim, 2 * expected.len(), "{name}: rotary_dim");
        let mut differing = 0;
        for (i, (&got, &want)) in table.inv_freq.iter().zip(&expected).enumerate() {
            let rel = ((got - want) / want).abs();
            assert!(rel <= 1e-6, "{name}[{i}]: got {got:e}, HF {want:e}");
            differing += usize::from(got.to_bits() != want.to_bits());
        }
        // powf may differ from torch's pow by an ulp on rare inputs (MODEL-SPECS §1.2).
        assert!(
            differing * 20 <= expected.len(),
            "{name}: {differing} of {} values not bit-exact",
            expected.len()
        );
        let scale = case["attention_scaling"].as_f64().expect("scaling") as f32;
        assert!(
            (table.attention_scaling - scale).abs() <= 1e-6,
            "{name}: attention scaling {} vs HF {scale}",
            table.attention_scaling
        );
    }
    for kind in ["default", "linear", "llama3", "yarn"] {
        assert!(seen.contains(kind), "no {kind} case in fixture");
    }
}
