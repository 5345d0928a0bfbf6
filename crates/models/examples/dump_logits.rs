//! Writes a model's logits for given token ids, for comparison with another implementation
//! (scripts/gpu_real_size.py compares them with HF transformers' on the GPU machine).
//!
//! ```text
//! dump_logits --model DIR --ids ids.json --out DIR [--device cpu|cuda] [--decode-from P]
//! ```
//! `ids.json` is a list of prompts (lists of token ids). For prompt `i` it writes
//! `full_{i}.f32` (one forward over every token, `[T, vocab]` f32 little-endian) and, with
//! `--decode-from P`, `decode_{i}.f32`: the logits of rows `P-1..T` computed as a prefill of
//! `P` tokens followed by one-token decode steps (`[T-P+1, vocab]`). Each prompt runs on fresh
//! pages and a fresh state slot. Build for the GPU with
//! `cargo build --release -p arle-models --features cuda --example dump_logits`.

use std::path::PathBuf;
use std::time::Instant;

use arle_models::{load_model_on, ForwardBatch, LoadedModel, ModelCache};
use arle_tensor::{Device, KV_BLOCK_TOKENS};

type AnyResult<T> = Result<T, Box<dyn std::error::Error>>;

struct Args {
    model: PathBuf,
    ids: PathBuf,
    out: PathBuf,
    device: Device,
    decode_from: Option<usize>,
}

fn parse_args() -> AnyResult<Args> {
    let mut args = std::env::args().skip(1);
    let (mut model, mut ids, mut out, mut device, mut decode_from) =
        (None, None, None, Device::Cpu, None);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--model" => model = Some(PathBuf::from(value()?)),
            "--ids" => ids = Some(PathBuf::from(value()?)),
            "--out" => out = Some(PathBuf::from(value()?)),
            "--decode-from" => decode_from = Some(value()?.parse()?),
            "--device" => {
                device = match value()?.as_str() {
                    "cpu" => Device::Cpu,
                    #[cfg(feature = "cuda")]
                    "cuda" => Device::Cuda(0),
                    other => return Err(format!("unknown device {other}").into()),
                }
            }
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    Ok(Args {
        model: model.ok_or("--model is required")?,
        ids: ids.ok_or("--ids is required")?,
        out: out.ok_or("--out is required")?,
        device,
        decode_from,
    })
}

/// Runs `batch` and returns its logits rows, f32 on the host.
fn forward(
    loaded: &LoadedModel,
    cache: &mut ModelCache,
    batch: &ForwardBatch,
) -> AnyResult<Vec<f32>> {
    let logits = loaded.model.forward(batch, cache, None)?;
    Ok(logits.to_host()?.into_vec())
}

fn fresh_cache(loaded: &LoadedModel, tokens: usize) -> ModelCache {
    let blocks = tokens.div_ceil(KV_BLOCK_TOKENS) + 1;
    ModelCache::with_state_slots(&loaded.model.info().cache, blocks, 1)
}

fn write_f32(path: &PathBuf, data: &[f32]) -> AnyResult<()> {
    let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes)?;
    Ok(())
}

fn main() -> AnyResult<()> {
    let args = parse_args()?;
    let prompts: Vec<Vec<u32>> = serde_json::from_slice(&std::fs::read(&args.ids)?)?;
    std::fs::create_dir_all(&args.out)?;
    let start = Instant::now();
    let loaded = load_model_on(&args.model, args.device)?;
    eprintln!("loaded {} in {:?}", args.model.display(), start.elapsed());
    for (i, ids) in prompts.iter().enumerate() {
        let t = ids.len();
        // Pages 1..: block 0 is the scheduler's null page elsewhere; keep the same convention.
        let table: Vec<u32> = (1..=t.div_ceil(KV_BLOCK_TOKENS) as u32).collect();
        let mut cache = fresh_cache(&loaded, t);
        let start = Instant::now();
        let full = forward(
            &loaded,
            &mut cache,
            &ForwardBatch::single(ids, 0, table.clone(), true),
        )?;
        eprintln!("prompt {i}: {t} tokens, full pass {:?}", start.elapsed());
        write_f32(&args.out.join(format!("full_{i}.f32")), &full)?;
        let Some(p) = args.decode_from else { continue };
        if p == 0 || p >= t {
            return Err(format!("--decode-from {p} must be in 1..{t}").into());
        }
        let mut cache = fresh_cache(&loaded, t);
        let start = Instant::now();
        let mut rows = forward(
            &loaded,
            &mut cache,
            &ForwardBatch::single(&ids[..p], 0, table.clone(), false),
        )?;
        for pos in p..t {
            let step = ForwardBatch::single(&ids[pos..pos + 1], pos, table.clone(), false);
            rows.extend(forward(&loaded, &mut cache, &step)?);
        }
        eprintln!(
            "prompt {i}: prefill {p} + {} decode steps {:?}",
            t - p,
            start.elapsed()
        );
        write_f32(&args.out.join(format!("decode_{i}.f32")), &rows)?;
    }
    Ok(())
}
