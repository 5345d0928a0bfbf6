//! `linear` throughput on SmolLM2-135M shapes (576→1536, 1536→576, 576→49152) at n = 1 (decode)
//! and n = 512 (prefill), Q4_1 and F32 weights, in a 2-thread rayon pool.
//! Prints GFLOP/s (2·n·in·out per call) and weight GB/s (weight bytes read per call).
//! Run: `cargo bench -p arle-tensor --bench ops_linear` (set ARLE_BENCH_THREADS to change threads).

use arle_tensor::{ops, Bytes, DType, Tensor, Weight};
use half::f16;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::{Duration, Instant};

const SHAPES: [(usize, usize); 3] = [(576, 1536), (1536, 576), (576, 49152)];
const TOKENS: [usize; 2] = [1, 512];
const MIN_TIME: Duration = Duration::from_millis(400);

fn weight(rng: &mut ChaCha8Rng, dtype: DType, rows: usize, cols: usize) -> Weight {
    let bytes = match dtype {
        DType::F32 => {
            let v: Vec<f32> = (0..rows * cols)
                .map(|_| rng.random_range(-1.0f32..1.0))
                .collect();
            bytemuck::cast_slice(&v).to_vec()
        }
        _ => {
            let mut b = vec![0u8; dtype.bytes_for(rows * cols).expect("whole blocks")];
            rng.fill_bytes(&mut b);
            // Q4_1: f16 scale at 0 and f16 min at 2 of each 20-byte block.
            for block in b.chunks_exact_mut(dtype.block_bytes()) {
                block[0..2].copy_from_slice(&f16::from_f32(0.01).to_le_bytes());
                block[2..4].copy_from_slice(&f16::from_f32(-0.08).to_le_bytes());
            }
            b
        }
    };
    Weight::new(dtype, vec![rows, cols], Bytes::from_vec(bytes)).expect("weight")
}

/// Median seconds per call over enough calls to fill `MIN_TIME` (at least 3).
fn time_it(mut f: impl FnMut() -> Result<(), String>) -> Result<f64, String> {
    f()?;
    let mut samples = Vec::new();
    let start = Instant::now();
    while samples.len() < 3 || start.elapsed() < MIN_TIME {
        let t = Instant::now();
        f()?;
        samples.push(t.elapsed().as_secs_f64());
    }
    samples.sort_by(f64::total_cmp);
    Ok(samples[samples.len() / 2])
}

fn main() {
    let threads = std::env::var("ARLE_BENCH_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("pool");
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    println!("linear, {threads} threads");
    println!(
        "{:<6} {:>6} {:>6} {:>5} {:>11} {:>9} {:>9}",
        "dtype", "in", "out", "n", "ms/call", "GFLOP/s", "w GB/s"
    );
    for dtype in [DType::Q4_1, DType::F32] {
        for (k, m) in SHAPES {
            let w = weight(&mut rng, dtype, m, k);
            for n in TOKENS {
                let x: Vec<f32> = (0..n * k).map(|_| rng.random_range(-1.0f32..1.0)).collect();
                let x = Tensor::from_vec(vec![n, k], x).expect("x");
                let mut out = vec![0.0f32; n * m];
                let res = pool.install(|| {
                    time_it(|| ops::linear_into(&x, &w, None, &mut out).map_err(|e| e.to_string()))
                });
                match res {
                    Ok(s) => println!(
                        "{:<6} {k:>6} {m:>6} {n:>5} {:>11.3} {:>9.1} {:>9.2}",
                        dtype.name(),
                        s * 1e3,
                        2.0 * (n * k * m) as f64 / s / 1e9,
                        w.bytes().len() as f64 / s / 1e9
                    ),
                    Err(e) => println!("{:<6} {k:>6} {m:>6} {n:>5}   failed: {e}", dtype.name()),
                }
            }
        }
    }
}
