//! Element and block formats. Quantised GGUF formats pack `block_elems()` values
//! into `block_bytes()` bytes; a row of `n` values must be a whole number of blocks.

/// A storage format for weights. Activations are always f32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    F16,
    BF16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q2K,
    Q3K,
    Q4K,
    Q5K,
    Q6K,
}

/// Elements per super-block of the k-quants.
pub const QK_K: usize = 256;

impl DType {
    /// Every format: the plain floats, then the GGUF block types.
    pub const ALL: [DType; 13] = [
        DType::F32,
        DType::F16,
        DType::BF16,
        DType::Q4_0,
        DType::Q4_1,
        DType::Q5_0,
        DType::Q5_1,
        DType::Q8_0,
        DType::Q2K,
        DType::Q3K,
        DType::Q4K,
        DType::Q5K,
        DType::Q6K,
    ];

    /// Values per block (1 for plain floats).
    pub const fn block_elems(self) -> usize {
        match self {
            DType::F32 | DType::F16 | DType::BF16 => 1,
            DType::Q4_0 | DType::Q4_1 | DType::Q5_0 | DType::Q5_1 | DType::Q8_0 => 32,
            DType::Q2K | DType::Q3K | DType::Q4K | DType::Q5K | DType::Q6K => QK_K,
        }
    }

    /// Bytes per block.
    pub const fn block_bytes(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 | DType::BF16 => 2,
            DType::Q4_0 => 2 + 16,
            DType::Q4_1 => 2 + 2 + 16,
            DType::Q5_0 => 2 + 4 + 16,
            DType::Q5_1 => 2 + 2 + 4 + 16,
            DType::Q8_0 => 2 + 32,
            DType::Q2K => QK_K / 16 + QK_K / 4 + 2 + 2,
            DType::Q3K => QK_K / 8 + QK_K / 4 + 12 + 2,
            DType::Q4K => 2 + 2 + 12 + QK_K / 2,
            DType::Q5K => 2 + 2 + 12 + QK_K / 8 + QK_K / 2,
            DType::Q6K => QK_K / 2 + QK_K / 4 + QK_K / 16 + 2,
        }
    }

    /// Whether this is a GGUF block-quantised format.
    pub const fn is_quantized(self) -> bool {
        self.block_elems() > 1
    }

    /// Bytes used by `n` consecutive values, or `None` if `n` is not a whole number of blocks.
    pub const fn bytes_for(self, n: usize) -> Option<usize> {
        if !n.is_multiple_of(self.block_elems()) {
            return None;
        }
        Some(n / self.block_elems() * self.block_bytes())
    }

    /// Short lowercase name (as GGUF tools print it).
    pub const fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::Q4_0 => "q4_0",
            DType::Q4_1 => "q4_1",
            DType::Q5_0 => "q5_0",
            DType::Q5_1 => "q5_1",
            DType::Q8_0 => "q8_0",
            DType::Q2K => "q2_k",
            DType::Q3K => "q3_k",
            DType::Q4K => "q4_k",
            DType::Q5K => "q5_k",
            DType::Q6K => "q6_k",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_sizes_match_ggml() {
        // Values from ggml's type traits table.
        assert_eq!(DType::Q4_0.block_bytes(), 18);
        assert_eq!(DType::Q4_1.block_bytes(), 20);
        assert_eq!(DType::Q5_0.block_bytes(), 22);
        assert_eq!(DType::Q5_1.block_bytes(), 24);
        assert_eq!(DType::Q8_0.block_bytes(), 34);
        assert_eq!(DType::Q2K.block_bytes(), 84);
        assert_eq!(DType::Q3K.block_bytes(), 110);
        assert_eq!(DType::Q4K.block_bytes(), 144);
        assert_eq!(DType::Q5K.block_bytes(), 176);
        assert_eq!(DType::Q6K.block_bytes(), 210);
        assert_eq!(DType::Q4_0.bytes_for(33), None);
        assert_eq!(DType::BF16.bytes_for(3), Some(6));
    }
}
