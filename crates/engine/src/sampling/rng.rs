//! The per-request random source: ChaCha20 seeded from the request's `seed`, or from OS
//! entropy when the request gives none.
//!
//! Invariant: the same seed gives the same stream of uniforms on every platform (ChaCha20 is
//! specified bit-exactly), so the same seed, params and logits give the same tokens.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

use crate::EngineError;

/// Seeded uniform source of one request.
#[derive(Clone, Debug)]
pub struct SamplerRng {
    rng: ChaCha20Rng,
}

impl SamplerRng {
    /// `Some(seed)`: reproducible stream; `None`: seeded from OS entropy.
    pub fn new(seed: Option<u64>) -> Result<Self, EngineError> {
        let rng = match seed {
            Some(seed) => ChaCha20Rng::seed_from_u64(seed),
            None => ChaCha20Rng::try_from_os_rng()
                .map_err(|e| EngineError::Sampling(format!("OS entropy unavailable: {e}")))?,
        };
        Ok(Self { rng })
    }

    /// A uniform draw in `[0, 1)` with 53 random bits.
    pub fn uniform_f64(&mut self) -> f64 {
        self.rng.random::<f64>()
    }
}
