//! Sampling where the logits live: on a GPU the engine samples with the device kernels
//! (`arle_tensor::cuda::sample_rows`) and copies back only token ids; the CPU sampler
//! (`crate::sampling`) stays the path of the CPU backend and of requests that ask for logprobs.
//!
//! Invariants: [`DeviceSampling`] carries exactly the CPU sampler's parameters (greedy as
//! temperature 0, "off" values as the kernels expect them); `offset` is the number of tokens the
//! request generated so far, so with a fixed seed its tokens do not depend on which other requests
//! share the step. Differences to the CPU sampler (random stream, tie handling) are listed in
//! docs/http-api.md.

use arle_tensor::Tensor;

use crate::sampling::SamplerConfig;
use crate::EngineError;

/// One request's device-sampling parameters for one step.
#[derive(Clone, Copy, Debug)]
pub struct DeviceSampling<'a> {
    /// `0.0`: greedy argmax (lowest id on ties).
    pub temperature: f32,
    /// `0`: off.
    pub top_k: u32,
    pub top_p: f32,
    pub min_p: f32,
    pub seed: u64,
    /// Tokens generated so far (the random stream's counter).
    pub offset: u64,
    pub repetition_penalty: f32,
    pub presence_penalty: f32,
    pub frequency_penalty: f32,
    /// Token histories (empty when the matching penalties are off).
    pub prompt_ids: &'a [u32],
    pub output_ids: &'a [u32],
}

impl<'a> DeviceSampling<'a> {
    /// The parameters of `config` for a request with these tokens so far.
    pub fn new(
        config: &SamplerConfig,
        seed: u64,
        prompt_ids: &'a [u32],
        output_ids: &'a [u32],
    ) -> Self {
        let needs_output = config.has_repetition_penalty() || config.has_output_penalties();
        Self {
            temperature: if config.is_greedy() {
                0.0
            } else {
                config.temperature
            },
            top_k: config
                .top_k
                .map_or(0, |k| u32::try_from(k).unwrap_or(u32::MAX)),
            top_p: config.top_p,
            min_p: config.min_p,
            seed,
            offset: output_ids.len() as u64,
            repetition_penalty: config.repetition_penalty,
            presence_penalty: config.presence_penalty,
            frequency_penalty: config.frequency_penalty,
            prompt_ids: if config.has_repetition_penalty() {
                prompt_ids
            } else {
                &[]
            },
            output_ids: if needs_output { output_ids } else { &[] },
        }
    }
}

/// Samples `(row, params)` pairs from `logits` (`[rows, vocab]`, on a GPU); token ids in order.
#[cfg(feature = "cuda")]
pub fn sample_on_device(
    logits: &Tensor,
    rows: &[(usize, DeviceSampling<'_>)],
) -> Result<Vec<u32>, EngineError> {
    let params: Vec<arle_tensor::cuda::GpuSampleRow<'_>> = rows
        .iter()
        .map(|&(row, p)| arle_tensor::cuda::GpuSampleRow {
            row,
            temperature: p.temperature,
            top_k: p.top_k,
            top_p: p.top_p,
            min_p: p.min_p,
            seed: p.seed,
            offset: p.offset,
            repetition_penalty: p.repetition_penalty,
            presence_penalty: p.presence_penalty,
            frequency_penalty: p.frequency_penalty,
            prompt_ids: p.prompt_ids,
            output_ids: p.output_ids,
        })
        .collect();
    Ok(arle_tensor::cuda::sample_rows(logits, &params)?)
}

/// Without the `cuda` feature there is no device to sample on.
#[cfg(not(feature = "cuda"))]
pub fn sample_on_device(
    _logits: &Tensor,
    rows: &[(usize, DeviceSampling<'_>)],
) -> Result<Vec<u32>, EngineError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    Err(EngineError::Internal(
        "device sampling needs the cuda feature".into(),
    ))
}
