//! SIMD kernels (x86_64 AVX2 and AVX-512) behind a runtime check, with the portable
//! [`super::scalar`] code as the fallback on other targets.
//!
//! Invariant: a kernel of an ISA runs only after [`avx2_supported`] / [`avx512_supported`]
//! confirmed the CPU has its features (the answers are detected once and cached).

#[macro_use]
mod kernels;
#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;

use super::{scalar, Isa};
use crate::DType;
#[cfg(target_arch = "x86_64")]
use std::sync::OnceLock;

/// Whether the CPU has AVX2, FMA and F16C.
pub(super) fn avx2_supported() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static SUPPORTED: OnceLock<bool> = OnceLock::new();
        *SUPPORTED.get_or_init(|| {
            std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
                && std::arch::is_x86_feature_detected!("f16c")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether the CPU has AVX-512F on top of the AVX2 set.
pub(super) fn avx512_supported() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static SUPPORTED: OnceLock<bool> = OnceLock::new();
        *SUPPORTED
            .get_or_init(|| avx2_supported() && std::arch::is_x86_feature_detected!("avx512f"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Decodes `dst.len()` values. `isa` must be supported (checked by the caller).
pub(super) fn dequantize(isa: Isa, dtype: DType, src: &[u8], dst: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    match isa {
        // SAFETY: the caller checked `isa.is_supported()`; lengths were checked by the API.
        Isa::Avx2 => return unsafe { avx2::dequantize(dtype, src, dst) },
        // SAFETY: as above.
        Isa::Avx512 => return unsafe { avx512::dequantize(dtype, src, dst) },
        Isa::Scalar => {}
    }
    let _ = isa;
    scalar::dequantize(dtype, src, dst)
}

/// `Σ row[i] · x[i]`. `isa` must be supported (checked by the caller).
pub(super) fn dot(isa: Isa, dtype: DType, row: &[u8], x: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    match isa {
        // SAFETY: the caller checked `isa.is_supported()`; lengths were checked by the API.
        Isa::Avx2 => return unsafe { avx2::dot(dtype, row, x) },
        // SAFETY: as above.
        Isa::Avx512 => return unsafe { avx512::dot(dtype, row, x) },
        Isa::Scalar => {}
    }
    let _ = isa;
    scalar::dot(dtype, row, x)
}

/// `out[r] = Σ rows[r][i] · x[i]`. `isa` must be supported (checked by the caller).
pub(super) fn dot_rows(isa: Isa, dtype: DType, rows: &[u8], x: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    match isa {
        // SAFETY: the caller checked `isa.is_supported()`; lengths were checked by the API.
        Isa::Avx2 => return unsafe { avx2::dot_rows(dtype, rows, x, out) },
        // SAFETY: as above.
        Isa::Avx512 => return unsafe { avx512::dot_rows(dtype, rows, x, out) },
        Isa::Scalar => {}
    }
    let _ = isa;
    scalar::dot_rows(dtype, rows, x, out)
}

/// `out[j] = Σ row[i] · xs[j][i]`. `isa` must be supported (checked by the caller).
pub(super) fn dot_many(isa: Isa, dtype: DType, row: &[u8], xs: &[&[f32]], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    match isa {
        // SAFETY: the caller checked `isa.is_supported()`; lengths were checked by the API.
        Isa::Avx2 => return unsafe { avx2::dot_many(dtype, row, xs, out) },
        // SAFETY: as above.
        Isa::Avx512 => return unsafe { avx512::dot_many(dtype, row, xs, out) },
        Isa::Scalar => {}
    }
    let _ = isa;
    scalar::dot_many(dtype, row, xs, out)
}
