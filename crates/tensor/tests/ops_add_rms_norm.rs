//! `ops::add_rms_norm` is exactly `add_inplace` then `rms_norm` on the CPU (bit for bit, both
//! weight conventions, odd widths), and rejects mismatched shapes without touching x.

use arle_tensor::ops::{self, RmsNormKind};
use arle_tensor::{Tensor, Weight};

fn values(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let h = (i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed);
            (h % 2001) as f32 / 1000.0 - 1.0
        })
        .collect()
}

#[test]
fn fused_add_norm_is_add_then_norm_bit_for_bit() {
    for (rows, dim) in [(1usize, 8usize), (3, 37), (70, 256)] {
        for kind in [RmsNormKind::Plain, RmsNormKind::ZeroCentered] {
            let x = Tensor::from_vec(vec![rows, dim], values(rows * dim, 1)).unwrap();
            let y = Tensor::from_vec(vec![rows, dim], values(rows * dim, 7)).unwrap();
            let w = Weight::from_f32(vec![dim], &values(dim, 3)).unwrap();
            let (mut fused_x, mut plain_x) = (x.clone(), x);
            let fused = ops::add_rms_norm(&mut fused_x, &y, &w, 1e-6, kind).unwrap();
            ops::add_inplace(&mut plain_x, &y).unwrap();
            let plain = ops::rms_norm(&plain_x, &w, 1e-6, kind).unwrap();
            let bits = |t: &Tensor| t.data().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits(&fused_x),
                bits(&plain_x),
                "{rows}x{dim} {kind:?}: residual"
            );
            assert_eq!(bits(&fused), bits(&plain), "{rows}x{dim} {kind:?}: normed");
        }
    }
}

#[test]
fn mismatched_shapes_leave_x_unchanged() {
    let x0 = Tensor::from_vec(vec![2, 4], values(8, 1)).unwrap();
    let mut x = x0.clone();
    let y = Tensor::from_vec(vec![2, 4], values(8, 2)).unwrap();
    let bad_w = Weight::from_f32(vec![3], &values(3, 3)).unwrap();
    assert!(ops::add_rms_norm(&mut x, &y, &bad_w, 1e-6, RmsNormKind::Plain).is_err());
    let bad_y = Tensor::from_vec(vec![4, 2], values(8, 2)).unwrap();
    let w = Weight::from_f32(vec![4], &values(4, 3)).unwrap();
    assert!(ops::add_rms_norm(&mut x, &bad_y, &w, 1e-6, RmsNormKind::Plain).is_err());
    assert_eq!(x.data(), x0.data());
}
