//! Token ids -> the `token` string and `bytes` of OpenAI logprobs.
//!
//! Byte-level BPE vocabularies (GPT-2 style, detected by the presence of `Ġ`) spell each byte
//! as one char; we map those back to the raw bytes. SentencePiece vocabularies use `<0xNN>`
//! byte tokens and `▁` for spaces. Anything else falls back to decoding the single id.
//! A token whose bytes are not valid UTF-8 (part of a character) is shown as `bytes:\xNN...`.

use arle_engine::tokenizer::Tokenizer;

/// The byte GPT-2's `bytes_to_unicode` maps to `c`, if any.
fn byte_level_char_to_byte(c: char) -> Option<u8> {
    let code = c as u32;
    let printable = |b: u32| {
        (0x21..=0x7E).contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b)
    };
    if code < 256 {
        return printable(code).then_some(code as u8);
    }
    // Non-printable bytes are mapped, in ascending order, to 256, 257, ...
    let rank = code - 256;
    (0u32..256)
        .filter(|b| !printable(*b))
        .nth(rank as usize)
        .map(|b| b as u8)
}

fn sentencepiece_byte(piece: &str) -> Option<u8> {
    let hex = piece.strip_prefix("<0x")?.strip_suffix('>')?;
    u8::from_str_radix(hex, 16).ok()
}

/// The raw bytes of one token.
pub(crate) fn token_bytes(tokenizer: &Tokenizer, id: u32) -> Vec<u8> {
    let decoded = || {
        tokenizer
            .decode(&[id], false)
            .unwrap_or_default()
            .into_bytes()
    };
    let Some(piece) = tokenizer.id_to_token(id) else {
        return decoded();
    };
    if tokenizer.token_to_id("Ġ").is_some() {
        let bytes: Option<Vec<u8>> = piece.chars().map(byte_level_char_to_byte).collect();
        return bytes.unwrap_or_else(decoded);
    }
    if let Some(b) = sentencepiece_byte(&piece) {
        return vec![b];
    }
    if piece.contains('▁') {
        return piece.replace('▁', " ").into_bytes();
    }
    decoded()
}

/// The display string of token bytes.
pub(crate) fn bytes_to_token_string(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => {
            let mut s = String::from("bytes:");
            for b in bytes {
                s.push_str(&format!("\\x{b:02x}"));
            }
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_level_map_matches_gpt2() {
        assert_eq!(byte_level_char_to_byte('A'), Some(b'A'));
        assert_eq!(byte_level_char_to_byte('Ġ'), Some(b' ')); // U+0120
        assert_eq!(byte_level_char_to_byte('Ċ'), Some(b'\n')); // U+010A
        assert_eq!(byte_level_char_to_byte('Ā'), Some(0)); // U+0100
        assert_eq!(byte_level_char_to_byte('ÿ'), Some(0xFF));
        assert_eq!(byte_level_char_to_byte('\u{AD}'), None);
        assert_eq!(byte_level_char_to_byte('▁'), None);
        // All 256 bytes are reachable exactly once.
        let mut seen = [false; 256];
        for code in 0u32..400 {
            if let Some(b) = char::from_u32(code).and_then(byte_level_char_to_byte) {
                assert!(!seen[b as usize]);
                seen[b as usize] = true;
            }
        }
        assert!(seen.iter().all(|s| *s));
    }

    #[test]
    fn partial_utf8_is_escaped() {
        assert_eq!(bytes_to_token_string(b" hi"), " hi");
        assert_eq!(bytes_to_token_string(&[0xE2, 0x80]), "bytes:\\xe2\\x80");
        assert_eq!(sentencepiece_byte("<0x0A>"), Some(b'\n'));
        assert_eq!(sentencepiece_byte("<0xZZ>"), None);
    }
}
