//! Per-layer cache storage owned by the model runner and indexed by the scheduler's block ids.
//!
//! Attention layers keep paged KV ([`arle_tensor::KvLayer`]); every attention layer shares one
//! block-id space, so block `b` means the same token positions in every layer.

use arle_tensor::KvLayer;

/// What one layer needs cached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayerCacheSpec {
    Attention {
        num_kv_heads: usize,
        head_dim: usize,
    },
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
            })
            .sum()
    }
}

#[derive(Clone, Debug)]
pub enum LayerCache {
    Attention(KvLayer),
}

/// All layers' caches, `num_blocks` pages each.
#[derive(Clone, Debug)]
pub struct ModelCache {
    pub num_blocks: usize,
    pub layers: Vec<LayerCache>,
}

impl ModelCache {
    pub fn new(spec: &CacheSpec, num_blocks: usize) -> Self {
        let layers = spec
            .layers
            .iter()
            .map(|l| match l {
                LayerCacheSpec::Attention {
                    num_kv_heads,
                    head_dim,
                } => LayerCache::Attention(KvLayer::new(num_blocks, *num_kv_heads, *head_dim)),
            })
            .collect();
        Self { num_blocks, layers }
    }

    /// Copies page `src` onto page `dst` in every layer (copy-on-write).
    pub fn copy_block(&mut self, src: usize, dst: usize) {
        for layer in &mut self.layers {
            match layer {
                LayerCache::Attention(kv) => kv.copy_block(src, dst),
            }
        }
    }
}
