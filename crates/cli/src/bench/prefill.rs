//! `arle bench prefill` (issue 6, P3): time to prefill one long prompt, and its MFU.
//!
//! Each repetition submits one request of `--input-len` fresh random ids with `max_tokens = 1`
//! and takes its time to first token (the whole prompt in one engine step: the step token budget
//! is raised to the prompt length). FLOPs of the prefill of P tokens:
//! `2 · N_layer · P + 2 · V·H + 2 · L_attn · d · P²`, where `N_layer` = parameters of the decoder
//! layers (no embedding table, no vocabulary projection), `V·H` = the vocabulary projection of
//! the one logits row, `L_attn` = full-attention layers, `d = num_heads · head_dim`; the last term
//! is QKᵀ and PV (`2 · 2 · d · P²` each layer) halved for the causal mask, i.e. `4·L·d·P²/2`.
//! Gated-delta-net (linear attention) state updates are not counted (MFU is a lower bound for
//! hybrid models); for MoE models `N_layer` counts every expert, so MFU is not meaningful there.
//! MFU = FLOPs / time / `--peak-tflops` (a measured bf16 GEMM peak).

use anyhow::bail;
use rand::SeedableRng;

use crate::args::ModelArgs;
use crate::bench::decode::{random_ids, time_request, RequestTiming};
use crate::bench::engine;
use crate::bench::stats::Summary;

#[derive(clap::Args, Debug)]
pub struct PrefillArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Prompt length in tokens (random ids).
    #[arg(long, default_value_t = 4096)]
    pub input_len: usize,
    #[arg(long, default_value_t = 3)]
    pub num_iters: usize,
    #[arg(long, default_value_t = 1)]
    pub num_warmup: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Measured bf16 GEMM peak in TFLOP/s (adds MFU).
    #[arg(long)]
    pub peak_tflops: Option<f64>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, serde::Serialize)]
pub struct PrefillReport {
    pub bench: &'static str,
    pub model: String,
    pub backend: String,
    pub input_len: usize,
    pub load_s: f64,
    pub prefill_ms: Summary,
    pub prefill_tok_s: Summary,
    pub flops: Option<f64>,
    /// FLOPs / median time.
    pub achieved_tflops: Option<f64>,
    pub mfu: Option<f64>,
    pub samples: Vec<RequestTiming>,
}

/// The FLOP count of the module doc.
pub fn prefill_flops(
    layer_params: usize,
    lm_head_params: usize,
    attn_layers: usize,
    attn_width: usize,
    tokens: usize,
) -> f64 {
    let p = tokens as f64;
    2.0 * layer_params as f64 * p
        + 2.0 * lm_head_params as f64
        + 2.0 * attn_layers as f64 * attn_width as f64 * p * p
}

pub fn run(args: PrefillArgs) -> anyhow::Result<PrefillReport> {
    if args.input_len == 0 || args.num_iters == 0 {
        bail!("--input-len and --num-iters must be positive");
    }
    let mut config = args.model.engine_config()?;
    config.max_num_batched_tokens = config.max_num_batched_tokens.max(args.input_len);
    let model = config.served_model_name.clone();
    let started = engine::start(&args.model, config)?;
    let handle = &started.handle;
    let vocab = handle.model().vocab_size as u32;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(args.seed);
    let mut samples = Vec::new();
    for i in 0..args.num_warmup + args.num_iters {
        let ids = random_ids(&mut rng, args.input_len, vocab);
        let t = time_request(handle, ids, 1)?;
        if i >= args.num_warmup {
            samples.push(t);
        }
    }
    handle.shutdown();
    let ms: Vec<f64> = samples.iter().map(|s| s.ttft_ms).collect();
    let tok_s: Vec<f64> = ms
        .iter()
        .map(|m| args.input_len as f64 / (m / 1e3))
        .collect();
    let prefill_ms = Summary::of(&ms);
    let flops = started.params.zip(started.config.as_ref()).map(|(p, c)| {
        let (layers, width) = engine::attention_shape(c);
        prefill_flops(p.layer_params(), p.lm_head, layers, width, args.input_len)
    });
    let achieved_tflops = flops.map(|f| f / (prefill_ms.median / 1e3) / 1e12);
    Ok(PrefillReport {
        bench: "prefill",
        model,
        backend: format!("{:?}", args.model.backend),
        input_len: args.input_len,
        load_s: started.load_s,
        prefill_tok_s: Summary::of(&tok_s),
        prefill_ms,
        flops,
        mfu: achieved_tflops.zip(args.peak_tflops).map(|(a, p)| a / p),
        achieved_tflops,
        samples,
    })
}

pub fn print(r: &PrefillReport, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(r)?);
        return Ok(());
    }
    println!(
        "prefill  model {}  backend {}  prompt {} tok  load {:.1} s",
        r.model, r.backend, r.input_len, r.load_s
    );
    println!(
        "prefill ms     median {:.1}  (min {:.1}, max {:.1})   tok/s {:.0}",
        r.prefill_ms.median, r.prefill_ms.min, r.prefill_ms.max, r.prefill_tok_s.median
    );
    if let (Some(f), Some(t)) = (r.flops, r.achieved_tflops) {
        let mfu = r.mfu.map_or("-".into(), |m| format!("{:.3}", m));
        println!("FLOPs {:.3e}   achieved {:.1} TFLOP/s   MFU {mfu}", f, t);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flops_follow_the_stated_formula() {
        // Llama-3.1-8B-like: 6.98e9 layer params, 128256·4096 head, 32 layers of d = 4096.
        let f = prefill_flops(6_979_321_856, 525_336_576, 32, 4096, 4096);
        let expect = 2.0 * 6_979_321_856.0 * 4096.0
            + 2.0 * 525_336_576.0
            + 4.0 * 32.0 * 4096.0 * 4096.0 * 4096.0 / 2.0;
        assert!((f - expect).abs() / expect < 1e-12);
    }
}
