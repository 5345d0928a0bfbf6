//! Stable content hashes of KV pages.
//!
//! `hash(page i) = fnv1a_128(hash(page i-1) bytes ++ page tokens as u32 LE)`, with
//! [`ROOT_HASH`] as the parent of page 0, so a page's hash identifies its whole token prefix.
//! FNV-1a is deterministic across runs and processes (no random keys), which keeps cache
//! behaviour reproducible. It is not collision resistant against an adversary; the prefix cache
//! therefore also compares the page's tokens and parent hash on every hit.

/// Chained hash of a page's content and all pages before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockHash(pub u128);

const FNV128_OFFSET_BASIS: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
const FNV128_PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;

/// Parent hash of the first page of every sequence.
pub const ROOT_HASH: BlockHash = BlockHash(FNV128_OFFSET_BASIS);

/// Hash of a page holding `tokens` whose preceding pages hash to `parent`.
pub fn page_hash(parent: BlockHash, tokens: &[u32]) -> BlockHash {
    let parent_bytes = parent.0.to_le_bytes();
    let token_bytes = tokens.iter().flat_map(|t| t.to_le_bytes());
    let mut state = FNV128_OFFSET_BASIS;
    for byte in parent_bytes.into_iter().chain(token_bytes) {
        state ^= u128::from(byte);
        state = state.wrapping_mul(FNV128_PRIME);
    }
    BlockHash(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_depends_on_parent_and_tokens() {
        let a = page_hash(ROOT_HASH, &[1, 2, 3]);
        assert_eq!(a, page_hash(ROOT_HASH, &[1, 2, 3]));
        assert_ne!(a, page_hash(ROOT_HASH, &[1, 2, 4]));
        assert_ne!(a, page_hash(a, &[1, 2, 3]));
        // token boundaries matter: [1, 2] != [1 | 2 << 8] packed differently
        assert_ne!(
            page_hash(ROOT_HASH, &[1, 2]),
            page_hash(ROOT_HASH, &[0x0201])
        );
    }
}
