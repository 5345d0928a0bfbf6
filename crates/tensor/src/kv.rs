//! Paged KV storage for one attention layer.
//!
//! Layout: `k` and `v` are `[num_blocks, KV_BLOCK_TOKENS, num_kv_heads, head_dim]` f32.
//! A token's *slot* is `block_id * KV_BLOCK_TOKENS + offset_in_block`. Sequences reach their
//! tokens through block tables; blocks may be shared between sequences (prefix reuse).

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
        }
    }

    /// Floats per token slot (`num_kv_heads * head_dim`).
    pub fn slot_stride(&self) -> usize {
        self.num_kv_heads * self.head_dim
    }

    /// Copies whole block `src` onto block `dst` (copy-on-write of a shared tail page).
    pub fn copy_block(&mut self, src: usize, dst: usize) {
        let bs = KV_BLOCK_TOKENS * self.slot_stride();
        self.k.copy_within(src * bs..(src + 1) * bs, dst * bs);
        self.v.copy_within(src * bs..(src + 1) * bs, dst * bs);
    }

    /// Bytes held by this layer.
    pub fn bytes(&self) -> usize {
        (self.k.len() + self.v.len()) * std::mem::size_of::<f32>()
    }
}
