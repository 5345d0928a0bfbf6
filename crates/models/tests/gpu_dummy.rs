//! `--load-format dummy` on the CUDA backend: the device fill (`cuda::random`, `random.cu`) is
//! bit-identical to the host formula, and a dummy tiny model gives the same logits on the GPU as
//! on the CPU (bf16 activation tolerance) for every architecture the CUDA path runs. Needs a
//! CUDA GPU: built only with `--features gpu-tests`.
#![cfg(feature = "gpu-tests")]

use std::path::Path;

use arle_models::dummy::{dummy_value, load_dummy_model_on};
use arle_models::{ForwardBatch, ModelCache};
use arle_tensor::cuda::random::{fill_bf16, DummyFill};
use arle_tensor::Device;

#[test]
fn device_fill_matches_the_host_formula_bit_for_bit() {
    let backend = arle_tensor::cuda::backend(0).expect("cuda backend");
    for (key, center, n) in [(1u64, 0.0f32, 1000usize), (0xdead_beef, 1.0, 3 << 20)] {
        let dev = fill_bf16(&backend, n, DummyFill { key, center }).expect("fill");
        let got = backend.stream().clone_dtoh(&dev).expect("copy back");
        backend.synchronize().expect("sync");
        let bad = (0..n)
            .filter(|&i| {
                got[i].to_bits()
                    != half::bf16::from_f32(dummy_value(key, center, i as u64)).to_bits()
            })
            .count();
        assert_eq!(bad, 0, "key {key:#x} center {center}: {bad} of {n} differ");
        println!("DUMMY fill key {key:#x} n {n}: bit-exact");
    }
}

#[test]
fn dummy_models_agree_between_cpu_and_gpu() {
    for model in ["llama", "qwen3", "qwen3_5", "qwen3_5_moe"] {
        let src = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/golden")
            .join(model)
            .join("config.json");
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::copy(&src, dir.path().join("config.json")).expect("copy");
        let run = |device: Device| -> Result<Vec<f32>, String> {
            let (loaded, _) =
                load_dummy_model_on(dir.path(), device, 3).map_err(|e| e.to_string())?;
            let info = loaded.model.info().clone();
            let mut cache = ModelCache::with_state_slots(&info.cache, 8, 1);
            let prompt: Vec<u32> = (0..40)
                .map(|i| (i * 11 + 1) % info.vocab_size as u32)
                .collect();
            let batch = ForwardBatch::single(&prompt, 0, vec![1, 2, 3], true);
            let logits = loaded
                .model
                .forward(&batch, &mut cache, None)
                .map_err(|e| e.to_string())?;
            Ok(logits.to_host().map_err(|e| e.to_string())?.into_vec())
        };
        let cpu = run(Device::Cpu).expect("cpu forward");
        let gpu = match run(Device::Cuda(0)) {
            Ok(v) => v,
            Err(e) => {
                println!("DUMMY {model}: GPU forward failed: {e}");
                panic!("{model}: {e}");
            }
        };
        let num: f32 = cpu.iter().zip(&gpu).map(|(a, b)| (a - b) * (a - b)).sum();
        let den: f32 = cpu.iter().map(|a| a * a).sum();
        let rel = (num / den.max(1e-30)).sqrt();
        println!("DUMMY {model}: cpu vs gpu logits rel-L2 {rel:.2e}");
        assert!(
            gpu.iter().all(|v| v.is_finite()),
            "{model}: non-finite GPU logits"
        );
        assert!(rel < 3e-2, "{model}: rel {rel}");
    }
}
