//! Single-thread `quant::dot` / `dot_rows` / `dot_many` / `dequantize` throughput over a 576 x 1536 weight
//! matrix (576 rows of 1536 values, SmolLM2's ffn_down shape) for q4_1, q8_0, q6_k, f32 and
//! bf16, on every instruction set this CPU has. Prints GB/s of weight bytes read.
//! Run: `cargo bench -p arle-tensor --bench quant_dot`.
//!
//! Weights are random bytes with small f16 scales (values are irrelevant to speed). The
//! matrix (0.5-3.5 MB) mostly stays in L2/L3, so this measures kernel throughput, not DRAM.

use arle_tensor::quant::{self, Isa};
use arle_tensor::DType;
use half::f16;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::hint::black_box;
use std::time::{Duration, Instant};

const ROWS: usize = 576;
const COLS: usize = 1536;
const MIN_TIME: Duration = Duration::from_millis(300);
const DTYPES: [DType; 5] = [
    DType::Q4_1,
    DType::Q8_0,
    DType::Q6K,
    DType::F32,
    DType::BF16,
];

/// Byte offsets of the f16 scale fields in one block.
fn f16_fields(dtype: DType) -> &'static [usize] {
    match dtype {
        DType::Q4_1 => &[0, 2],
        DType::Q8_0 => &[0],
        DType::Q6K => &[208],
        _ => &[],
    }
}

/// `[ROWS, COLS]` weights of `dtype`, row-major.
fn weights(rng: &mut ChaCha8Rng, dtype: DType) -> Vec<u8> {
    let n = ROWS * COLS;
    match dtype {
        DType::F32 => (0..n)
            .flat_map(|_| rng.random_range(-1.0f32..1.0).to_le_bytes())
            .collect(),
        DType::BF16 => (0..n)
            .flat_map(|_| half::bf16::from_f32(rng.random_range(-1.0f32..1.0)).to_le_bytes())
            .collect(),
        _ => {
            let mut bytes = vec![0u8; dtype.bytes_for(n).expect("whole blocks")];
            rng.fill_bytes(&mut bytes);
            for block in bytes.chunks_exact_mut(dtype.block_bytes()) {
                for &off in f16_fields(dtype) {
                    let scale = f16::from_f32(rng.random_range(-0.05f32..0.05));
                    block[off..off + 2].copy_from_slice(&scale.to_le_bytes());
                }
            }
            bytes
        }
    }
}

/// Runs `pass` until `MIN_TIME` has elapsed; returns seconds per pass.
fn time_passes(mut pass: impl FnMut()) -> f64 {
    pass();
    let (start, mut passes) = (Instant::now(), 0u32);
    while start.elapsed() < MIN_TIME {
        pass();
        passes += 1;
    }
    start.elapsed().as_secs_f64() / passes as f64
}

fn main() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let xs: Vec<Vec<f32>> = (0..4)
        .map(|_| (0..COLS).map(|_| rng.random_range(-1.0f32..1.0)).collect())
        .collect();
    let x_refs: Vec<&[f32]> = xs.iter().map(|x| x.as_slice()).collect();
    let mut tile = vec![0.0f32; COLS];
    println!("weights {ROWS} x {COLS}, 1 thread; GB/s of weight bytes per row-dot");
    println!("(dot_many: one pass serves 4 activation rows and counts 4x)");
    println!(
        "{:<6} {:<7} {:>9} {:>9} {:>9} {:>13} {:>11}",
        "isa", "dtype", "MB", "dot", "dot_rows", "dot_many(4)", "dequantize"
    );
    for isa in Isa::all_supported() {
        for dtype in DTYPES {
            let w = weights(&mut rng, dtype);
            let row_bytes = w.len() / ROWS;
            let gb = w.len() as f64 / 1e9;
            let dot_s = time_passes(|| {
                for row in w.chunks_exact(row_bytes) {
                    black_box(quant::dot_with(isa, dtype, row, &xs[0]).expect("dot"));
                }
            });
            let mut rows_out = vec![0.0f32; ROWS];
            let rows_s = time_passes(|| {
                quant::dot_rows_with(isa, dtype, &w, &xs[0], &mut rows_out).expect("dot_rows");
                black_box(&rows_out);
            });
            let mut out = [0.0f32; 4];
            let many_s = time_passes(|| {
                for row in w.chunks_exact(row_bytes) {
                    quant::dot_many_with(isa, dtype, row, &x_refs, &mut out).expect("dot_many");
                    black_box(&out);
                }
            });
            let deq_s = time_passes(|| {
                for row in w.chunks_exact(row_bytes) {
                    quant::dequantize_with(isa, dtype, row, &mut tile).expect("dequantize");
                    black_box(&tile);
                }
            });
            println!(
                "{:<6} {:<7} {:>9.2} {:>9.2} {:>9.2} {:>13.2} {:>11.2}",
                format!("{isa:?}"),
                dtype.name(),
                gb * 1e3,
                gb / dot_s,
                gb / rows_s,
                4.0 * gb / many_s,
                gb / deq_s
            );
        }
    }
}
