//! Per-layer cache storage owned by the model runner and indexed by the scheduler's block ids.
//!
//! Attention layers keep paged KV ([`arle_tensor::KvLayer`]); every attention layer shares one
//! block-id space, so block `b` means the same token positions in every layer.
//!
//! Linear-attention layers (Gated DeltaNet, Qwen3.5) keep per-sequence *state slots* instead:
//! a conv window and an f32 recurrent state. Slot `s` means the same sequence in every linear
//! layer. The model reads and updates the state of the slot named in
//! [`crate::ForwardBatch::state_slots`] as it is; the runner resets a slot (start of a sequence)
//! or restores it from a [`StateSnapshot`] (prefix-cache resume) before the step. States the
//! batch asked to capture ([`crate::ForwardBatch::snapshot_positions`]) are pushed to
//! [`ModelCache::captured`] during the forward; the runner drains them.
//!
//! With the `cuda` feature a linear layer's slots move to the GPU on the first GPU forward
//! ([`LinearState::gpu`], host vectors then empty, as KV pages do): conv window bf16
//! `[num_slots, conv_dim, conv_kernel - 1]`, recurrent f32 `[num_slots, Hv, Dk, Dv]`. Reset,
//! restore and snapshot then become device memset / host-to-device / device-to-host copies;
//! snapshots keep the host layout above either way.

use std::ops::Range;

use arle_tensor::KvLayer;

use crate::Result;

/// What one layer needs cached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayerCacheSpec {
    Attention {
        num_kv_heads: usize,
        head_dim: usize,
    },
    /// Gated DeltaNet: conv window `[conv_kernel - 1, conv_dim]` (pre-conv inputs, oldest first)
    /// and recurrent state `[num_v_heads, k_head_dim, v_head_dim]`, both f32.
    Linear {
        conv_dim: usize,
        conv_kernel: usize,
        num_v_heads: usize,
        k_head_dim: usize,
        v_head_dim: usize,
    },
}

impl LayerCacheSpec {
    /// Floats of one sequence's linear state (conv window + recurrent state); 0 for attention.
    pub fn state_floats(&self) -> usize {
        match self {
            LayerCacheSpec::Attention { .. } => 0,
            LayerCacheSpec::Linear {
                conv_dim,
                conv_kernel,
                num_v_heads,
                k_head_dim,
                v_head_dim,
            } => (conv_kernel - 1) * conv_dim + num_v_heads * k_head_dim * v_head_dim,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheSpec {
    pub layers: Vec<LayerCacheSpec>,
}

impl CacheSpec {
    /// KV bytes one token costs across all attention layers (f32 storage).
    pub fn kv_bytes_per_token(&self) -> usize {
        self.layers
            .iter()
            .map(|l| match l {
                LayerCacheSpec::Attention {
                    num_kv_heads,
                    head_dim,
                } => 2 * num_kv_heads * head_dim * 4,
                LayerCacheSpec::Linear { .. } => 0,
            })
            .sum()
    }

    /// Whether any layer keeps a recurrent state (hybrid model).
    pub fn has_linear_layers(&self) -> bool {
        self.layers
            .iter()
            .any(|l| matches!(l, LayerCacheSpec::Linear { .. }))
    }

    /// Bytes of one sequence's (or one snapshot's) linear state over all layers.
    pub fn state_bytes(&self) -> usize {
        self.layers.iter().map(|l| l.state_floats() * 4).sum()
    }
}

/// Linear-attention state storage of one layer, `num_slots` sequences.
#[derive(Clone, Debug)]
pub struct LinearState {
    pub num_slots: usize,
    /// Floats per slot in `conv`: `(conv_kernel - 1) * conv_dim`.
    pub conv_floats: usize,
    /// Floats per slot in `recurrent`: `num_v_heads * k_head_dim * v_head_dim`.
    pub recurrent_floats: usize,
    /// `[num_slots, conv_kernel - 1, conv_dim]`
    pub conv: Vec<f32>,
    /// `[num_slots, num_v_heads, k_head_dim, v_head_dim]`
    pub recurrent: Vec<f32>,
    /// `(conv_dim, conv_kernel)` of the layer.
    pub conv_shape: (usize, usize),
    /// Device slots (then `conv` and `recurrent` are empty).
    #[cfg(feature = "cuda")]
    pub gpu: Option<std::sync::Arc<arle_tensor::cuda::hybrid::GpuLinearState>>,
}

/// One linear layer's state of one sequence at one position.
#[derive(Clone, Debug, PartialEq)]
pub struct LinearLayerSnapshot {
    /// `[conv_kernel - 1, conv_dim]`
    pub conv: Vec<f32>,
    /// `[num_v_heads, k_head_dim, v_head_dim]`
    pub recurrent: Vec<f32>,
}

/// The linear states of every linear layer (in layer order) of one sequence after exactly
/// `position` tokens. Immutable once taken; restoring copies it into a slot.
#[derive(Clone, Debug, PartialEq)]
pub struct StateSnapshot {
    pub position: usize,
    pub layers: Vec<LinearLayerSnapshot>,
}

impl StateSnapshot {
    pub fn bytes(&self) -> usize {
        self.layers
            .iter()
            .map(|l| (l.conv.len() + l.recurrent.len()) * 4)
            .sum()
    }
}

/// A snapshot captured during a forward, for the batch's sequence `seq_index`.
#[derive(Clone, Debug)]
pub struct CapturedState {
    pub seq_index: usize,
    pub snapshot: StateSnapshot,
}

#[derive(Clone, Debug)]
pub enum LayerCache {
    Attention(KvLayer),
    Linear(LinearState),
}

/// All layers' caches: `num_blocks` KV pages per attention layer and `num_state_slots`
/// sequences of state per linear layer.
#[derive(Clone, Debug)]
pub struct ModelCache {
    pub num_blocks: usize,
    pub num_state_slots: usize,
    pub layers: Vec<LayerCache>,
    /// Snapshots captured by the latest forward (drained by the runner).
    pub captured: Vec<CapturedState>,
}

impl ModelCache {
    /// A cache for attention-only models (no state slots).
    pub fn new(spec: &CacheSpec, num_blocks: usize) -> Self {
        Self::with_state_slots(spec, num_blocks, 0)
    }

    pub fn with_state_slots(spec: &CacheSpec, num_blocks: usize, num_state_slots: usize) -> Self {
        let layers = spec
            .layers
            .iter()
            .map(|l| match l {
                LayerCacheSpec::Attention {
                    num_kv_heads,
                    head_dim,
                } => LayerCache::Attention(KvLayer::new(num_blocks, *num_kv_heads, *head_dim)),
                LayerCacheSpec::Linear {
                    conv_dim,
                    conv_kernel,
                    num_v_heads,
                    k_head_dim,
                    v_head_dim,
                } => {
                    let conv_floats = conv_kernel.saturating_sub(1) * conv_dim;
                    let recurrent_floats = num_v_heads * k_head_dim * v_head_dim;
                    LayerCache::Linear(LinearState {
                        num_slots: num_state_slots,
                        conv_floats,
                        recurrent_floats,
                        conv: vec![0.0; num_state_slots * conv_floats],
                        recurrent: vec![0.0; num_state_slots * recurrent_floats],
                        conv_shape: (*conv_dim, *conv_kernel),
                        #[cfg(feature = "cuda")]
                        gpu: None,
                    })
                }
            })
            .collect();
        Self {
            num_blocks,
            num_state_slots,
            layers,
            captured: Vec::new(),
        }
    }

    /// Copies page `src` onto page `dst` in every attention layer (copy-on-write).
    pub fn copy_block(&mut self, src: usize, dst: usize) {
        for layer in &mut self.layers {
            if let LayerCache::Attention(kv) = layer {
                kv.copy_block(src, dst);
            }
        }
    }

    /// Zeroes slot `slot` in every linear layer (a sequence starting at position 0).
    pub fn reset_state(&mut self, slot: usize) -> Result<()> {
        for layer in &mut self.layers {
            if let LayerCache::Linear(st) = layer {
                #[cfg(feature = "cuda")]
                if st.gpu.is_some() {
                    st.gpu_mut()?.reset_slot(slot)?;
                    continue;
                }
                let (conv, rec) = st.slot_ranges(slot)?;
                st.conv[conv].fill(0.0);
                st.recurrent[rec].fill(0.0);
            }
        }
        Ok(())
    }

    /// Copies `snapshot` into slot `slot` (resume from a cached prefix).
    pub fn restore_state(&mut self, slot: usize, snapshot: &StateSnapshot) -> Result<()> {
        let mut snaps = snapshot.layers.iter();
        for layer in &mut self.layers {
            if let LayerCache::Linear(st) = layer {
                let snap = snaps
                    .next()
                    .ok_or_else(|| snapshot_mismatch("too few layers"))?;
                if snap.conv.len() != st.conv_floats || snap.recurrent.len() != st.recurrent_floats
                {
                    return Err(snapshot_mismatch("layer sizes differ"));
                }
                #[cfg(feature = "cuda")]
                if st.gpu.is_some() {
                    st.gpu_mut()?
                        .write_slot(slot, &snap.conv, &snap.recurrent)?;
                    continue;
                }
                let (conv, rec) = st.slot_ranges(slot)?;
                st.conv[conv].copy_from_slice(&snap.conv);
                st.recurrent[rec].copy_from_slice(&snap.recurrent);
            }
        }
        if snaps.next().is_some() {
            return Err(snapshot_mismatch("too many layers"));
        }
        Ok(())
    }

    /// The current state of slot `slot` as a snapshot at `position`.
    pub fn snapshot_state(&self, slot: usize, position: usize) -> Result<StateSnapshot> {
        let mut layers = Vec::new();
        for layer in &self.layers {
            if let LayerCache::Linear(st) = layer {
                #[cfg(feature = "cuda")]
                if let Some(gpu) = &st.gpu {
                    let (conv, recurrent) = gpu.read_slot(slot)?;
                    layers.push(LinearLayerSnapshot { conv, recurrent });
                    continue;
                }
                let (conv, rec) = st.slot_ranges(slot)?;
                layers.push(LinearLayerSnapshot {
                    conv: st.conv[conv].to_vec(),
                    recurrent: st.recurrent[rec].to_vec(),
                });
            }
        }
        Ok(StateSnapshot { position, layers })
    }
}

impl LinearState {
    /// The device slots for a forward on GPU `ordinal`: uploaded from the host vectors (which
    /// are then freed) on first use.
    #[cfg(feature = "cuda")]
    pub fn gpu_on(
        &mut self,
        ordinal: usize,
    ) -> Result<&mut arle_tensor::cuda::hybrid::GpuLinearState> {
        if self.gpu.is_none() {
            let gpu = arle_tensor::cuda::hybrid::GpuLinearState::upload(
                ordinal,
                self.num_slots,
                self.conv_shape,
                self.recurrent_floats,
                &self.conv,
                &self.recurrent,
            )?;
            self.gpu = Some(std::sync::Arc::new(gpu));
            self.conv = Vec::new();
            self.recurrent = Vec::new();
        }
        self.gpu_mut()
    }

    /// The device slots for an in-place update (an error when shared with a clone).
    #[cfg(feature = "cuda")]
    fn gpu_mut(&mut self) -> Result<&mut arle_tensor::cuda::hybrid::GpuLinearState> {
        self.gpu
            .as_mut()
            .and_then(std::sync::Arc::get_mut)
            .ok_or_else(|| {
                crate::ModelError::Tensor(arle_tensor::TensorError::Invalid {
                    op: "linear state",
                    detail: "device slots missing or shared with a clone of this cache".into(),
                })
            })
    }

    /// Index ranges of slot `slot` in `conv` and `recurrent`.
    pub fn slot_ranges(&self, slot: usize) -> Result<(Range<usize>, Range<usize>)> {
        if slot >= self.num_slots {
            return Err(crate::ModelError::Tensor(
                arle_tensor::TensorError::Invalid {
                    op: "state slot",
                    detail: format!("slot {slot} >= {} slots", self.num_slots),
                },
            ));
        }
        Ok((
            slot * self.conv_floats..(slot + 1) * self.conv_floats,
            slot * self.recurrent_floats..(slot + 1) * self.recurrent_floats,
        ))
    }
}

fn snapshot_mismatch(detail: &str) -> crate::ModelError {
    crate::ModelError::Tensor(arle_tensor::TensorError::Invalid {
        op: "restore_state",
        detail: format!("snapshot does not fit this model: {detail}"),
    })
}
