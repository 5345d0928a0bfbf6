//! Safetensors folders (single and sharded) through `WeightSource`, and HF `config.json`
//! parsing against the values transformers' config classes derive (fixtures/loader/hf_configs.json).

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::Path;

use arle_models::config::{Architecture, ModelConfig};
use arle_models::rope::RopeScaling;
use arle_models::weights::WeightSource;
use arle_models::ModelError;
use arle_tensor::DType;
use safetensors::tensor::TensorView;
use safetensors::Dtype;
use serde_json::Value;

/// (name, dtype, shape, little-endian bytes)
type Tensor = (&'static str, Dtype, Vec<usize>, Vec<u8>);

fn f32_tensor(name: &'static str, shape: Vec<usize>, start: f32) -> Tensor {
    let n: usize = shape.iter().product();
    let bytes = (0..n)
        .flat_map(|i| (start + i as f32).to_le_bytes())
        .collect();
    (name, Dtype::F32, shape, bytes)
}

fn write_file(path: &Path, tensors: &[Tensor]) {
    let views: Vec<(&str, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, dt, shape, b)| (*n, TensorView::new(*dt, shape.clone(), b).unwrap()))
        .collect();
    let bytes = safetensors::serialize(views, None).unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn base_tensors() -> Vec<Tensor> {
    let bf16: Vec<u8> = [1.5f32, -2.0, 0.25]
        .iter()
        .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
        .collect();
    vec![
        f32_tensor("model.embed_tokens.weight", vec![4, 3], 0.0),
        f32_tensor("model.norm.weight", vec![3], 100.0),
        (
            "model.layers.0.input_layernorm.weight",
            Dtype::BF16,
            vec![3],
            bf16,
        ),
    ]
}

#[test]
fn single_file_takes_values_and_is_strict() {
    let dir = tempfile::tempdir().unwrap();
    write_file(&dir.path().join("model.safetensors"), &base_tensors());

    let mut ws = WeightSource::from_hf_folder(dir.path()).unwrap();
    let emb = ws.take("model.embed_tokens.weight", &[4, 3]).unwrap();
    assert_eq!(emb.dtype(), DType::F32);
    assert_eq!(
        emb.to_f32_vec().unwrap(),
        (0..12).map(|i| i as f32).collect::<Vec<_>>()
    );
    let norm = ws
        .take("model.layers.0.input_layernorm.weight", &[3])
        .unwrap();
    assert_eq!(norm.dtype(), DType::BF16);
    assert_eq!(norm.to_f32_vec().unwrap(), vec![1.5, -2.0, 0.25]);
    // Wrong shape.
    match ws.take("model.norm.weight", &[4]).unwrap_err() {
        ModelError::TensorShape {
            path,
            name,
            expected,
            actual,
        } => {
            assert!(path.ends_with("model.safetensors"));
            assert_eq!(name, "model.norm.weight");
            assert_eq!((expected, actual), (vec![4], vec![3]));
        }
        other => panic!("{other}"),
    }
    // Missing.
    let err = ws.take("lm_head.weight", &[4, 3]).unwrap_err();
    assert!(matches!(err, ModelError::MissingTensor { ref name, .. } if name == "lm_head.weight"));
    assert!(ws
        .take_optional("lm_head.weight", &[4, 3])
        .unwrap()
        .is_none());
    // Never taken (the failed take above does not count).
    match ws.finish().unwrap_err() {
        ModelError::UnexpectedTensors { names, .. } => assert_eq!(names, vec!["model.norm.weight"]),
        other => panic!("{other}"),
    }
}

#[test]
fn unexpected_tensor_and_ignored_prefixes() {
    let dir = tempfile::tempdir().unwrap();
    let mut tensors = base_tensors();
    tensors.push(f32_tensor("model.visual.patch_embed.weight", vec![2], 0.0));
    tensors.push(f32_tensor("model.rotary_emb.inv_freq", vec![2], 0.0));
    write_file(&dir.path().join("model.safetensors"), &tensors);
    let take_base = |ws: &mut WeightSource| {
        ws.take("model.embed_tokens.weight", &[4, 3]).unwrap();
        ws.take("model.norm.weight", &[3]).unwrap();
        ws.take("model.layers.0.input_layernorm.weight", &[3])
            .unwrap();
    };
    let mut ws = WeightSource::from_hf_folder(dir.path()).unwrap();
    take_base(&mut ws);
    match ws.finish().unwrap_err() {
        ModelError::UnexpectedTensors { names, .. } => assert_eq!(
            names,
            vec![
                "model.rotary_emb.inv_freq",
                "model.visual.patch_embed.weight"
            ]
        ),
        other => panic!("{other}"),
    }
    let mut ws = WeightSource::from_hf_folder(dir.path())
        .unwrap()
        .ignore_prefixes(&["model.visual.", "model.rotary_emb."]);
    take_base(&mut ws);
    ws.finish().unwrap();
}

fn write_sharded(dir: &Path, weight_map: &[(&str, &str)]) {
    let tensors = base_tensors();
    let (a, b) = tensors.split_at(1);
    write_file(&dir.join("model-00001-of-00002.safetensors"), a);
    write_file(&dir.join("model-00002-of-00002.safetensors"), b);
    let map: serde_json::Map<String, Value> = weight_map
        .iter()
        .map(|(n, f)| (n.to_string(), Value::from(*f)))
        .collect();
    let index = serde_json::json!({"metadata": {"total_size": 0}, "weight_map": map});
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
}

const SHARD1: &str = "model-00001-of-00002.safetensors";
const SHARD2: &str = "model-00002-of-00002.safetensors";

#[test]
fn sharded_folder() {
    let dir = tempfile::tempdir().unwrap();
    let good = [
        ("model.embed_tokens.weight", SHARD1),
        ("model.norm.weight", SHARD2),
        ("model.layers.0.input_layernorm.weight", SHARD2),
    ];
    write_sharded(dir.path(), &good);
    let mut ws = WeightSource::from_hf_folder(dir.path()).unwrap();
    assert_eq!(
        ws.take("model.norm.weight", &[3])
            .unwrap()
            .to_f32_vec()
            .unwrap(),
        [100.0, 101.0, 102.0]
    );
    ws.take("model.embed_tokens.weight", &[4, 3]).unwrap();
    ws.take("model.layers.0.input_layernorm.weight", &[3])
        .unwrap();
    ws.finish().unwrap();

    // Index names a tensor that no shard has.
    let mut missing = good.to_vec();
    missing.push(("lm_head.weight", SHARD1));
    write_sharded(dir.path(), &missing);
    let err = WeightSource::from_hf_folder(dir.path()).unwrap_err();
    assert!(
        matches!(err, ModelError::MissingTensor { ref name, ref path }
        if name == "lm_head.weight" && path.ends_with(SHARD1)),
        "{err}"
    );

    // Index puts a tensor in the wrong shard.
    let wrong = [good[0], ("model.norm.weight", SHARD1), good[2]];
    write_sharded(dir.path(), &wrong);
    let err = WeightSource::from_hf_folder(dir.path()).unwrap_err();
    assert!(
        matches!(err, ModelError::Corrupt { ref path, .. } if path.ends_with(SHARD2)),
        "{err}"
    );

    // Truncated shard.
    write_sharded(dir.path(), &good);
    let shard2 = dir.path().join(SHARD2);
    let bytes = std::fs::read(&shard2).unwrap();
    std::fs::write(&shard2, &bytes[..bytes.len() - 3]).unwrap();
    let err = WeightSource::from_hf_folder(dir.path()).unwrap_err();
    assert!(
        matches!(err, ModelError::Corrupt { ref path, .. } if path == &shard2),
        "{err}"
    );
    assert!(err.to_string().contains(SHARD2));

    // Missing shard file.
    std::fs::remove_file(&shard2).unwrap();
    let err = WeightSource::from_hf_folder(dir.path()).unwrap_err();
    assert!(
        matches!(err, ModelError::Io { ref path, .. } if path == &shard2),
        "{err}"
    );
}

#[test]
fn bad_files_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    // Empty folder.
    let err = WeightSource::from_hf_folder(dir.path()).unwrap_err();
    assert!(matches!(err, ModelError::Io { .. }), "{err}");
    // Garbage header.
    let file = dir.path().join("model.safetensors");
    std::fs::write(&file, b"\x08\x00\x00\x00\x00\x00\x00\x00{nope!!}").unwrap();
    let err = WeightSource::from_hf_folder(dir.path()).unwrap_err();
    assert!(
        matches!(err, ModelError::Corrupt { ref path, .. } if path == &file),
        "{err}"
    );
    // Unsupported dtype.
    write_file(&file, &[("x", Dtype::I64, vec![1], vec![0u8; 8])]);
    let err = WeightSource::from_hf_folder(dir.path()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("model.safetensors") && msg.contains("I64"),
        "{msg}"
    );
}

fn config_cases() -> HashMap<String, Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/loader/hf_configs.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn f(v: &Value) -> f32 {
    v.as_f64().unwrap() as f32
}

#[test]
fn hf_configs_match_transformers() {
    let dir = tempfile::tempdir().unwrap();
    for (case, v) in config_cases() {
        let path = dir.path().join(format!("{case}.json"));
        std::fs::write(&path, v["config_json"].to_string()).unwrap();
        let c = ModelConfig::from_hf_json(&path).unwrap_or_else(|e| panic!("{case}: {e}"));
        let hf = &v["hf"];
        let u = |k: &str| hf[k].as_u64().unwrap() as usize;
        let arch = v["config_json"]["model_type"].as_str().unwrap();
        assert_eq!(
            c.architecture,
            Architecture::from_name(arch).unwrap(),
            "{case}"
        );
        assert_eq!(c.vocab_size, u("vocab_size"), "{case}");
        assert_eq!(c.hidden_size, u("hidden_size"), "{case}");
        assert_eq!(c.intermediate_size, u("intermediate_size"), "{case}");
        assert_eq!(c.num_hidden_layers, u("num_hidden_layers"), "{case}");
        assert_eq!(c.num_attention_heads, u("num_attention_heads"), "{case}");
        assert_eq!(c.num_key_value_heads, u("num_key_value_heads"), "{case}");
        assert_eq!(c.head_dim, u("head_dim"), "{case}");
        assert_eq!(
            c.max_position_embeddings,
            u("max_position_embeddings"),
            "{case}"
        );
        assert_eq!(c.rms_norm_eps, f(&hf["rms_norm_eps"]), "{case}");
        assert_eq!(
            c.tie_word_embeddings,
            hf["tie_word_embeddings"].as_bool().unwrap(),
            "{case}"
        );
        assert_eq!(
            c.attention_bias,
            hf["attention_bias"].as_bool().unwrap(),
            "{case}"
        );
        assert_eq!(c.mlp_bias, hf["mlp_bias"].as_bool().unwrap(), "{case}");
        assert_eq!(
            c.bos_token_id.map(u64::from),
            hf["bos_token_id"].as_u64(),
            "{case}"
        );
        let eos: Vec<u32> = hf["eos_token_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(c.eos_token_ids, eos, "{case}");
        let rp = &hf["rope_parameters"];
        assert_eq!(c.rope.theta, f(&rp["rope_theta"]), "{case}");
        assert_eq!(c.rope.partial_rotary_factor, 1.0, "{case}");
        let expected = match rp["rope_type"].as_str().unwrap() {
            "default" => RopeScaling::Default,
            "linear" => RopeScaling::Linear {
                factor: f(&rp["factor"]),
            },
            "llama3" => RopeScaling::Llama3 {
                factor: f(&rp["factor"]),
                low_freq_factor: f(&rp["low_freq_factor"]),
                high_freq_factor: f(&rp["high_freq_factor"]),
                original_max_position_embeddings: rp["original_max_position_embeddings"]
                    .as_u64()
                    .unwrap() as usize,
            },
            // HF's yarn defaults: beta_fast 32, beta_slow 1, truncate true, attention_factor
            // derived from the factor (None here).
            "yarn" => RopeScaling::Yarn {
                factor: f(&rp["factor"]),
                original_max_position_embeddings: rp["original_max_position_embeddings"]
                    .as_u64()
                    .unwrap() as usize,
                beta_fast: 32.0,
                beta_slow: 1.0,
                truncate: true,
                attention_factor: None,
            },
            other => panic!("{other}"),
        };
        assert_eq!(c.rope.scaling, expected, "{case}");
    }
}

#[test]
fn invalid_configs_are_config_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (r#"{"model_type": "gpt2"}"#, "unsupported model_type"),
        (r#"{"hidden_size": 64}"#, "model_type"),
        (
            r#"{"model_type": "llama", "num_attention_heads": 6, "num_key_value_heads": 4}"#,
            "multiple",
        ),
        (
            r#"{"model_type": "llama", "hidden_size": 0}"#,
            "hidden_size",
        ),
        (
            r#"{"model_type": "llama", "rms_norm_eps": -1.0}"#,
            "rms_norm_eps",
        ),
        (
            r#"{"model_type": "llama", "rope_scaling": {"rope_type": "dynamic", "factor": 2}}"#,
            "dynamic",
        ),
        (
            r#"{"model_type": "llama", "rope_scaling": {"type": "linear"}}"#,
            "factor",
        ),
        (
            r#"{"model_type": "qwen3", "eos_token_id": "x"}"#,
            "eos_token_id",
        ),
        (r#"{"model_type": "llama", "hidden_act": "gelu"}"#, "gelu"),
        (
            r#"{"model_type": "llama", "vocab_size": "big"}"#,
            "invalid type",
        ),
        ("{", "EOF"),
    ];
    for (i, (json, want)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("bad{i}.json"));
        std::fs::write(&path, json).unwrap();
        match ModelConfig::from_hf_json(&path) {
            Err(e @ ModelError::Config { .. }) => {
                let msg = e.to_string();
                assert!(
                    msg.contains(&format!("bad{i}.json")) && msg.contains(want),
                    "{msg}"
                );
            }
            other => panic!("{json}: {other:?}"),
        }
    }
    let err = ModelConfig::from_hf_json(&dir.path().join("absent.json")).unwrap_err();
    assert!(matches!(err, ModelError::Io { .. }));
}
