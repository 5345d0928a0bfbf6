//! Parity of the fast CPU ops against `ops::reference` (the naive oracle) on seeded random
//! inputs of odd sizes: linear for every weight dtype and token count, embedding, norms,
//! elementwise ops, RoPE and log-softmax. (Paged attention: `ops_attention_parity.rs`.)

mod common;

use arle_tensor::ops::{self, reference, RmsNormKind, RopeTable};
use arle_tensor::{Bytes, DType, Tensor, Weight};
use common::*;
use rand::Rng;

const REL_TOL: f32 = 1e-5;

#[test]
fn linear_matches_reference_for_every_dtype_and_batch() {
    let mut rng = rng(1);
    for dtype in ALL_DTYPES {
        let k = row_len_for(dtype);
        for rows in [1, 37] {
            let w = random_weight(&mut rng, dtype, rows, k);
            for n in [1, 3, 17, 64] {
                let x = random_tensor(&mut rng, &[n, k]);
                let fast = ops::linear(&x, &w, None).expect("fast linear");
                let slow = reference::linear(&x, &w, None).expect("reference linear");
                assert_close(
                    &format!("linear {dtype:?} rows {rows} n {n}"),
                    &fast,
                    &slow,
                    REL_TOL,
                );
            }
        }
    }
}

#[test]
fn linear_many_rows_spans_several_tiles_and_tasks() {
    let mut rng = rng(2);
    for dtype in [DType::F32, DType::Q4_1, DType::Q6K] {
        let k = row_len_for(dtype);
        let w = random_weight(&mut rng, dtype, 517, k);
        for n in [1, 4, 5, 33] {
            let x = random_tensor(&mut rng, &[n, k]);
            let fast = ops::linear(&x, &w, None).expect("fast");
            let slow = reference::linear(&x, &w, None).expect("reference");
            assert_close(
                &format!("linear {dtype:?} 517 rows n {n}"),
                &fast,
                &slow,
                REL_TOL,
            );
        }
    }
}

#[test]
fn linear_with_bias_and_into_buffer() {
    let mut rng = rng(3);
    let (n, k, m) = (17, 131, 29);
    let w = random_weight(&mut rng, DType::BF16, m, k);
    let bias = Weight::from_f32(vec![m], &random_vec(&mut rng, m)).expect("bias");
    let x = random_tensor(&mut rng, &[n, k]);
    let slow = reference::linear(&x, &w, Some(&bias)).expect("reference");
    let fast = ops::linear(&x, &w, Some(&bias)).expect("fast");
    assert_close("linear+bias", &fast, &slow, REL_TOL);
    let mut buf = vec![f32::NAN; n * m];
    ops::linear_into(&x, &w, Some(&bias), &mut buf).expect("linear_into");
    let into = Tensor::from_vec(vec![n, m], buf).expect("tensor");
    assert_close("linear_into+bias", &into, &slow, REL_TOL);
    assert!(ops::linear_into(&x, &w, None, &mut [0.0; 3]).is_err());
}

#[test]
fn linear_f32_weight_with_unaligned_bytes_takes_the_copy_path() {
    let mut rng = rng(4);
    let (k, m) = (67, 23);
    let values = random_vec(&mut rng, k * m);
    let mut raw = vec![0u8];
    raw.extend_from_slice(bytemuck::cast_slice(&values));
    let bytes = Bytes::from_vec(raw).slice(1..1 + 4 * k * m).expect("slice");
    let unaligned = Weight::new(DType::F32, vec![m, k], bytes).expect("weight");
    let aligned = Weight::from_f32(vec![m, k], &values).expect("weight");
    for n in [1, 9] {
        let x = random_tensor(&mut rng, &[n, k]);
        let slow = reference::linear(&x, &aligned, None).expect("reference");
        let fast = ops::linear(&x, &unaligned, None).expect("fast");
        assert_close("linear unaligned f32", &fast, &slow, REL_TOL);
    }
}

#[test]
fn linear_rejects_mismatched_shapes() {
    let mut rng = rng(5);
    let w = random_weight(&mut rng, DType::F32, 4, 8);
    assert!(ops::linear(&random_tensor(&mut rng, &[2, 9]), &w, None).is_err());
    assert!(ops::linear(&random_tensor(&mut rng, &[2, 2, 8]), &w, None).is_err());
    let bias = Weight::from_f32(vec![3], &[0.0; 3]).expect("bias");
    assert!(ops::linear(&random_tensor(&mut rng, &[2, 8]), &w, Some(&bias)).is_err());
}

#[test]
fn embedding_matches_reference_for_every_dtype() {
    let mut rng = rng(6);
    for dtype in ALL_DTYPES {
        let hidden = row_len_for(dtype);
        let table = random_weight(&mut rng, dtype, 41, hidden);
        let ids = [
            0u32, 40, 7, 7, 19, 3, 40, 1, 2, 5, 8, 13, 21, 34, 0, 11, 12, 30, 39,
        ];
        let fast = ops::embedding(&table, &ids).expect("fast");
        let slow = reference::embedding(&table, &ids).expect("reference");
        assert_eq!(fast, slow, "embedding {dtype:?}");
    }
    let table = random_weight(&mut rng, DType::F32, 4, 8);
    assert!(ops::embedding(&table, &[1, 4]).is_err());
}

#[test]
fn rms_norm_matches_reference_in_both_conventions() {
    let mut rng = rng(7);
    for (shape, dtype) in [(vec![7, 131], DType::F32), (vec![3, 5, 64], DType::BF16)] {
        let hidden = shape[shape.len() - 1];
        let x = random_tensor(&mut rng, &shape);
        let w = random_weight(&mut rng, dtype, 1, hidden);
        let w = Weight::new(dtype, vec![hidden], w.bytes().clone()).expect("vector weight");
        for kind in [RmsNormKind::Plain, RmsNormKind::ZeroCentered] {
            let fast = ops::rms_norm(&x, &w, 1e-6, kind).expect("fast");
            let slow = reference::rms_norm(&x, &w, 1e-6, kind).expect("reference");
            assert_close(
                &format!("rms_norm {shape:?} {kind:?}"),
                &fast,
                &slow,
                REL_TOL,
            );
        }
    }
    let rows = random_tensor(&mut rng, &[2000, 33]);
    let w = Weight::from_f32(vec![33], &random_vec(&mut rng, 33)).expect("w");
    let fast = ops::rms_norm(&rows, &w, 1e-5, RmsNormKind::Plain).expect("fast");
    let slow = reference::rms_norm(&rows, &w, 1e-5, RmsNormKind::Plain).expect("reference");
    assert_close("rms_norm many rows", &fast, &slow, REL_TOL);
    assert!(ops::rms_norm(
        &rows,
        &Weight::from_f32(vec![32], &[1.0; 32]).expect("w"),
        1e-5,
        RmsNormKind::Plain
    )
    .is_err());
}

#[test]
fn elementwise_ops_are_bit_identical_to_reference() {
    let mut rng = rng(8);
    for shape in [vec![3, 5], vec![7, 30011]] {
        let (a, b) = (
            random_tensor(&mut rng, &shape),
            random_tensor(&mut rng, &shape),
        );
        let scaled = Tensor::from_vec(shape.clone(), a.data().iter().map(|v| v * 30.0).collect())
            .expect("scaled");
        assert_eq!(
            ops::silu_mul(&scaled, &b).expect("f"),
            reference::silu_mul(&scaled, &b).expect("r")
        );
        assert_eq!(
            ops::sigmoid_mul(&b, &scaled).expect("f"),
            reference::sigmoid_mul(&b, &scaled).expect("r")
        );
        let (mut fast, mut slow) = (a.clone(), a.clone());
        ops::add_inplace(&mut fast, &b).expect("fast add");
        reference::add_inplace(&mut slow, &b).expect("reference add");
        assert_eq!(fast, slow);
        assert_ne!(fast, a, "add must change x");
    }
    let (a, b) = (
        random_tensor(&mut rng, &[2, 3]),
        random_tensor(&mut rng, &[3, 2]),
    );
    assert!(ops::silu_mul(&a, &b).is_err());
    assert!(ops::sigmoid_mul(&a, &b).is_err());
}

#[test]
fn sigmoid_mul_gates_values() {
    let x = Tensor::from_vec(vec![3], vec![2.0, 2.0, 2.0]).expect("x");
    let gate = Tensor::from_vec(vec![3], vec![0.0, 80.0, -80.0]).expect("gate");
    let y = ops::sigmoid_mul(&x, &gate).expect("sigmoid_mul");
    assert_eq!(y.data()[0], 1.0);
    assert!((y.data()[1] - 2.0).abs() < 1e-6 && y.data()[2].abs() < 1e-6);
}

#[test]
fn rope_is_bit_identical_to_reference_full_and_partial() {
    let mut rng = rng(9);
    let table_for = |rot: usize, scaling: f32| RopeTable {
        inv_freq: (0..rot / 2)
            .map(|i| 1.0 / 10000f32.powf((2 * i) as f32 / rot as f32))
            .collect(),
        rotary_dim: rot,
        attention_scaling: scaling,
    };
    for (shape, rot, scaling) in [
        ([9, 5, 64], 64, 1.0),
        ([13, 3, 64], 16, 1.3),
        ([1, 7, 30], 30, 1.0),
    ] {
        let x = random_tensor(&mut rng, &shape);
        let positions: Vec<u32> = (0..shape[0]).map(|_| rng.random_range(0..5000)).collect();
        let table = table_for(rot, scaling);
        let (mut fast, mut slow) = (x.clone(), x.clone());
        ops::apply_rope(&mut fast, &positions, &table).expect("fast");
        reference::apply_rope(&mut slow, &positions, &table).expect("reference");
        assert_eq!(fast, slow, "rope {shape:?} rot {rot}");
        assert_ne!(fast, x);
    }
    let mut x = random_tensor(&mut rng, &[2, 1, 8]);
    assert!(ops::apply_rope(&mut x, &[0], &table_for(8, 1.0)).is_err());
}

#[test]
fn log_softmax_is_bit_identical_to_reference() {
    let mut rng = rng(10);
    let x = random_tensor(&mut rng, &[5, 1001]);
    let x =
        Tensor::from_vec(vec![5, 1001], x.data().iter().map(|v| v * 20.0).collect()).expect("x");
    assert_eq!(ops::log_softmax_rows(&x), reference::log_softmax_rows(&x));
}
