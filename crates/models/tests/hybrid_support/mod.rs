//! Shared checks for the hybrid golden tests (golden_qwen3_5.rs, golden_qwen3_5_moe.rs): the tiny
//! HF checkpoints in fixtures/golden/qwen3_5*/ (scripts/make_goldens.py) run through
//! `load_model`, with state slots for the Gated DeltaNet layers.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;

use arle_models::{ForwardBatch, LayerCache, LoadedModel, ModelCache, StateSnapshot};
use arle_tensor::{Tensor, KV_BLOCK_TOKENS};

use crate::golden_support::{
    assert_close, batch_of, load, max_abs_diff, rel_diff, run, scattered_blocks, Golden, Part,
    NUM_BLOCKS, P,
};

/// One safetensors entry: (dtype, shape, little-endian bytes).
pub type RawTensor = (safetensors::Dtype, Vec<usize>, Vec<u8>);
/// A whole safetensors file by name.
pub type RawTensors = BTreeMap<String, RawTensor>;

/// State slots in the test caches.
pub const NUM_SLOTS: usize = 4;

pub fn new_cache(loaded: &LoadedModel) -> ModelCache {
    ModelCache::with_state_slots(&loaded.model.info().cache, NUM_BLOCKS, NUM_SLOTS)
}

/// A single-sequence batch on state slot `slot`, capturing at `snapshots`.
pub fn single(
    ids: &[u32],
    past: usize,
    table: &[u32],
    slot: u32,
    snapshots: &[usize],
    all_logits: bool,
) -> ForwardBatch {
    let mut b = ForwardBatch::single(ids, past, table.to_vec(), all_logits);
    b.state_slots = vec![slot];
    b.snapshot_positions = vec![snapshots.to_vec()];
    b
}

/// Full pass: logits and every traced module vs HF (residual stream 1e-5 relative, modules
/// 1e-4 relative, logits 1e-4 absolute). Returns the number of tensors compared.
pub fn check_full(model: &str) -> usize {
    let loaded = load(model);
    let golden = Golden::open(model);
    crate::golden_support::check_inv_freq(&loaded, &golden);
    let ids = &golden.input_ids;
    let mut cache = new_cache(&loaded);
    let table = scattered_blocks(ids.len().div_ceil(KV_BLOCK_TOKENS), 3, 7);
    let (logits, traced) = run(
        &loaded,
        &mut cache,
        &single(ids, 0, &table, 2, &[], true),
        true,
    );
    assert_close(
        "logits.full",
        logits.data(),
        golden.get("logits.full"),
        1e-4,
    );
    let mut compared = 0;
    for name in golden.tensors.keys().filter(|n| n.starts_with("model.")) {
        let got = traced
            .get(name)
            .unwrap_or_else(|| panic!("model did not trace `{name}`"));
        let residual = name.ends_with(".in") && name.split('.').count() == 4
            || name.ends_with(".out") && name.split('.').count() == 4;
        let tol = if residual { 1e-5 } else { 1e-4 };
        let d = rel_diff(got, golden.get(name));
        assert!(d <= tol, "{name}: relative diff {d:e} > {tol:e}");
        compared += 1;
    }
    compared
}

/// The linear states of `slot` vs HF's cache after the prefill (`cache.{i}.conv_state`
/// `[1, conv_dim, K]` keeps K rows, ours the last K-1; `recurrent_state` `[1, Hv, Dk, Dv]`).
/// Returns the largest abs diff.
pub fn linear_state_diff(cache: &ModelCache, golden: &Golden, slot: usize) -> f32 {
    let mut worst = 0.0f32;
    let mut linear_layers = 0;
    for (i, layer) in cache.layers.iter().enumerate() {
        let LayerCache::Linear(st) = layer else {
            continue;
        };
        linear_layers += 1;
        let (conv_range, rec_range) = st.slot_ranges(slot).unwrap();
        let (shape, hf_conv) = &golden.tensors[&format!("cache.{i}.conv_state")];
        let (conv_dim, k) = (shape[1], shape[2]);
        let ours = &st.conv[conv_range];
        assert_eq!(ours.len(), (k - 1) * conv_dim);
        let hf_last: Vec<f32> = (0..k - 1)
            .flat_map(|r| (0..conv_dim).map(move |c| (r, c)))
            .map(|(r, c)| hf_conv[c * k + r + 1])
            .collect();
        worst = worst.max(max_abs_diff(ours, &hf_last));
        let hf_rec = golden.get(&format!("cache.{i}.recurrent_state"));
        worst = worst.max(max_abs_diff(&st.recurrent[rec_range], hf_rec));
    }
    assert!(linear_layers > 0, "no linear layers");
    worst
}

/// Keys/values of the attention layers after the prefill of P vs HF (relative 1e-5).
pub fn check_kv(cache: &ModelCache, golden: &Golden, table: &[u32]) {
    for (i, layer) in cache.layers.iter().enumerate() {
        let LayerCache::Attention(kv) = layer else {
            continue;
        };
        let (nkv, d) = (kv.num_kv_heads, kv.head_dim);
        for (which, store) in [("keys", &kv.k), ("values", &kv.v)] {
            let mut got = vec![0.0f32; nkv * P * d];
            for pos in 0..P {
                let slot =
                    table[pos / KV_BLOCK_TOKENS] as usize * KV_BLOCK_TOKENS + pos % KV_BLOCK_TOKENS;
                for h in 0..nkv {
                    got[(h * P + pos) * d..][..d]
                        .copy_from_slice(&store[(slot * nkv + h) * d..][..d]);
                }
            }
            let diff = rel_diff(&got, golden.get(&format!("cache.{i}.{which}")));
            assert!(diff <= 1e-5, "cache.{i}.{which}: relative diff {diff:e}");
        }
    }
}

/// Prefill P, GDN states and KV vs HF, then one-token decode steps (recurrent form).
/// Returns (state diff, decode logits diff).
pub fn check_prefill_then_decode(model: &str) -> (f32, f32) {
    let loaded = load(model);
    let golden = Golden::open(model);
    let ids = &golden.input_ids;
    let mut cache = new_cache(&loaded);
    let table = scattered_blocks(ids.len().div_ceil(KV_BLOCK_TOKENS), 30, 5);
    let slot = 1;
    let (logits, _) = run(
        &loaded,
        &mut cache,
        &single(&ids[..P], 0, &table, slot, &[], false),
        false,
    );
    assert_close(
        "prefill last row",
        logits.data(),
        &golden.rows("logits.full", P - 1..P),
        1e-4,
    );
    let state_diff = linear_state_diff(&cache, &golden, slot as usize);
    assert!(
        state_diff <= 1e-5,
        "GDN states after prefill: max-abs diff {state_diff:e}"
    );
    check_kv(&cache, &golden, &table);
    let mut rows = Vec::new();
    for pos in P..ids.len() {
        let step = single(&ids[pos..pos + 1], pos, &table, slot, &[], false);
        rows.extend_from_slice(run(&loaded, &mut cache, &step, false).0.data());
    }
    let want = golden.get("logits.prefill_then_decode");
    assert_close("logits.prefill_then_decode", &rows, want, 1e-4);
    (state_diff, max_abs_diff(&rows, want))
}

/// Prefill P, then the rest as one continuation (chunked form on an existing state).
pub fn check_prefill_then_continue(model: &str) -> f32 {
    let loaded = load(model);
    let golden = Golden::open(model);
    let ids = &golden.input_ids;
    let mut cache = new_cache(&loaded);
    let table = scattered_blocks(ids.len().div_ceil(KV_BLOCK_TOKENS), 11, 3);
    run(
        &loaded,
        &mut cache,
        &single(&ids[..P], 0, &table, 3, &[], false),
        false,
    );
    let (logits, _) = run(
        &loaded,
        &mut cache,
        &single(&ids[P..], P, &table, 3, &[], true),
        false,
    );
    let want = golden.get("logits.prefill_then_continue");
    assert_close("logits.prefill_then_continue", logits.data(), want, 1e-4);
    max_abs_diff(logits.data(), want)
}

/// Uninterrupted 150-token prefill capturing at `boundaries`; then for each boundary p: restore
/// the snapshot into a fresh slot, reuse the first p/16 KV pages, continue p..T, and compare
/// with the uninterrupted logits (and with HF). Returns the worst resume-vs-uninterrupted diff.
pub fn check_snapshot_resume(model: &str, boundaries: &[usize]) -> f32 {
    let loaded = load(model);
    let golden = Golden::open(model);
    let ids = &golden.input_ids;
    let t = ids.len();
    let mut cache = new_cache(&loaded);
    let pages = t.div_ceil(KV_BLOCK_TOKENS);
    let table: Vec<u32> = (0..pages as u32).collect();
    let (full, _) = run(
        &loaded,
        &mut cache,
        &single(ids, 0, &table, 0, boundaries, true),
        false,
    );
    assert_close(
        "captured run vs HF",
        full.data(),
        golden.get("logits.full"),
        1e-4,
    );
    let captured = std::mem::take(&mut cache.captured);
    assert_eq!(
        captured.len(),
        boundaries.len(),
        "one snapshot per boundary"
    );
    let vocab = loaded.config.vocab_size;
    let mut worst = 0.0f32;
    for (cap, &p) in captured.iter().zip(boundaries) {
        assert_eq!(cap.seq_index, 0);
        assert_eq!(cap.snapshot.position, p);
        let n_linear = loaded
            .model
            .info()
            .cache
            .layers
            .iter()
            .filter(|l| matches!(l, arle_models::LayerCacheSpec::Linear { .. }));
        assert_eq!(cap.snapshot.layers.len(), n_linear.count());
        // Fresh slot 1 from the snapshot; pages for 0..p shared (p is a page multiple here or
        // the partial page is copied), fresh pages after.
        cache.reset_state(1).unwrap();
        cache.restore_state(1, &cap.snapshot).unwrap();
        let shared = p / KV_BLOCK_TOKENS;
        let mut resumed_table: Vec<u32> = table[..shared].to_vec();
        for (j, &page) in table.iter().enumerate().skip(shared) {
            let fresh = (pages + j) as u32;
            if j == shared && p % KV_BLOCK_TOKENS != 0 {
                cache.copy_block(page as usize, fresh as usize); // copy-on-write tail page
            }
            resumed_table.push(fresh);
        }
        let (resumed, _) = run(
            &loaded,
            &mut cache,
            &single(&ids[p..], p, &resumed_table, 1, &[], true),
            false,
        );
        let d = max_abs_diff(resumed.data(), &full.data()[p * vocab..]);
        assert!(
            d <= 1e-4,
            "resume at {p}: max-abs diff {d:e} vs the uninterrupted run"
        );
        assert_close(
            &format!("resume at {p} vs HF"),
            resumed.data(),
            &golden.rows("logits.full", p..t),
            1e-4,
        );
        worst = worst.max(d);
    }
    worst
}

/// A prefill of exactly `p` tokens in its own slot gives the snapshot captured at `p` during a
/// longer prefill (to f32 rounding); returns the max abs diff.
pub fn check_capture_equals_short_prefill(model: &str, p: usize) -> f32 {
    let loaded = load(model);
    let golden = Golden::open(model);
    let ids = &golden.input_ids;
    let table: Vec<u32> = (0..ids.len().div_ceil(KV_BLOCK_TOKENS) as u32).collect();
    let mut cache = new_cache(&loaded);
    run(
        &loaded,
        &mut cache,
        &single(ids, 0, &table, 0, &[p], false),
        false,
    );
    let captured = cache.captured.pop().expect("a snapshot").snapshot;
    let other: Vec<u32> = (16..16 + table.len() as u32).collect();
    run(
        &loaded,
        &mut cache,
        &single(&ids[..p], 0, &other, 2, &[], false),
        false,
    );
    let direct = cache.snapshot_state(2, p).unwrap();
    snapshot_diff(&captured, &direct)
}

pub fn snapshot_diff(a: &StateSnapshot, b: &StateSnapshot) -> f32 {
    assert_eq!(a.position, b.position);
    assert_eq!(a.layers.len(), b.layers.len());
    a.layers
        .iter()
        .zip(&b.layers)
        .map(|(x, y)| max_abs_diff(&x.conv, &y.conv).max(max_abs_diff(&x.recurrent, &y.recurrent)))
        .fold(0.0, f32::max)
}

/// Batch invariance: A resumes from a snapshot at 64 (shared pages, slot 1) next to a fresh B
/// (slot 2); step 1 = A continues 64..100 + B prefills 60; step 2 = A decodes 1 + B continues 20.
/// Each sequence's logits equal its run alone. Returns the worst diff.
pub fn check_batch_with_resume(model: &str) -> f32 {
    let loaded = load(model);
    let golden = Golden::open(model);
    let v = loaded.config.vocab_size;
    let a: Vec<u32> = golden.input_ids[..101].to_vec();
    let b: Vec<u32> = golden.input_ids.iter().rev().take(80).copied().collect();
    let table_a: Vec<u32> = (0..7).collect(); // pages 0..7 (A's first 4 come from the donor)
    let table_b: Vec<u32> = (10..15).collect();

    // Donor: A's first 64 tokens in slot 0, snapshot at 64.
    let mut cache = new_cache(&loaded);
    run(
        &loaded,
        &mut cache,
        &single(&a[..64], 0, &table_a, 0, &[64], false),
        false,
    );
    let snap = cache.captured.pop().expect("snapshot at 64").snapshot;
    cache.restore_state(1, &snap).unwrap();
    cache.reset_state(2).unwrap();
    let step1 = batch_of(&[
        Part {
            ids: &a[64..100],
            past: 64,
            table: &table_a,
            slot: 1,
        },
        Part {
            ids: &b[..60],
            past: 0,
            table: &table_b,
            slot: 2,
        },
    ]);
    let (l1, _) = run(&loaded, &mut cache, &step1, false);
    let step2 = batch_of(&[
        Part {
            ids: &a[100..],
            past: 100,
            table: &table_a,
            slot: 1,
        },
        Part {
            ids: &b[60..],
            past: 60,
            table: &table_b,
            slot: 2,
        },
    ]);
    let (l2, _) = run(&loaded, &mut cache, &step2, false);
    let together_a = [&l1.data()[..36 * v], &l2.data()[..v]].concat();
    let together_b = [&l1.data()[36 * v..], &l2.data()[v..]].concat();

    let mut worst = 0.0f32;
    for (name, ids, from, together) in [("A", &a, 64, together_a), ("B", &b, 0, together_b)] {
        let mut alone = new_cache(&loaded);
        let table: Vec<u32> = (0..ids.len().div_ceil(KV_BLOCK_TOKENS) as u32).collect();
        let (logits, _) = run(
            &loaded,
            &mut alone,
            &single(ids, 0, &table, 0, &[], true),
            false,
        );
        let d = max_abs_diff(&together, &logits.data()[from * v..]);
        assert!(d <= 1e-4, "sequence {name} batched vs alone: {d:e}");
        worst = worst.max(d);
    }
    // A is a prefix of the golden prompt: rows 64..101 must match HF too.
    assert_close(
        "A vs HF",
        &[&l1.data()[..36 * v], &l2.data()[..v]].concat(),
        &golden.rows("logits.full", 64..101),
        1e-4,
    );
    worst
}

/// Logits of a full pass over the golden prompt for the checkpoint in `dir`.
pub fn full_logits(dir: &Path, ids: &[u32]) -> Tensor {
    let loaded =
        arle_models::load_model(dir).unwrap_or_else(|e| panic!("load {}: {e}", dir.display()));
    let mut cache = new_cache(&loaded);
    let table: Vec<u32> = (0..ids.len().div_ceil(KV_BLOCK_TOKENS) as u32).collect();
    run(
        &loaded,
        &mut cache,
        &single(ids, 0, &table, 0, &[], true),
        false,
    )
    .0
}

/// Every tensor of a safetensors file: name → (dtype, shape, bytes).
pub fn read_tensors(path: &Path) -> RawTensors {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(n, v)| (n, (v.dtype(), v.shape().to_vec(), v.data().to_vec())))
        .collect()
}

pub fn write_tensors(path: &Path, tensors: &RawTensors) {
    let views: Vec<(&str, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(n, (dt, shape, b))| {
            (
                n.as_str(),
                safetensors::tensor::TensorView::new(*dt, shape.clone(), b).unwrap(),
            )
        })
        .collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

/// Re-saves fixture `model` in the VL layout into `dir`: keys `model.language_model.*`, the
/// config nested under `text_config` (top-level `model_type` without `_text`), plus dummy
/// `model.visual.*` and `mtp.*` tensors the loader must skip.
pub fn write_vl_layout(model: &str, dir: &Path) {
    let src = crate::golden_support::fixture_dir(model);
    let mut out = BTreeMap::new();
    for (name, t) in read_tensors(&src.join("model.safetensors")) {
        let renamed = match name.strip_prefix("model.") {
            Some(rest) => format!("model.language_model.{rest}"),
            None => name,
        };
        out.insert(renamed, t);
    }
    let dummy = (
        safetensors::Dtype::F32,
        vec![2],
        [1.0f32, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect(),
    );
    out.insert("model.visual.x".into(), dummy.clone());
    out.insert("mtp.fc.weight".into(), dummy);
    write_tensors(&dir.join("model.safetensors"), &out);
    let text: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    let outer_type = text["model_type"]
        .as_str()
        .unwrap()
        .trim_end_matches("_text")
        .to_string();
    let mut text = text;
    let tie = text
        .as_object_mut()
        .unwrap()
        .remove("tie_word_embeddings")
        .unwrap();
    let config = serde_json::json!({
        "architectures": ["Qwen3_5ForConditionalGeneration"],
        "model_type": outer_type,
        "tie_word_embeddings": tie,
        "text_config": text,
        "vision_config": {"depth": 2, "hidden_size": 16, "model_type": "qwen3_5_vision"},
    });
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_string_pretty(&config).unwrap(),
    )
    .unwrap();
}
