//! Bad inputs to the quant API return errors (never panic or read out of bounds).

use arle_tensor::quant::{self, Isa};
use arle_tensor::{DType, TensorError};

#[test]
fn dequantize_rejects_wrong_byte_count() {
    let block = vec![0u8; DType::Q4_1.block_bytes()];
    let mut dst = vec![0.0f32; 32];
    for isa in Isa::all_supported() {
        let err = quant::dequantize_with(isa, DType::Q4_1, &block[..19], &mut dst)
            .expect_err("short block");
        assert!(matches!(
            err,
            TensorError::ByteLength {
                expected: 20,
                actual: 19,
                ..
            }
        ));
        let mut long = block.clone();
        long.push(0);
        assert!(quant::dequantize_with(isa, DType::Q4_1, &long, &mut dst).is_err());
    }
}

#[test]
fn partial_blocks_are_rejected() {
    let row = vec![0u8; DType::Q6K.block_bytes()];
    let mut dst = vec![0.0f32; 255];
    let err = quant::dequantize(DType::Q6K, &row, &mut dst).expect_err("255 values");
    assert!(matches!(err, TensorError::Invalid { .. }), "{err}");
    let x = vec![0.0f32; 33];
    assert!(quant::dot(DType::Q8_0, &[0u8; 68], &x).is_err());
}

#[test]
fn dot_rejects_mismatched_lengths() {
    let x = vec![1.0f32; 64];
    for isa in Isa::all_supported() {
        assert!(quant::dot_with(isa, DType::Q8_0, &[0u8; 34], &x).is_err());
        assert!(quant::dot_with(isa, DType::F32, &[0u8; 255], &x).is_err());
        assert!(quant::dot_with(isa, DType::BF16, &[0u8; 128], &x).is_ok());
    }
}

#[test]
fn dot_many_rejects_ragged_or_mismatched_rows() {
    let row = vec![0u8; 2 * DType::Q4_0.block_bytes()];
    let (a, b) = (vec![0.0f32; 64], vec![0.0f32; 32]);
    let mut out = vec![0.0f32; 2];
    assert!(quant::dot_many(DType::Q4_0, &row, &[&a, &b], &mut out).is_err());
    assert!(quant::dot_many(DType::Q4_0, &row, &[&a, &a], &mut out[..1]).is_err());
    assert!(quant::dot_many(DType::Q4_0, &row, &[&b, &b], &mut out).is_err());
    assert!(quant::dot_many(DType::Q4_0, &row, &[&a, &a], &mut out).is_ok());
}

#[test]
fn unsupported_isa_is_an_error_not_ub() {
    for isa in [Isa::Scalar, Isa::Avx2, Isa::Avx512] {
        let result = quant::dot_with(isa, DType::F32, &[0u8; 4], &[1.0]);
        assert_eq!(result.is_ok(), isa.is_supported(), "{isa:?}");
    }
    assert!(Isa::best().is_supported());
}
