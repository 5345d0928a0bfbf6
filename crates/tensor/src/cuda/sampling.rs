//! Token sampling on the GPU ([`sample_rows`]): penalties, then greedy argmax or seeded
//! temperature/top-k/top-p/min-p sampling with arle-kernels' `sampling.cu`, on f32 logits that
//! never leave the device; only the chosen token ids are copied back.
//!
//! Penalties follow the engine's CPU sampler: the repetition penalty counts prompt + output
//! tokens, presence/frequency penalties count output tokens only (two kernel passes, each
//! launched only when some row uses it). Randomness is philox keyed by the row's `seed` with
//! counter `offset` (the engine passes the number of tokens generated so far), so a request's
//! tokens do not depend on its batch position.
//!
//! Invariants: the logits tensor is not modified (the sampled rows are copied into pooled scratch
//! first); only the rows named by `GpuSampleRow::row` are read.

use arle_kernels::cudarc::driver::{CudaSlice, CudaView};
use arle_kernels::ops::sampling::{self as ks, PenaltyInputs, SamplingInputs};

use super::ops::gpu_of;
use super::pool::PoolSlice;
use super::{cuda_err, placement, upload_pooled, CudaBackend, GpuData};
use crate::{Result, Tensor, TensorError};

/// One row's sampling parameters (the CPU sampler's, in kernel form).
#[derive(Clone, Copy, Debug)]
pub struct GpuSampleRow<'a> {
    /// Which logits row to sample.
    pub row: usize,
    /// `<= 0`: greedy argmax (lowest id on ties).
    pub temperature: f32,
    /// `0`: off.
    pub top_k: u32,
    /// `>= 1`: off.
    pub top_p: f32,
    /// `<= 0`: off.
    pub min_p: f32,
    pub seed: u64,
    /// Philox counter: tokens generated so far by this request.
    pub offset: u64,
    /// `1.0`: off; applied to tokens of `prompt_ids` and `output_ids`.
    pub repetition_penalty: f32,
    /// `0.0`: off; applied to tokens of `output_ids`.
    pub presence_penalty: f32,
    pub frequency_penalty: f32,
    pub prompt_ids: &'a [u32],
    pub output_ids: &'a [u32],
}

/// Samples one token for each entry of `params`, from its row of `logits` (`[rows, vocab]`, f32 on
/// a GPU). Returns the token ids in `params` order (one device-to-host copy of `params.len()`
/// ints).
pub fn sample_rows(logits: &Tensor, params: &[GpuSampleRow<'_>]) -> Result<Vec<u32>> {
    const OP: &str = "sample_rows";
    let [rows, vocab] = *logits.shape() else {
        return Err(placement(
            OP,
            format!("logits must be 2-D, got {:?}", logits.shape()),
        ));
    };
    let n = params.len();
    if n == 0 {
        return Ok(Vec::new());
    }
    if let Some(p) = params.iter().find(|p| p.row >= rows) {
        return Err(placement(
            OP,
            format!("row {} of logits {:?}", p.row, logits.shape()),
        ));
    }
    if vocab == 0 {
        return Err(placement(OP, "empty vocabulary"));
    }
    let g = gpu_of(OP, logits)?;
    let GpuData::F32(src) = g.data() else {
        return Err(placement(
            OP,
            "logits must be f32 (a vocabulary projection's output)",
        ));
    };
    let backend = g.backend().as_ref();
    let pool = backend.pool();
    let stream = backend.stream();
    // SAFETY: fully written by the copy right below.
    let mut work = PoolSlice::new(pool.clone(), unsafe { pool.alloc::<f32>(n * vocab)? });
    for (i, p) in params.iter().enumerate() {
        stream
            .memcpy_dtod(
                &src.slice(p.row * vocab..(p.row + 1) * vocab),
                &mut work.slice_mut(i * vocab..(i + 1) * vocab),
            )
            .map_err(cuda_err("logits copy"))?;
    }
    if params.iter().any(|p| p.repetition_penalty != 1.0) {
        let pass = PenaltyPass {
            repetition: params.iter().map(|p| p.repetition_penalty).collect(),
            presence: vec![0.0; n],
            frequency: vec![0.0; n],
            history: params
                .iter()
                .map(|p| [p.prompt_ids, p.output_ids])
                .collect(),
        };
        pass.apply(backend, &mut work, vocab)?;
    }
    if params
        .iter()
        .any(|p| p.presence_penalty != 0.0 || p.frequency_penalty != 0.0)
    {
        let pass = PenaltyPass {
            repetition: vec![1.0; n],
            presence: params.iter().map(|p| p.presence_penalty).collect(),
            frequency: params.iter().map(|p| p.frequency_penalty).collect(),
            history: params.iter().map(|p| [&[][..], p.output_ids]).collect(),
        };
        pass.apply(backend, &mut work, vocab)?;
    }
    let up_f32 = |f: fn(&GpuSampleRow<'_>) -> f32| {
        upload_pooled(backend, &params.iter().map(f).collect::<Vec<f32>>())
    };
    let temperature = up_f32(|p| p.temperature)?;
    let top_p = up_f32(|p| p.top_p)?;
    let min_p = up_f32(|p| p.min_p)?;
    let top_k: Vec<i32> = params
        .iter()
        .map(|p| i32::try_from(p.top_k).unwrap_or(0))
        .collect();
    let top_k = upload_pooled(backend, &top_k)?;
    let seed = upload_pooled(
        backend,
        &params.iter().map(|p| p.seed).collect::<Vec<u64>>(),
    )?;
    let offset = upload_pooled(
        backend,
        &params.iter().map(|p| p.offset).collect::<Vec<u64>>(),
    )?;
    // SAFETY: the sampling kernel writes every probability / token it later reads.
    let mut probs = PoolSlice::new(pool.clone(), unsafe { pool.alloc::<f32>(n * vocab)? });
    let mut tokens = PoolSlice::new(pool.clone(), unsafe { pool.alloc::<i32>(n)? });
    let inputs = SamplingInputs {
        temperature: &view(&temperature, n),
        top_k: &view(&top_k, n),
        top_p: &view(&top_p, n),
        min_p: &view(&min_p, n),
        seed: &view(&seed, n),
        offset: &view(&offset, n),
    };
    ks::sample_tokens(
        backend.runtime(),
        &work.as_view(),
        &mut probs.as_view_mut(),
        &inputs,
        &mut tokens.as_view_mut(),
        n,
        vocab,
    )?;
    let ids = stream
        .clone_dtoh(&*tokens)
        .map_err(cuda_err("token ids device-to-host copy"))?;
    backend.synchronize()?;
    ids.into_iter()
        .map(|t| {
            u32::try_from(t)
                .ok()
                .filter(|&t| (t as usize) < vocab)
                .ok_or_else(|| TensorError::Invalid {
                    op: OP,
                    detail: format!("sampled id {t} outside vocab {vocab} (no finite logit?)"),
                })
        })
        .collect()
}

/// The first `n` values of a pooled upload.
fn view<T>(s: &PoolSlice<T>, n: usize) -> CudaView<'_, T> {
    s.slice(0..n)
}

/// One `apply_penalties` launch: per row, the token history is the concatenation of two lists.
struct PenaltyPass<'a> {
    repetition: Vec<f32>,
    presence: Vec<f32>,
    frequency: Vec<f32>,
    history: Vec<[&'a [u32]; 2]>,
}

impl PenaltyPass<'_> {
    fn apply(
        &self,
        backend: &CudaBackend,
        logits: &mut CudaSlice<f32>,
        vocab: usize,
    ) -> Result<()> {
        let n = self.history.len();
        let lens: Vec<usize> = self
            .history
            .iter()
            .map(|[a, b]| a.len() + b.len())
            .collect();
        let max_hist = lens.iter().copied().max().unwrap_or(0).max(1);
        let mut hist = vec![-1i32; n * max_hist];
        for (r, [a, b]) in self.history.iter().enumerate() {
            for (i, &t) in a.iter().chain(b.iter()).enumerate() {
                hist[r * max_hist + i] = i32::try_from(t).unwrap_or(-1);
            }
        }
        let hist_lens: Vec<i32> = lens
            .iter()
            .map(|&l| i32::try_from(l).unwrap_or(i32::MAX))
            .collect();
        let hist = upload_pooled(backend, &hist)?;
        let hist_lens = upload_pooled(backend, &hist_lens)?;
        let rep = upload_pooled(backend, &self.repetition)?;
        let pres = upload_pooled(backend, &self.presence)?;
        let freq = upload_pooled(backend, &self.frequency)?;
        let pool = backend.pool();
        // SAFETY: the kernel zeroes its counts row before counting.
        let mut counts = PoolSlice::new(pool.clone(), unsafe { pool.alloc::<i32>(n * vocab)? });
        let inputs = PenaltyInputs {
            history: &view(&hist, n * max_hist),
            history_lens: &view(&hist_lens, n),
            repetition: &view(&rep, n),
            presence: &view(&pres, n),
            frequency: &view(&freq, n),
            max_hist,
        };
        ks::apply_penalties(
            backend.runtime(),
            &mut logits.as_view_mut(),
            &mut counts.as_view_mut(),
            &inputs,
            n,
            vocab,
        )?;
        Ok(())
    }
}
