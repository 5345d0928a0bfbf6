//! Shared helpers for the op parity tests: seeded random tensors, random weights in every
//! dtype (quantised ones as random block bytes with sane f16 scales), and a tolerance check.
#![allow(dead_code)]

use arle_tensor::{Bytes, DType, Tensor, Weight};
use half::{bf16, f16};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub const ALL_DTYPES: [DType; 13] = DType::ALL;

pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

pub fn random_vec(rng: &mut ChaCha8Rng, len: usize) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

pub fn random_tensor(rng: &mut ChaCha8Rng, shape: &[usize]) -> Tensor {
    let len = shape.iter().product();
    Tensor::from_vec(shape.to_vec(), random_vec(rng, len)).expect("shape")
}

/// Byte offsets of the f16 scale/min fields inside one block of `dtype`.
fn f16_field_offsets(dtype: DType) -> &'static [usize] {
    match dtype {
        DType::Q4_0 | DType::Q5_0 | DType::Q8_0 => &[0],
        DType::Q4_1 | DType::Q5_1 | DType::Q4K | DType::Q5K => &[0, 2],
        DType::Q2K => &[80, 82],
        DType::Q3K => &[108],
        DType::Q6K => &[208],
        DType::F32 | DType::F16 | DType::BF16 => &[],
    }
}

/// A `[rows, cols]` weight of `dtype` with random contents of magnitude ~1 per value.
/// Quantised weights are random block bytes whose f16 scales are set to sane small values.
pub fn random_weight(rng: &mut ChaCha8Rng, dtype: DType, rows: usize, cols: usize) -> Weight {
    let values = random_vec(rng, rows * cols);
    let bytes: Vec<u8> = match dtype {
        DType::F32 => bytemuck::cast_slice(&values).to_vec(),
        DType::F16 => values
            .iter()
            .flat_map(|&v| f16::from_f32(v).to_le_bytes())
            .collect(),
        DType::BF16 => values
            .iter()
            .flat_map(|&v| bf16::from_f32(v).to_le_bytes())
            .collect(),
        _ => {
            let len = dtype.bytes_for(rows * cols).expect("whole blocks");
            let mut bytes = vec![0u8; len];
            rng.fill_bytes(&mut bytes);
            for block in bytes.chunks_exact_mut(dtype.block_bytes()) {
                for &off in f16_field_offsets(dtype) {
                    let scale =
                        rng.random_range(0.002f32..0.05) * if rng.random() { 1.0 } else { -1.0 };
                    block[off..off + 2].copy_from_slice(&f16::from_f32(scale).to_le_bytes());
                }
            }
            bytes
        }
    };
    Weight::new(dtype, vec![rows, cols], Bytes::from_vec(bytes)).expect("weight")
}

/// A row length valid for `dtype`, not a multiple of 8 for plain floats (exercises SIMD tails).
pub fn row_len_for(dtype: DType) -> usize {
    match dtype.block_elems() {
        1 => 131,
        32 => 160,
        _ => 512,
    }
}

/// Asserts `max|a - b| <= rel * max(max|b|, 1e-6)` and equal shapes.
pub fn assert_close(what: &str, a: &Tensor, b: &Tensor, rel: f32) {
    assert_eq!(a.shape(), b.shape(), "{what}: shapes differ");
    let scale = b
        .data()
        .iter()
        .fold(0.0f32, |m, v| m.max(v.abs()))
        .max(1e-6);
    let mut worst = (0.0f32, 0usize);
    for (i, (x, y)) in a.data().iter().zip(b.data()).enumerate() {
        assert!(
            x.is_finite() == y.is_finite(),
            "{what}: finiteness differs at {i}: {x} vs {y}"
        );
        let d = (x - y).abs();
        if d > worst.0 {
            worst = (d, i);
        }
    }
    assert!(
        worst.0 <= rel * scale,
        "{what}: max abs diff {} at {} (fast {}, ref {}) > {rel} * scale {scale}",
        worst.0,
        worst.1,
        a.data()[worst.1],
        b.data()[worst.1]
    );
}
