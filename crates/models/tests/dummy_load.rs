//! `--load-format dummy`: every architecture builds from its tiny golden `config.json` alone
//! (copied into an empty folder), runs a prefill + one decode step with finite logits, and the
//! values follow the documented formula (seeded, tied tensors shared, norm centres).

use std::path::Path;

use arle_models::config::ModelConfig;
use arle_models::dummy::{dummy_value, fnv1a64, load_dummy_model_on, DummyWeights};
use arle_models::{ForwardBatch, ModelCache};
use arle_tensor::Device;

const MODELS: [&str; 5] = ["llama", "llama_variant", "qwen3", "qwen3_5", "qwen3_5_moe"];

fn config_only(model: &str) -> tempfile::TempDir {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/golden")
        .join(model)
        .join("config.json");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(&src, dir.path().join("config.json")).expect("copy config.json");
    dir
}

#[test]
fn every_architecture_runs_with_finite_logits() {
    for model in MODELS {
        let dir = config_only(model);
        let (loaded, stats) = load_dummy_model_on(dir.path(), Device::Cpu, 0)
            .unwrap_or_else(|e| panic!("{model}: {e}"));
        let info = loaded.model.info().clone();
        assert!(
            stats.total_params > 0 && stats.lm_head_params > 0,
            "{model}: {stats:?}"
        );
        assert_eq!(
            stats.embedding_params,
            info.vocab_size * info.hidden_size,
            "{model}"
        );
        let mut cache = ModelCache::with_state_slots(&info.cache, 8, 1);
        let prompt: Vec<u32> = (0..20)
            .map(|i| (i * 7 + 3) % info.vocab_size as u32)
            .collect();
        let batch = ForwardBatch::single(&prompt, 0, vec![1, 2], false);
        let logits = loaded
            .model
            .forward(&batch, &mut cache, None)
            .unwrap_or_else(|e| panic!("{model} prefill: {e}"));
        assert_eq!(logits.shape(), &[1, info.vocab_size], "{model}");
        let values = logits.data();
        assert!(
            values.iter().all(|v| v.is_finite()),
            "{model}: non-finite logits"
        );
        let spread = values.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(spread > 1e-4, "{model}: logits are all ~0 ({spread})");
        let step = ForwardBatch::single(&[5], prompt.len(), vec![1, 2], false);
        let logits = loaded
            .model
            .forward(&step, &mut cache, None)
            .expect("decode");
        assert!(
            logits.data().iter().all(|v| v.is_finite()),
            "{model}: decode"
        );
    }
}

#[test]
fn values_are_seeded_and_follow_the_formula() {
    let dir = config_only("qwen3_5");
    let config = ModelConfig::from_hf_json(&dir.path().join("config.json")).expect("config");
    let mut a = DummyWeights::new(&config, 7);
    let mut b = DummyWeights::new(&config, 7);
    let mut c = DummyWeights::new(&config, 8);
    let name = "model.layers.0.mlp.up_proj.weight";
    let wa = a.take(name, &[4, 64], Device::Cpu, false).expect("take");
    let wb = b.take(name, &[4, 64], Device::Cpu, false).expect("take");
    let wc = c.take(name, &[4, 64], Device::Cpu, false).expect("take");
    assert_eq!(
        wa.bytes().as_slice(),
        wb.bytes().as_slice(),
        "same seed, same values"
    );
    assert_ne!(
        wa.bytes().as_slice(),
        wc.bytes().as_slice(),
        "seed changes values"
    );
    let vals = wa.to_f32_vec().expect("f32");
    for (i, v) in vals.iter().enumerate() {
        assert_eq!(*v, dummy_value(7 ^ fnv1a64(name), 0.0, i as u64));
        assert!(v.abs() <= 0.032);
    }
    let mean = vals.iter().sum::<f32>() / vals.len() as f32;
    assert!(mean.abs() < 0.01, "mean {mean}");
    // Qwen3.5: zero-centred norms ~0, the gated-delta-net output norm ~1.
    let zc = a
        .take("model.norm.weight", &[64], Device::Cpu, false)
        .expect("norm");
    assert!(zc.to_f32_vec().expect("f32").iter().all(|v| v.abs() < 0.04));
    let gdn = a
        .take(
            "model.layers.0.linear_attn.norm.weight",
            &[16],
            Device::Cpu,
            false,
        )
        .expect("gdn norm");
    assert!(gdn
        .to_f32_vec()
        .expect("f32")
        .iter()
        .all(|v| (v - 1.0).abs() < 0.04));
    // A second take of one name is the same tensor; a different shape is an error.
    let again = a.take(name, &[4, 64], Device::Cpu, false).expect("again");
    assert_eq!(again.bytes().as_slice(), wa.bytes().as_slice());
    assert!(a.take(name, &[64, 4], Device::Cpu, false).is_err());
}

#[test]
fn a_folder_without_config_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = load_dummy_model_on(dir.path(), Device::Cpu, 0)
        .err()
        .expect("refused");
    assert!(err.to_string().contains("config.json"), "{err}");
}
