//! Shared checks for the golden tests (golden_llama.rs, golden_qwen3.rs): load a tiny HF checkpoint
//! from fixtures/golden/<model>/ through `load_model` and compare against the HF goldens made by
//! scripts/make_goldens.py (see fixtures/golden/README.md).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use arle_models::{load_model, ForwardBatch, LayerCache, LoadedModel, ModelCache};
use arle_tensor::ops::SeqSpan;
use arle_tensor::{Tensor, KV_BLOCK_TOKENS};

/// Prefill length used by the goldens.
pub const P: usize = 100;
/// KV pages in the test caches (512 token slots).
pub const NUM_BLOCKS: usize = 32;

pub fn fixture_dir(model: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/golden")
        .join(model)
}

pub fn load(model: &str) -> LoadedModel {
    let dir = fixture_dir(model);
    load_model(&dir).unwrap_or_else(|e| panic!("load {}: {e}", dir.display()))
}

/// All tensors of a golden file as f32 (i64 `input_ids` converted), with shapes.
pub struct Golden {
    pub tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    pub input_ids: Vec<u32>,
}

impl Golden {
    pub fn open(model: &str) -> Self {
        Self::open_file(model, "golden_f32.safetensors")
    }

    /// HF's logits of the same inputs in bf16 (`golden_bf16.safetensors`), widened to f32.
    pub fn open_bf16(model: &str) -> Self {
        Self::open_file(model, "golden_bf16.safetensors")
    }

    fn open_file(model: &str, file: &str) -> Self {
        let path = fixture_dir(model).join(file);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let st = safetensors::SafeTensors::deserialize(&bytes).expect("parse golden");
        let mut tensors = BTreeMap::new();
        let mut input_ids = Vec::new();
        for (name, view) in st.tensors() {
            let data = view.data();
            match view.dtype() {
                safetensors::Dtype::F32 => {
                    let values = data
                        .chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect();
                    tensors.insert(name.clone(), (view.shape().to_vec(), values));
                }
                safetensors::Dtype::BF16 => {
                    let values = data
                        .chunks_exact(2)
                        .map(|c| f32::from_bits(u32::from(u16::from_le_bytes([c[0], c[1]])) << 16))
                        .collect();
                    tensors.insert(name.clone(), (view.shape().to_vec(), values));
                }
                safetensors::Dtype::I64 => {
                    assert_eq!(name, "input_ids");
                    input_ids = data
                        .chunks_exact(8)
                        .map(|c| {
                            let mut b = [0u8; 8];
                            b.copy_from_slice(c);
                            u32::try_from(i64::from_le_bytes(b)).expect("id fits u32")
                        })
                        .collect();
                }
                other => panic!("unexpected dtype {other:?} for {name}"),
            }
        }
        assert!(!input_ids.is_empty(), "golden has no input_ids");
        Self { tensors, input_ids }
    }

    pub fn get(&self, name: &str) -> &[f32] {
        &self
            .tensors
            .get(name)
            .unwrap_or_else(|| panic!("golden has no `{name}`"))
            .1
    }

    /// Rows `rows` of a `[n, cols]` golden.
    pub fn rows(&self, name: &str, rows: std::ops::Range<usize>) -> Vec<f32> {
        let (shape, data) = &self.tensors[name];
        let cols = shape[1];
        data[rows.start * cols..rows.end * cols].to_vec()
    }
}

/// Largest |a - b|; panics on length mismatch.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(
            0.0f32,
            |m, d| if d.is_nan() { f32::INFINITY } else { m.max(d) },
        )
}

/// max|a - b| / max|b|.
pub fn rel_diff(a: &[f32], b: &[f32]) -> f32 {
    let scale = b
        .iter()
        .fold(0.0f32, |m, v| m.max(v.abs()))
        .max(f32::MIN_POSITIVE);
    max_abs_diff(a, b) / scale
}

pub fn assert_close(what: &str, got: &[f32], want: &[f32], max_abs: f32) {
    let d = max_abs_diff(got, want);
    assert!(d <= max_abs, "{what}: max-abs diff {d:e} > {max_abs:e}");
}

/// A block table of `n` distinct, deliberately non-contiguous pages (`stride` apart mod
/// NUM_BLOCKS, starting at `first`).
pub fn scattered_blocks(n: usize, first: usize, stride: usize) -> Vec<u32> {
    let table: Vec<u32> = (0..n)
        .map(|j| ((first + j * stride) % NUM_BLOCKS) as u32)
        .collect();
    let mut sorted = table.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), n, "block table {table:?} repeats a page");
    table
}

pub fn new_cache(loaded: &LoadedModel) -> ModelCache {
    ModelCache::new(&loaded.model.info().cache, NUM_BLOCKS)
}

/// One forward pass; returns logits and, when `trace`, every traced activation.
pub fn run(
    loaded: &LoadedModel,
    cache: &mut ModelCache,
    batch: &ForwardBatch,
    trace: bool,
) -> (Tensor, BTreeMap<String, Vec<f32>>) {
    let mut traced = BTreeMap::new();
    let mut rec = |name: &str, t: &Tensor| {
        traced.insert(name.to_string(), t.data().to_vec());
    };
    let tracer: Option<arle_models::Tracer<'_>> = if trace { Some(&mut rec) } else { None };
    let logits = loaded.model.forward(batch, cache, tracer).expect("forward");
    assert_eq!(
        logits.shape(),
        [batch.logits_rows.len(), loaded.config.vocab_size]
    );
    (logits, traced)
}

/// Full pass over all T tokens: logits and every traced module vs the golden.
pub fn check_full(model: &str) {
    let loaded = load(model);
    let golden = Golden::open(model);
    let ids = &golden.input_ids;
    let mut cache = new_cache(&loaded);
    let table = scattered_blocks(ids.len().div_ceil(KV_BLOCK_TOKENS), 3, 7);
    let batch = ForwardBatch::single(ids, 0, table, true);
    check_inv_freq(&loaded, &golden);
    let (logits, traced) = run(&loaded, &mut cache, &batch, true);
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
        let want = golden.get(name);
        let is_residual = name.ends_with(".in") && !name.ends_with("o_proj.in")
            || name.ends_with("layers.0.out")
            || name.ends_with("layers.1.out");
        let tol = if is_residual { 1e-5 } else { 1e-4 };
        let d = rel_diff(got, want);
        assert!(d <= tol, "{name}: relative diff {d:e} > {tol:e}");
        compared += 1;
    }
    assert!(compared >= 10, "only {compared} traced tensors compared");
}

/// The RoPE table built from the parsed config vs HF's `rotary_emb.inv_freq`.
pub fn check_inv_freq(loaded: &LoadedModel, golden: &Golden) {
    let table = loaded.config.rope.table(loaded.config.head_dim);
    let want = golden.get("rope.inv_freq");
    assert_eq!(table.inv_freq.len(), want.len(), "inv_freq length");
    let d = rel_diff(&table.inv_freq, want);
    assert!(d <= 1e-6, "rope.inv_freq: relative diff {d:e}");
}

/// Logits only (fixtures without activations): full pass, prefill `p` + one-token decode steps,
/// prefill `p` + one continuation chunk; plus inv_freq.
pub fn check_logits(model: &str, p: usize) {
    let loaded = load(model);
    let golden = Golden::open(model);
    check_inv_freq(&loaded, &golden);
    let ids = &golden.input_ids;
    let t = ids.len();
    let table = scattered_blocks(t.div_ceil(KV_BLOCK_TOKENS), 9, 13);

    let mut cache = new_cache(&loaded);
    let (full, _) = run(
        &loaded,
        &mut cache,
        &ForwardBatch::single(ids, 0, table.clone(), true),
        false,
    );
    assert_close("logits.full", full.data(), golden.get("logits.full"), 1e-4);

    let mut cache = new_cache(&loaded);
    run(
        &loaded,
        &mut cache,
        &ForwardBatch::single(&ids[..p], 0, table.clone(), false),
        false,
    );
    let mut rows = Vec::new();
    for pos in p..t {
        let step = ForwardBatch::single(&ids[pos..pos + 1], pos, table.clone(), false);
        rows.extend_from_slice(run(&loaded, &mut cache, &step, false).0.data());
    }
    let want = golden.get("logits.prefill_then_decode");
    assert_close("logits.prefill_then_decode", &rows, want, 1e-4);

    let mut cache = new_cache(&loaded);
    run(
        &loaded,
        &mut cache,
        &ForwardBatch::single(&ids[..p], 0, table.clone(), false),
        false,
    );
    let rest = ForwardBatch::single(&ids[p..], p, table, true);
    let (cont, _) = run(&loaded, &mut cache, &rest, false);
    let want = golden.get("logits.prefill_then_continue");
    assert_close("logits.prefill_then_continue", cont.data(), want, 1e-4);
}

/// Prefill P tokens, then one-token decode steps; also checks the KV pages after the prefill.
pub fn check_prefill_then_decode(model: &str) {
    let loaded = load(model);
    let golden = Golden::open(model);
    let ids = &golden.input_ids;
    let t = ids.len();
    let mut cache = new_cache(&loaded);
    let table = scattered_blocks(t.div_ceil(KV_BLOCK_TOKENS), 30, 5);

    let prefill = ForwardBatch::single(&ids[..P], 0, table.clone(), false);
    let (logits, _) = run(&loaded, &mut cache, &prefill, false);
    assert_close(
        "prefill last row",
        logits.data(),
        &golden.rows("logits.full", P - 1..P),
        1e-4,
    );
    check_kv_after_prefill(&cache, &golden, &table);

    let mut rows = Vec::new();
    for pos in P..t {
        let step = ForwardBatch::single(&ids[pos..pos + 1], pos, table.clone(), false);
        let (logits, _) = run(&loaded, &mut cache, &step, false);
        rows.extend_from_slice(logits.data());
    }
    assert_close(
        "logits.prefill_then_decode",
        &rows,
        golden.get("logits.prefill_then_decode"),
        1e-4,
    );
}

/// Cache keys/values `[1, nKV, P, D]` from HF vs our pages.
fn check_kv_after_prefill(cache: &ModelCache, golden: &Golden, table: &[u32]) {
    for (i, layer) in cache.layers.iter().enumerate() {
        #[allow(unreachable_patterns)]
        let kv = match layer {
            LayerCache::Attention(kv) => kv,
            _ => panic!("layer {i} is not attention"),
        };
        let (nkv, d) = (kv.num_kv_heads, kv.head_dim);
        for (which, store) in [("keys", &kv.k), ("values", &kv.v)] {
            let want = golden.get(&format!("cache.{i}.{which}"));
            let mut got = vec![0.0f32; nkv * P * d];
            for pos in 0..P {
                let slot =
                    table[pos / KV_BLOCK_TOKENS] as usize * KV_BLOCK_TOKENS + pos % KV_BLOCK_TOKENS;
                for h in 0..nkv {
                    let src = &store[(slot * nkv + h) * d..][..d];
                    got[(h * P + pos) * d..][..d].copy_from_slice(src);
                }
            }
            assert!(
                rel_diff(&got, want) <= 1e-5,
                "cache.{i}.{which}: relative diff {:e}",
                rel_diff(&got, want)
            );
        }
    }
}

/// Prefill P tokens, then the remaining tokens as one chunk.
pub fn check_prefill_then_continue(model: &str) {
    let loaded = load(model);
    let golden = Golden::open(model);
    let ids = &golden.input_ids;
    let mut cache = new_cache(&loaded);
    let table = scattered_blocks(ids.len().div_ceil(KV_BLOCK_TOKENS), 11, 3);
    run(
        &loaded,
        &mut cache,
        &ForwardBatch::single(&ids[..P], 0, table.clone(), false),
        false,
    );
    let rest = ForwardBatch::single(&ids[P..], P, table, true);
    let (logits, _) = run(&loaded, &mut cache, &rest, false);
    assert_close(
        "logits.prefill_then_continue",
        logits.data(),
        golden.get("logits.prefill_then_continue"),
        1e-4,
    );
}

/// One sequence's part of a batch (`slot`: its linear-state slot; attention-only models
/// ignore it).
pub struct Part<'a> {
    pub ids: &'a [u32],
    pub past: usize,
    pub table: &'a [u32],
    pub slot: u32,
}

/// Several sequences in one batch, logits for every row.
pub fn batch_of(parts: &[Part<'_>]) -> ForwardBatch {
    let mut b = ForwardBatch::default();
    for part in parts {
        let start = b.token_ids.len();
        for (i, &id) in part.ids.iter().enumerate() {
            let pos = part.past + i;
            b.token_ids.push(id);
            b.positions.push(pos as u32);
            b.attention.slot_mapping.push(
                part.table[pos / KV_BLOCK_TOKENS] * KV_BLOCK_TOKENS as u32
                    + (pos % KV_BLOCK_TOKENS) as u32,
            );
        }
        b.attention.seqs.push(SeqSpan {
            query_start: start,
            query_len: part.ids.len(),
            context_len: part.past + part.ids.len(),
            block_table: part.table.to_vec(),
        });
        b.state_slots.push(part.slot);
        b.snapshot_positions.push(Vec::new());
    }
    b.logits_rows = (0..b.token_ids.len()).collect();
    b
}

/// Two sequences sharing one batch (interleaved pages; a prefill next to a decode step) give the
/// logits each gives alone.
pub fn check_batched_equals_alone(model: &str) {
    let loaded = load(model);
    let golden = Golden::open(model);
    let a: Vec<u32> = golden.input_ids[..101].to_vec();
    let b: Vec<u32> = golden.input_ids.iter().rev().take(80).copied().collect();
    let table_a = scattered_blocks(a.len().div_ceil(KV_BLOCK_TOKENS), 0, 2); // even pages
    let table_b = scattered_blocks(b.len().div_ceil(KV_BLOCK_TOKENS), 1, 2); // odd pages

    // Together: step 1 = A prefill 100 + B prefill 60; step 2 = A decode 1 + B continue 20.
    let mut cache = new_cache(&loaded);
    let step1 = batch_of(&[
        Part {
            ids: &a[..100],
            past: 0,
            table: &table_a,
            slot: 0,
        },
        Part {
            ids: &b[..60],
            past: 0,
            table: &table_b,
            slot: 0,
        },
    ]);
    let (l1, _) = run(&loaded, &mut cache, &step1, false);
    let step2 = batch_of(&[
        Part {
            ids: &a[100..],
            past: 100,
            table: &table_a,
            slot: 0,
        },
        Part {
            ids: &b[60..],
            past: 60,
            table: &table_b,
            slot: 0,
        },
    ]);
    let (l2, _) = run(&loaded, &mut cache, &step2, false);
    let v = loaded.config.vocab_size;
    let together_a = [&l1.data()[..100 * v], &l2.data()[..v]].concat();
    let together_b = [&l1.data()[100 * v..], &l2.data()[v..]].concat();

    // Alone, each in a fresh cache with contiguous pages.
    for (name, ids, together) in [("A", &a, together_a), ("B", &b, together_b)] {
        let mut alone_cache = new_cache(&loaded);
        let table: Vec<u32> = (0..ids.len().div_ceil(KV_BLOCK_TOKENS) as u32).collect();
        let batch = ForwardBatch::single(ids, 0, table, true);
        let (alone, _) = run(&loaded, &mut alone_cache, &batch, false);
        assert_close(
            &format!("sequence {name} batched vs alone"),
            &together,
            alone.data(),
            1e-5,
        );
    }
    // A is a prefix of the golden prompt, so it must also match HF.
    assert_close(
        "sequence A vs HF",
        &[&l1.data()[..100 * v], &l2.data()[..v]].concat(),
        &golden.rows("logits.full", 0..101),
        1e-4,
    );
}
