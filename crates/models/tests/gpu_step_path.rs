//! The CUDA decode step's host-overhead paths: the fused residual add + RMSNorm matches the two
//! separate GPU ops bit for bit; a warm decode step re-uploads only a handful of metadata buffers
//! (not one per layer) and builds no new cuBLASLt plan; decode steps through the cached metadata
//! and plans give the same logits as the CPU (bf16 tolerance). Needs a CUDA GPU: built only with
//! `--features gpu-tests`. Run: `cargo test -p arle-models --release --features gpu-tests
//! --test gpu_step_path -- --nocapture --test-threads 1`.
#![cfg(feature = "gpu-tests")]

use std::path::Path;

use arle_models::dummy::load_dummy_model_on;
use arle_models::{ForwardBatch, ModelCache};
use arle_tensor::ops::{self, RmsNormKind};
use arle_tensor::{Device, Tensor, Weight};

fn values(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let h = (i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed);
            (h % 2001) as f32 / 500.0 - 2.0
        })
        .collect()
}

#[test]
fn fused_add_rms_norm_matches_add_then_norm_on_gpu() {
    let gpu = Device::Cuda(0);
    for (rows, dim) in [(1usize, 2560usize), (5, 4096), (33, 128), (2, 100)] {
        for kind in [RmsNormKind::Plain, RmsNormKind::ZeroCentered] {
            let up = |seed| {
                Tensor::from_vec(vec![rows, dim], values(rows * dim, seed))
                    .unwrap()
                    .to_device(gpu)
                    .unwrap()
            };
            let w = Weight::from_f32(vec![dim], &values(dim, 3))
                .unwrap()
                .to_device(gpu, false)
                .unwrap();
            let y = up(7);
            let (mut fused_x, mut plain_x) = (up(1), up(1));
            let fused = ops::add_rms_norm(&mut fused_x, &y, &w, 1e-6, kind).unwrap();
            ops::add_inplace(&mut plain_x, &y).unwrap();
            let plain = ops::rms_norm(&plain_x, &w, 1e-6, kind).unwrap();
            let host = |t: Tensor| t.to_host().unwrap().into_vec();
            let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
            assert_eq!(
                bits(host(fused_x)),
                bits(host(plain_x)),
                "{rows}x{dim}: residual"
            );
            assert_eq!(bits(host(fused)), bits(host(plain)), "{rows}x{dim}: normed");
        }
    }
    println!("STEP fused add_rms_norm: bit-exact vs add_inplace + rms_norm");
}

/// Prefill 20 tokens then `steps` decode steps of a dummy model on `device`; the logits of every
/// step, and per decode step (metadata uploads, new GEMM plans) on a GPU.
fn run_steps(model: &str, device: Device, steps: usize) -> (Vec<Vec<f32>>, Vec<(u64, usize)>) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/golden")
        .join(model)
        .join("config.json");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(&src, dir.path().join("config.json")).expect("copy");
    let (loaded, _) = load_dummy_model_on(dir.path(), device, 5).expect("load");
    let info = loaded.model.info().clone();
    let mut cache = ModelCache::with_state_slots(&info.cache, 8, 1);
    let vocab = info.vocab_size as u32;
    let table = vec![3u32, 1, 4];
    let prompt: Vec<u32> = (0..20).map(|i| (i * 7 + 2) % vocab).collect();
    let mut logits = Vec::new();
    let mut counters = Vec::new();
    let backend = match device {
        Device::Cuda(i) => Some(arle_tensor::cuda::backend(i).expect("backend")),
        _ => None,
    };
    let snapshot = || {
        backend
            .as_ref()
            .map_or((0, 0), |b| (b.metadata_uploads(), b.gemm_plan_count()))
    };
    let batch = ForwardBatch::single(&prompt, 0, table.clone(), false);
    let out = loaded
        .model
        .forward(&batch, &mut cache, None)
        .expect("prefill");
    logits.push(out.to_host().expect("host").into_vec());
    for s in 0..steps {
        let token = (s as u32 * 13 + 5) % vocab;
        let before = snapshot();
        let batch = ForwardBatch::single(&[token], prompt.len() + s, table.clone(), false);
        let out = loaded
            .model
            .forward(&batch, &mut cache, None)
            .expect("decode");
        let after = snapshot();
        counters.push((after.0 - before.0, after.1 - before.1));
        logits.push(out.to_host().expect("host").into_vec());
    }
    (logits, counters)
}

#[test]
fn decode_steps_reuse_metadata_and_plans_and_match_cpu() {
    for model in ["llama", "qwen3"] {
        let (cpu, _) = run_steps(model, Device::Cpu, 6);
        let (gpu, counters) = run_steps(model, Device::Cuda(0), 6);
        println!("STEP {model}: per decode step (metadata uploads, new GEMM plans): {counters:?}");
        for (i, (c, g)) in cpu.iter().zip(&gpu).enumerate() {
            let num: f32 = c.iter().zip(g).map(|(a, b)| (a - b) * (a - b)).sum();
            let den: f32 = c.iter().map(|a| a * a).sum();
            let rel = (num / den.max(1e-30)).sqrt();
            println!("STEP {model} step {i}: cpu vs gpu logits rel-L2 {rel:.2e}");
            assert!(g.iter().all(|v| v.is_finite()), "{model} step {i}");
            assert!(rel < 3e-2, "{model} step {i}: rel {rel}");
        }
        // Step 0 may add the decode shapes' plans; later steps reuse them. Uploads per step:
        // embedding ids aside (not cached), RoPE positions, KV slots, decode tables — a few,
        // never one set per layer.
        for (i, &(uploads, plans)) in counters.iter().enumerate().skip(1) {
            assert_eq!(plans, 0, "{model} step {i}: new GEMM plans in a warm step");
            assert!(uploads <= 4, "{model} step {i}: {uploads} metadata uploads");
        }
    }
}
