//! Helpers for the GPU parity tests: runtime set-up, random bf16 data, host<->device copies,
//! NMSE, and the result table printed last.

use std::sync::Arc;

use arle_kernels::cudarc::driver::{CudaSlice, CudaStream, DeviceRepr, ValidAsZeroBits};
use arle_kernels::{KernelCache, KernelRuntime, NvrtcToolchain};
use half::bf16;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub struct Ctx {
    pub rt: KernelRuntime,
    pub rng: ChaCha8Rng,
    pub rows: Vec<(String, String, f64, f64, bool)>,
}

impl Ctx {
    pub fn new() -> Self {
        let tc = NvrtcToolchain::from_env().expect("NVRTC (CUDA toolkit) on this machine");
        let rt = KernelRuntime::new(0, &tc, &KernelCache::from_env())
            .expect("open GPU 0 and load kernels");
        Self {
            rt,
            rng: ChaCha8Rng::seed_from_u64(0x5eed),
            rows: Vec::new(),
        }
    }
    pub fn stream(&self) -> &Arc<CudaStream> {
        self.rt.stream()
    }
    pub fn uniform(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n)
            .map(|_| self.rng.random_range(-scale..scale))
            .collect()
    }
    /// Random values already rounded to bf16 (as f32), plus their bf16 form.
    pub fn bf16_data(&mut self, n: usize, scale: f32) -> (Vec<f32>, Vec<bf16>) {
        let b: Vec<bf16> = self
            .uniform(n, scale)
            .into_iter()
            .map(bf16::from_f32)
            .collect();
        (b.iter().map(|x| x.to_f32()).collect(), b)
    }
    pub fn up<T: DeviceRepr>(&self, host: &[T]) -> CudaSlice<T> {
        self.stream().clone_htod(host).expect("htod")
    }
    pub fn zeros<T: DeviceRepr + ValidAsZeroBits>(&self, n: usize) -> CudaSlice<T> {
        self.stream().alloc_zeros(n).expect("alloc")
    }
    /// A bf16 buffer poisoned with NaN, to catch unwritten outputs.
    pub fn poisoned_bf16(&self, n: usize) -> CudaSlice<bf16> {
        self.up(&vec![bf16::NAN; n])
    }
    pub fn poisoned_f32(&self, n: usize) -> CudaSlice<f32> {
        self.up(&vec![f32::NAN; n])
    }
    pub fn down<T: DeviceRepr + Clone + Default>(&self, dev: &CudaSlice<T>) -> Vec<T> {
        self.stream().synchronize().expect("sync");
        self.stream().clone_dtoh(dev).expect("dtoh")
    }
    pub fn down_bf16(&self, dev: &CudaSlice<bf16>) -> Vec<f32> {
        self.down(dev).into_iter().map(|x| x.to_f32()).collect()
    }
    /// Records a comparison (NMSE against `threshold`) in the table.
    pub fn check(&mut self, op: &str, case: &str, got: &[f32], want: &[f32], threshold: f64) {
        let e = nmse(got, want);
        self.rows
            .push((op.into(), case.into(), e, threshold, e <= threshold));
    }
    /// Records a pass/fail property (no NMSE).
    pub fn property(&mut self, op: &str, case: &str, ok: bool) {
        self.rows.push((
            op.into(),
            case.into(),
            if ok { 0.0 } else { f64::INFINITY },
            0.0,
            ok,
        ));
    }
    pub fn finish(self) {
        println!(
            "\n{:<26} {:<44} {:>11} {:>9} result",
            "op", "case", "nmse", "limit"
        );
        for (op, case, e, t, ok) in &self.rows {
            println!(
                "{op:<26} {case:<44} {e:>11.3e} {t:>9.1e} {}",
                if *ok { "PASS" } else { "FAIL" }
            );
        }
        let failed: Vec<_> = self
            .rows
            .iter()
            .filter(|r| !r.4)
            .map(|r| format!("{} {}", r.0, r.1))
            .collect();
        println!("{} checks, {} failed", self.rows.len(), failed.len());
        assert!(failed.is_empty(), "failed: {failed:?}");
    }
}

/// ||got - want||^2 / ||want||^2; NaN anywhere gives infinity.
pub fn nmse(got: &[f32], want: &[f32]) -> f64 {
    if got.len() != want.len() || got.iter().any(|x| !x.is_finite()) {
        return f64::INFINITY;
    }
    let num: f64 = got
        .iter()
        .zip(want)
        .map(|(a, b)| ((a - b) as f64).powi(2))
        .sum();
    let den: f64 = want.iter().map(|b| (*b as f64).powi(2)).sum();
    if den == 0.0 {
        num
    } else {
        num / den
    }
}

pub fn round_bf(x: f32) -> f32 {
    bf16::from_f32(x).to_f32()
}

pub fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}
