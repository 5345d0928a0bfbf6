//! Paged KV storage for one attention layer.
//!
//! Layout: `k` and `v` are `[num_blocks, KV_BLOCK_TOKENS, num_kv_heads, head_dim]` f32.
//! A token's *slot* is `block_id * KV_BLOCK_TOKENS + offset_in_block`. Sequences reach their
//! tokens through block tables; blocks may be shared between sequences (prefix reuse).
//!
//! With the `cuda` feature the pages may live on a GPU instead (`gpu`, bf16, same layout): the
//! first `kv_append` of a GPU tensor allocates them there and frees the host vectors, which then
//! stay empty.

/// Tokens per KV page.
pub const KV_BLOCK_TOKENS: usize = 16;

#[derive(Clone, Debug)]
pub struct KvLayer {
    pub num_blocks: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    /// `[num_blocks, KV_BLOCK_TOKENS, num_kv_heads, head_dim]`
    pub k: Vec<f32>,
    /// `[num_blocks, KV_BLOCK_TOKENS, num_kv_heads, head_dim]`
    pub v: Vec<f32>,
    /// Device pages (then `k` and `v` are empty).
    #[cfg(feature = "cuda")]
    pub gpu: Option<std::sync::Arc<crate::cuda::GpuKv>>,
}

impl KvLayer {
    pub fn new(num_blocks: usize, num_kv_heads: usize, head_dim: usize) -> Self {
        let n = num_blocks * KV_BLOCK_TOKENS * num_kv_heads * head_dim;
        Self {
            num_blocks,
            num_kv_heads,
            head_dim,
            k: vec![0.0; n],
            v: vec![0.0; n],
            #[cfg(feature = "cuda")]
            gpu: None,
        }
    }

    /// Floats per token slot (`num_kv_heads * head_dim`).
    pub fn slot_stride(&self) -> usize {
        self.num_kv_heads * self.head_dim
    }

    /// Copies whole block `src` onto block `dst` (copy-on-write of a shared tail page).
    pub fn copy_block(&mut self, src: usize, dst: usize) {
        let bs = KV_BLOCK_TOKENS * self.slot_stride();
        #[cfg(feature = "cuda")]
        if self.gpu.is_some() {
            // Errors (device lost) resurface on the next op of this stream.
            let _ = crate::cuda::attention::copy_block(self, src, dst);
            return;
        }
        self.k.copy_within(src * bs..(src + 1) * bs, dst * bs);
        self.v.copy_within(src * bs..(src + 1) * bs, dst * bs);
    }

    /// Bytes held by this layer.
    pub fn bytes(&self) -> usize {
        #[cfg(feature = "cuda")]
        if self.gpu.is_some() {
            let values = self.num_blocks * KV_BLOCK_TOKENS * self.slot_stride();
            return 2 * values * std::mem::size_of::<half::bf16>();
        }
        (self.k.len() + self.v.len()) * std::mem::size_of::<f32>()
    }
}
