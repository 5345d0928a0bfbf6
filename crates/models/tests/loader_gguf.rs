//! GGUF reader and GGUF -> HF weight mapping, against fixtures written/read by the python `gguf`
//! package and transformers' GGUF loader (scripts/make_loader_fixtures.py), and the real SmolLM2.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use arle_models::config::{Architecture, ModelConfig};
use arle_models::gguf::{GgufFile, GgufValue};
use arle_models::rope::RopeScaling;
use arle_models::weights::WeightSource;
use arle_models::ModelError;
use arle_tensor::DType;
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/loader")
        .join(name)
}

fn smollm2_gguf() -> PathBuf {
    let path = std::env::var_os("ARLE_SMOLLM2_GGUF")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf")
        });
    assert!(
        path.is_file(),
        "SmolLM2 GGUF not found at {}: run scripts/fetch-test-assets.sh (or set ARLE_SMOLLM2_GGUF)",
        path.display()
    );
    path
}

fn read_json(name: &str) -> Value {
    let text = std::fs::read_to_string(fixture(name)).expect("fixture");
    serde_json::from_str(&text).expect("fixture json")
}

/// The python writer's value (type name + JSON value) as the GgufValue we expect to read.
fn expected_value(ty: &str, sub: Option<&str>, inner: Option<&str>, v: &Value) -> GgufValue {
    match ty {
        "UINT8" => GgufValue::U8(v.as_u64().unwrap() as u8),
        "INT8" => GgufValue::I8(v.as_i64().unwrap() as i8),
        "UINT16" => GgufValue::U16(v.as_u64().unwrap() as u16),
        "INT16" => GgufValue::I16(v.as_i64().unwrap() as i16),
        "UINT32" => GgufValue::U32(v.as_u64().unwrap() as u32),
        "INT32" => GgufValue::I32(v.as_i64().unwrap() as i32),
        "UINT64" => GgufValue::U64(v.as_u64().unwrap()),
        "INT64" => GgufValue::I64(v.as_i64().unwrap()),
        "FLOAT32" => GgufValue::F32(v.as_f64().unwrap() as f32),
        "FLOAT64" => GgufValue::F64(v.as_f64().unwrap()),
        "BOOL" => GgufValue::Bool(v.as_bool().unwrap()),
        "STRING" => GgufValue::String(v.as_str().unwrap().to_string()),
        "ARRAY" => {
            let sub = sub.expect("array sub type");
            GgufValue::Array(
                v.as_array()
                    .unwrap()
                    .iter()
                    .map(|item| expected_value(sub, inner, None, item))
                    .collect(),
            )
        }
        other => panic!("unknown type {other}"),
    }
}

#[test]
fn all_value_types_match_python_writer() {
    let gguf = GgufFile::open(&fixture("all_types.gguf")).expect("open");
    let want = read_json("all_types.json");
    assert_eq!(gguf.version as u64, want["version"].as_u64().unwrap());
    assert_eq!(gguf.alignment as u64, want["alignment"].as_u64().unwrap());
    for m in want["metadata"].as_array().unwrap() {
        let key = m["key"].as_str().unwrap();
        let expected = expected_value(
            m["type"].as_str().unwrap(),
            m["sub_type"].as_str(),
            m.get("inner_sub_type").and_then(Value::as_str),
            &m["value"],
        );
        assert_eq!(gguf.get(key), Some(&expected), "metadata {key}");
    }
    // Typed getters accept any integer width and reject wrong types with Corrupt.
    assert_eq!(gguf.get_u32("t.u8").unwrap(), Some(200));
    assert_eq!(gguf.get_u64("t.u64").unwrap(), Some(u64::MAX));
    assert!(matches!(
        gguf.get_u32("t.u64"),
        Err(ModelError::Corrupt { .. })
    ));
    assert!(matches!(
        gguf.get_u32("t.i8"),
        Err(ModelError::Corrupt { .. })
    ));
    assert_eq!(gguf.get_f32("t.f64").unwrap(), Some(2.861_023e-6));
    assert_eq!(
        gguf.get_str("t.string").unwrap(),
        Some("h\u{e9}llo w\u{f6}rld \u{2603}")
    );
    assert_eq!(
        gguf.get_str_array("t.arr_str").unwrap().unwrap()[3],
        "<|im_end|>"
    );
    assert_eq!(
        gguf.get_int_array("t.arr_i64").unwrap(),
        Some(vec![-1, 0, 7])
    );
    assert!(matches!(
        gguf.get_str("t.u8"),
        Err(ModelError::Corrupt { .. })
    ));
    assert_eq!(gguf.get_u32("t.absent").unwrap(), None);
    assert_eq!(gguf.architecture().unwrap(), "testarch");

    let tensors = want["tensors"].as_array().unwrap();
    assert_eq!(gguf.tensors.len(), tensors.len());
    for t in tensors {
        let name = t["name"].as_str().unwrap();
        let info = gguf.tensor_info(name).expect(name);
        let shape: Vec<usize> = t["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(info.shape, shape, "{name}");
        assert_eq!(info.offset as u64, t["offset"].as_u64().unwrap(), "{name}");
        assert_eq!(
            info.num_bytes as u64,
            t["num_bytes"].as_u64().unwrap(),
            "{name}"
        );
        let dtype = match t["type_id"].as_u64().unwrap() {
            0 => DType::F32,
            1 => DType::F16,
            8 => DType::Q8_0,
            30 => DType::BF16,
            other => panic!("fixture type {other}"),
        };
        assert_eq!(info.dtype, dtype, "{name}");
        assert_eq!(info.offset % 64, 0, "{name} aligned");
        if dtype != DType::Q8_0 {
            let values = gguf.weight(info).unwrap().to_f32_vec().unwrap();
            let want: Vec<f32> = t["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect();
            assert_eq!(values, want, "{name}");
        }
    }
}

#[test]
fn smollm2_config_from_gguf() {
    let gguf = GgufFile::open(&smollm2_gguf()).expect("open SmolLM2");
    assert_eq!(gguf.version, 3);
    assert_eq!(gguf.tensors.len(), 272);
    let c = ModelConfig::from_gguf(&gguf).expect("config");
    assert_eq!(c.architecture, Architecture::Llama);
    assert_eq!(c.hidden_size, 576);
    assert_eq!(c.num_hidden_layers, 30);
    assert_eq!(c.num_attention_heads, 9);
    assert_eq!(c.num_key_value_heads, 3);
    assert_eq!(c.head_dim, 64);
    assert_eq!(c.intermediate_size, 1536);
    assert_eq!(c.vocab_size, 49152);
    assert_eq!(c.rope.theta, 1e5);
    assert_eq!(c.rope.partial_rotary_factor, 1.0);
    assert_eq!(c.rope.scaling, RopeScaling::Default);
    assert_eq!(c.rms_norm_eps, 1e-5);
    assert!(c.tie_word_embeddings);
    assert!(!c.attention_bias && !c.mlp_bias);
    assert_eq!(c.max_position_embeddings, 8192);
    assert_eq!(c.bos_token_id, Some(1));
    assert_eq!(c.eos_token_ids, vec![2]);
    let tokens = gguf
        .get_str_array("tokenizer.ggml.tokens")
        .unwrap()
        .unwrap();
    assert_eq!(tokens.len(), 49152);
}

/// Every HF tensor of a tied llama, with its shape.
fn llama_tensors(c: &ModelConfig) -> Vec<(String, Vec<usize>)> {
    let (h, i, d) = (c.hidden_size, c.intermediate_size, c.head_dim);
    let (q, kv) = (c.num_attention_heads * d, c.num_key_value_heads * d);
    let mut out = vec![
        (
            "model.embed_tokens.weight".to_string(),
            vec![c.vocab_size, h],
        ),
        ("model.norm.weight".to_string(), vec![h]),
    ];
    for l in 0..c.num_hidden_layers {
        let p = format!("model.layers.{l}");
        out.extend([
            (format!("{p}.input_layernorm.weight"), vec![h]),
            (format!("{p}.self_attn.q_proj.weight"), vec![q, h]),
            (format!("{p}.self_attn.k_proj.weight"), vec![kv, h]),
            (format!("{p}.self_attn.v_proj.weight"), vec![kv, h]),
            (format!("{p}.self_attn.o_proj.weight"), vec![h, q]),
            (format!("{p}.post_attention_layernorm.weight"), vec![h]),
            (format!("{p}.mlp.gate_proj.weight"), vec![i, h]),
            (format!("{p}.mlp.up_proj.weight"), vec![i, h]),
            (format!("{p}.mlp.down_proj.weight"), vec![h, i]),
        ]);
    }
    out
}

#[test]
fn smollm2_weights_map_to_hf_names_strictly() {
    let gguf = GgufFile::open(&smollm2_gguf()).unwrap();
    let c = ModelConfig::from_gguf(&gguf).unwrap();
    let mut ws = WeightSource::from_gguf(&gguf, &c).unwrap();
    assert!(!ws.contains("lm_head.weight"), "tied: no output.weight");
    for (name, shape) in llama_tensors(&c) {
        let w = ws
            .take(&name, &shape)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(w.shape(), &shape[..]);
    }
    ws.finish().expect("every tensor used");

    // Strictness on the real file: wrong shape, missing, unused.
    let mut ws = WeightSource::from_gguf(&gguf, &c).unwrap();
    let err = ws.take("model.norm.weight", &[577]).unwrap_err();
    assert!(
        matches!(err, ModelError::TensorShape { ref actual, .. } if actual == &[576]),
        "{err}"
    );
    let err = ws.take("lm_head.weight", &[49152, 576]).unwrap_err();
    assert!(matches!(err, ModelError::MissingTensor { .. }), "{err}");
    ws.take("model.norm.weight", &[576]).unwrap();
    match ws.finish().unwrap_err() {
        ModelError::UnexpectedTensors { path, names } => {
            assert!(path.ends_with("SmolLM2-135M-Instruct.Q4_1.gguf"));
            assert_eq!(names.len(), 272 - 1);
            assert!(names.contains(&"model.layers.7.mlp.up_proj.weight".to_string()));
        }
        other => panic!("{other}"),
    }
    let ws = WeightSource::from_gguf(&gguf, &c)
        .unwrap()
        .ignore_prefixes(&["model."]);
    ws.finish().expect("everything ignored");
}

/// Q4_1 block: f16 d, f16 m, 16 bytes of nibbles; x = d·q + m, low nibbles are the first half.
fn dequant_q4_1_row(row: &[u8]) -> Vec<f32> {
    let mut out = Vec::new();
    for b in row.chunks_exact(20) {
        let d = half::f16::from_le_bytes([b[0], b[1]]).to_f32();
        let m = half::f16::from_le_bytes([b[2], b[3]]).to_f32();
        let mut block = [0f32; 32];
        for (j, &q) in b[4..].iter().enumerate() {
            block[j] = (q & 0x0f) as f32 * d + m;
            block[j + 16] = (q >> 4) as f32 * d + m;
        }
        out.extend_from_slice(&block);
    }
    out
}

#[test]
fn smollm2_qk_unpermuted_like_transformers() {
    let gguf = GgufFile::open(&smollm2_gguf()).unwrap();
    let c = ModelConfig::from_gguf(&gguf).unwrap();
    let mut ws = WeightSource::from_gguf(&gguf, &c).unwrap();
    let want = read_json("smollm2_qk_rows.json");
    let mut checked = 0;
    for t in want.as_array().unwrap() {
        let name = t["hf_name"].as_str().unwrap();
        let shape: Vec<usize> = t["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        let w = ws.take(name, &shape).unwrap();
        assert_eq!(w.dtype(), DType::Q4_1, "{name}");
        for (row, values) in t["rows"].as_object().unwrap() {
            let row: usize = row.parse().unwrap();
            let got = dequant_q4_1_row(w.row(row));
            let want: Vec<f32> = values
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect();
            let max_diff = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert_eq!(got.len(), want.len());
            assert!(max_diff <= 1e-6, "{name} row {row}: max diff {max_diff}");
            checked += 1;
        }
        // The library's dequantiser agrees on the same (un-permuted) rows.
        let all = w.to_f32_vec().unwrap();
        let row_len = shape[1];
        for row in t["rows"].as_object().unwrap().keys() {
            let row: usize = row.parse().unwrap();
            let lib = &all[row * row_len..(row + 1) * row_len];
            assert_eq!(
                lib,
                &dequant_q4_1_row(w.row(row))[..],
                "{name} to_f32_vec row {row}"
            );
        }
    }
    assert!(checked >= 40);
    // The v projection is not permuted: its rows are the file's rows, byte for byte.
    let v = ws
        .take("model.layers.0.self_attn.v_proj.weight", &[192, 576])
        .unwrap();
    let info = gguf.tensor_info("blk.0.attn_v.weight").unwrap();
    assert_eq!(
        v.bytes().as_slice(),
        gguf.weight(info).unwrap().bytes().as_slice()
    );
}
