//! GPU-only engine tests (feature `gpu-tests`, needs an NVIDIA GPU): KV pool sized from GPU
//! memory, no driver allocation in a warm decode loop (buffer pool), device sampling
//! reproducibility, batch invariance of `deterministic` mode, and CUDA-graph decode == eager.
//!
//! Model: SmolLM2 (`ARLE_SMOLLM2_GGUF`, else the full GGUF in `.cache/models/`, else the 2-block
//! cut `.gpu/smollm2-2l.gguf` that scripts/gpu-check.sh carries), always on GPU 0 regardless of
//! `ARLE_TEST_DEVICE`.
//! Run with `--test-threads=1` (the tests read process-wide device counters).
#![allow(clippy::unwrap_used)]

mod engine_common;

use std::path::PathBuf;
use std::time::Duration;

use arle_engine::{start_engine, EngineConfig, EngineHandle, SamplingParams};
use arle_tensor::Device;
use engine_common::{
    generate, generate_concurrently, greedy, user_ids, Outcome, EIGHT_USER_PROMPTS,
};

const GIB: usize = 1 << 30;
const MIB: usize = 1 << 20;

/// The SmolLM2 GGUF to test with (see the module doc); panics when none is found.
fn smollm2_gguf() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let candidates = [
        std::env::var_os("ARLE_SMOLLM2_GGUF").map(PathBuf::from),
        Some(root.join(".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf")),
        Some(root.join(".gpu/smollm2-2l.gguf")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.exists())
        .expect("no SmolLM2 GGUF: set ARLE_SMOLLM2_GGUF")
}

fn start_gpu(config: EngineConfig) -> EngineHandle {
    start_engine(EngineConfig {
        model_path: smollm2_gguf(),
        device: Device::Cuda(0),
        ..config
    })
    .unwrap()
}

/// Stops the engine and gives its thread a moment to drop the model and KV pages.
fn stop(handle: EngineHandle) {
    handle.shutdown();
    drop(handle);
    std::thread::sleep(Duration::from_millis(300));
}

fn ignore_eos(params: SamplingParams) -> SamplingParams {
    SamplingParams {
        ignore_eos: true,
        ..params
    }
}

/// `prompts` as requests of `max_tokens` tokens (EOS ignored): even ones greedy, odd ones sampled
/// (temperature 0.9, `tune` sets top-k/top-p) with seed `seed_base + i`.
fn mixed_requests(
    handle: &EngineHandle,
    prompts: &[&str],
    max_tokens: usize,
    seed_base: u64,
    tune: fn(SamplingParams) -> SamplingParams,
) -> Vec<(Vec<u32>, SamplingParams)> {
    prompts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let params = if i % 2 == 0 {
                greedy(max_tokens)
            } else {
                tune(SamplingParams {
                    temperature: 0.9,
                    seed: Some(seed_base + i as u64),
                    max_tokens: Some(max_tokens),
                    ..Default::default()
                })
            };
            (user_ids(handle, p), ignore_eos(params))
        })
        .collect()
}

/// Every request's tokens run alone (one after the other), then all at once.
fn alone_and_together(
    handle: &EngineHandle,
    requests: &[(Vec<u32>, SamplingParams)],
) -> (Vec<Vec<u32>>, Vec<Vec<u32>>) {
    let alone = requests
        .iter()
        .map(|(p, s)| generate(handle, p.clone(), s.clone()).token_ids)
        .collect();
    let together = generate_concurrently(handle, requests.to_vec())
        .into_iter()
        .map(|o| o.token_ids)
        .collect();
    (alone, together)
}

#[test]
fn kv_pool_is_sized_from_gpu_memory() {
    let before = arle_tensor::cuda::memory_info(0).unwrap();
    // Room for about 1 GiB more than what is in use now: weights, activations and KV must fit.
    let budget = before.used_bytes() + GIB;
    let utilization = budget as f32 / before.total_bytes as f32;
    let handle = start_gpu(EngineConfig {
        max_num_seqs: 256,
        gpu_memory_utilization: utilization,
        ..Default::default()
    });
    let after = arle_tensor::cuda::memory_info(0).unwrap();
    let stats = handle.stats();
    println!(
        "memory plan: before {} MiB used, budget {} MiB, after start {} MiB used, {} KV pages",
        before.used_bytes() / MIB,
        budget / MIB,
        after.used_bytes() / MIB,
        stats.kv_blocks_total
    );
    assert!(
        after.used_bytes() <= budget + 64 * MIB,
        "the engine uses {} MiB, over its budget of {} MiB",
        after.used_bytes() / MIB,
        budget / MIB
    );
    assert!(
        after.used_bytes() + 256 * MIB >= budget,
        "the KV pool leaves {} MiB of the budget unused",
        (budget - after.used_bytes()) / MIB
    );
    // The pool works: a request runs.
    let prompt = user_ids(&handle, EIGHT_USER_PROMPTS[0]);
    assert!(!generate(&handle, prompt, greedy(8)).token_ids.is_empty());
    stop(handle);
}

#[test]
fn explicit_kv_cache_tokens_win_over_the_memory_plan() {
    let handle = start_gpu(EngineConfig {
        kv_cache_tokens: Some(1024),
        max_model_len: Some(1024),
        ..Default::default()
    });
    // `kv_blocks_total` counts usable pages (the null page 0 is not one).
    assert_eq!(handle.stats().kv_blocks_total, 1024 / 16);
    stop(handle);
}

/// Runs `prompt` under `params`; returns the pool misses and the foreign (non-pool) tensor
/// buffers it caused.
fn misses_of(
    handle: &EngineHandle,
    prompt: &[u32],
    params: &SamplingParams,
) -> ((u64, u64), Outcome) {
    let s0 = arle_tensor::cuda::pool_stats(0).unwrap();
    let out = generate(handle, prompt.to_vec(), params.clone());
    let s1 = arle_tensor::cuda::pool_stats(0).unwrap();
    (
        (s1.misses - s0.misses, s1.foreign_frees - s0.foreign_frees),
        out,
    )
}

#[test]
fn warm_decode_loop_makes_no_driver_allocations() {
    let handle = start_gpu(EngineConfig {
        kv_cache_tokens: Some(4096),
        max_model_len: Some(4096),
        enable_prefix_caching: false,
        ..Default::default()
    });
    let prompt = user_ids(&handle, EIGHT_USER_PROMPTS[3]);
    for params in [
        ignore_eos(greedy(48)),
        ignore_eos(SamplingParams {
            temperature: 0.8,
            top_p: 0.9,
            top_k: Some(40),
            repetition_penalty: 1.1,
            seed: Some(3),
            max_tokens: Some(48),
            ..Default::default()
        }),
    ] {
        let (warm_misses, first) = misses_of(&handle, &prompt, &params);
        let (misses, second) = misses_of(&handle, &prompt, &params);
        println!(
            "pool (misses, foreign buffers): warm-up run {warm_misses:?}, second run {misses:?}"
        );
        assert_eq!(first.token_ids.len(), 48);
        assert_eq!(second.token_ids, first.token_ids, "same seed, same tokens");
        let (pool_misses, foreign) = misses;
        assert_eq!(
            pool_misses, 0,
            "a warm run of the same shapes missed the pool"
        );
        assert_eq!(
            foreign, 0,
            "a warm run freed tensor buffers allocated outside the pool"
        );
    }
    stop(handle);
}

#[test]
fn seeded_device_sampling_repeats_alone() {
    // No prefix reuse: the repeat must be the same computation (a cached prefix changes the
    // prefill's shape, and the default mode is not batch-invariant).
    let handle = start_gpu(EngineConfig {
        kv_cache_tokens: Some(4096),
        max_model_len: Some(4096),
        enable_prefix_caching: false,
        ..Default::default()
    });
    let prompt = user_ids(&handle, EIGHT_USER_PROMPTS[5]);
    let params = |seed| SamplingParams {
        temperature: 1.0,
        top_p: 0.95,
        min_p: 0.02,
        seed: Some(seed),
        max_tokens: Some(32),
        ..Default::default()
    };
    let a = generate(&handle, prompt.clone(), params(11));
    let b = generate(&handle, prompt.clone(), params(11));
    let c = generate(&handle, prompt, params(12));
    assert_eq!(a.token_ids, b.token_ids);
    assert_ne!(
        a.token_ids, c.token_ids,
        "another seed should change a 32-token sample"
    );
    stop(handle);
}

/// 8 requests alone, then all at once (chunked prefills mixed with decodes: 64-token steps):
/// `deterministic` must give identical tokens, greedy and seeded.
#[test]
fn deterministic_mode_is_batch_invariant() {
    let handle = start_gpu(EngineConfig {
        kv_cache_tokens: Some(8192),
        max_model_len: Some(4096),
        max_num_seqs: 8,
        max_num_batched_tokens: 64,
        enable_prefix_caching: false,
        deterministic: true,
        ..Default::default()
    });
    let tune = |s| SamplingParams {
        top_k: Some(50),
        ..s
    };
    let requests = mixed_requests(&handle, &EIGHT_USER_PROMPTS, 40, 100, tune);
    let (alone, together) = alone_and_together(&handle, &requests);
    for (i, (a, t)) in alone.iter().zip(&together).enumerate() {
        assert_eq!(a.len(), 40, "request {i}");
        let first_diff = a.iter().zip(t).position(|(x, y)| x != y);
        assert_eq!(
            first_diff, None,
            "request {i}: batched output differs from alone"
        );
    }
    stop(handle);
}

/// CUDA graphs: decode steps replayed from graphs give exactly the eager tokens (deterministic
/// mode, so a row's GEMM result does not depend on the padded batch size), greedy and seeded,
/// alone (bucket 1) and five at once (padded to bucket 8); graphs were captured, none without.
#[test]
fn cuda_graph_decode_matches_eager() {
    let run = |cuda_graphs: bool| {
        let handle = start_gpu(EngineConfig {
            kv_cache_tokens: Some(8192),
            max_model_len: Some(4096),
            max_num_seqs: 8,
            enable_prefix_caching: false,
            deterministic: true,
            cuda_graphs,
            ..Default::default()
        });
        let tune = |s| SamplingParams { top_p: 0.95, ..s };
        let requests = mixed_requests(&handle, &EIGHT_USER_PROMPTS[..5], 48, 7, tune);
        let (alone, together) = alone_and_together(&handle, &requests);
        let graphs = handle.stats().cuda_graphs;
        stop(handle);
        (alone, together, graphs)
    };
    let (eager_alone, eager_together, eager_graphs) = run(false);
    let (graph_alone, graph_together, graphs) = run(true);
    println!("cuda graphs captured: {graphs} (eager engine: {eager_graphs})");
    assert_eq!(eager_graphs, 0);
    assert!(
        graphs >= 2,
        "expected graphs for batch 1 and a larger bucket"
    );
    for (i, (e, g)) in eager_alone.iter().zip(&graph_alone).enumerate() {
        assert_eq!(e.len(), 48, "request {i}");
        assert_eq!(g, e, "request {i} alone: graph replay differs from eager");
    }
    for (i, (e, g)) in eager_together.iter().zip(&graph_together).enumerate() {
        assert_eq!(g, e, "request {i} batched: graph replay differs from eager");
    }
}
