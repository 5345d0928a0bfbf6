//! [`WeightSource`]: strict, by-HF-name access to a checkpoint's tensors.
//!
//! Invariants: every `take` checks the shape; `finish` fails if any tensor in the checkpoint was
//! never taken (unexpected tensors), except names the caller declared ignorable (e.g.
//! `model.visual.*`, `mtp.*`, `rotary_emb.inv_freq`). GGUF names are mapped to HF names and
//! llama Q/K rows un-permuted before the model sees them.
//! (Skeleton: the loader helper implements it.)

use arle_tensor::Weight;

use crate::Result;

#[derive(Debug)]
pub struct WeightSource {
    _private: (),
}

impl WeightSource {
    /// Takes tensor `name` (HF naming), checking it has `shape`.
    pub fn take(&mut self, name: &str, shape: &[usize]) -> Result<Weight> {
        let _ = (name, shape);
        Err(crate::ModelError::Unsupported(
            "WeightSource not implemented yet".into(),
        ))
    }

    /// Takes `name` if present (e.g. an untied `lm_head.weight`, optional biases).
    pub fn take_optional(&mut self, name: &str, shape: &[usize]) -> Result<Option<Weight>> {
        let _ = (name, shape);
        Ok(None)
    }

    /// Whether the checkpoint contains `name`.
    pub fn contains(&self, name: &str) -> bool {
        let _ = name;
        false
    }

    /// Errors if tensors remain that were never taken.
    pub fn finish(self) -> Result<()> {
        Ok(())
    }
}
