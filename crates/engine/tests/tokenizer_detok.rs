//! IncrementalDetokenizer properties on the SmolLM2 byte-level BPE tokenizer: the streamed pieces
//! concatenate to `decode(all ids)`, partial UTF-8 is held back, and `with_context` emits only
//! the continuation.
#![allow(clippy::unwrap_used)]

mod tokenizer_common;

use arle_engine::tokenizer::{tokenizer_from_gguf_metadata, IncrementalDetokenizer, Tokenizer};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokenizer_common::{fixture_dir, gguf_metadata, load_json};

fn tokenizer() -> Tokenizer {
    Tokenizer::from_hf_dir(&fixture_dir().join("smollm2_hf")).unwrap()
}

/// Streams `ids` and returns the pieces (the `finish` flush last).
fn stream(tok: &Tokenizer, ids: &[u32], skip_special: bool) -> Vec<String> {
    let mut detok = IncrementalDetokenizer::new(skip_special);
    let mut pieces: Vec<String> = ids.iter().map(|&id| detok.push(tok, id).unwrap()).collect();
    pieces.push(detok.finish(tok).unwrap());
    pieces
}

#[test]
fn streamed_corpus_equals_full_decode_and_text() {
    let tok = tokenizer();
    let fixture = load_json("smollm2_encode.json");
    for case in fixture["cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let ids = tok.encode(text, false).unwrap();
        for skip in [false, true] {
            let pieces = stream(&tok, &ids, skip);
            assert_eq!(
                pieces.concat(),
                tok.decode(&ids, skip).unwrap(),
                "{text:?} skip={skip}"
            );
            for piece in &pieces[..pieces.len() - 1] {
                assert!(
                    !piece.ends_with('\u{FFFD}'),
                    "{text:?}: emitted partial char {piece:?}"
                );
            }
        }
        assert_eq!(stream(&tok, &ids, false).concat(), text);
    }
}

#[test]
fn multibyte_characters_are_held_until_complete() {
    let tok = tokenizer();
    for text in ["😀", "中文测试", "👨‍👩‍👧‍👦 ok"] {
        let ids = tok.encode(text, false).unwrap();
        assert!(
            ids.len() > 1,
            "{text:?} should need several byte-level tokens"
        );
        let mut detok = IncrementalDetokenizer::new(false);
        let mut out = String::new();
        for &id in &ids {
            let piece = detok.push(&tok, id).unwrap();
            assert!(!piece.contains('\u{FFFD}'), "{text:?}: {piece:?}");
            // Everything returned so far is a prefix of the final text, on a char boundary.
            out.push_str(&piece);
            assert!(
                text.starts_with(&out),
                "{out:?} is not a prefix of {text:?}"
            );
        }
        out.push_str(&detok.finish(&tok).unwrap());
        assert_eq!(out, text);
    }
    // The first byte of the emoji alone yields nothing; finish flushes it as U+FFFD.
    let ids = tok.encode("😀", false).unwrap();
    let mut detok = IncrementalDetokenizer::new(false);
    assert_eq!(detok.push(&tok, ids[0]).unwrap(), "");
    assert_eq!(
        detok.finish(&tok).unwrap(),
        tok.decode(&ids[..1], false).unwrap()
    );
}

#[test]
fn random_id_sequences_stream_to_full_decode() {
    let tok = tokenizer();
    let vocab = tok.vocab_size() as u32;
    // Byte-level tokens of multi-byte characters, to make partial sequences common.
    let fragments: Vec<u32> = ["😀🎉中文한국어éß∑", "日本語👍🏽"]
        .iter()
        .flat_map(|t| tok.encode(t, false).unwrap())
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(0x5eed);
    for round in 0..400 {
        let len = rng.random_range(1..40);
        let ids: Vec<u32> = (0..len)
            .map(|_| match rng.random_range(0..4) {
                0 => fragments[rng.random_range(0..fragments.len())],
                1 => rng.random_range(0..20), // specials and the first byte tokens
                _ => rng.random_range(0..vocab),
            })
            .collect();
        let skip = round % 2 == 0;
        let expected = tok.decode(&ids, skip).unwrap();
        assert_eq!(
            stream(&tok, &ids, skip).concat(),
            expected,
            "ids {ids:?} skip={skip}"
        );
    }
}

#[test]
fn with_context_emits_only_the_continuation() {
    let tok = tokenizer();
    let prompt = tok
        .encode("<|im_start|>user\nSay 你好<|im_end|>\n", false)
        .unwrap();
    let answer = tok.encode("你好 😀 there", false).unwrap();
    let mut detok = IncrementalDetokenizer::with_context(&tok, &prompt, false).unwrap();
    let mut out = String::new();
    for &id in &answer {
        out.push_str(&detok.push(&tok, id).unwrap());
    }
    out.push_str(&detok.finish(&tok).unwrap());
    assert_eq!(out, "你好 😀 there");
}

#[test]
fn sentencepiece_byte_fallback_streams_to_full_decode() {
    // The synthetic SentencePiece vocabulary: byte-fallback pieces and a leading-space Strip decoder.
    let fixture = load_json("synthetic_gguf.json");
    let entry = fixture
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "llama/spm")
        .unwrap();
    let tok = tokenizer_from_gguf_metadata(&gguf_metadata(&entry["metadata"])).unwrap();
    for case in entry["cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let ids = tok.encode(text, false).unwrap();
        assert_eq!(
            stream(&tok, &ids, false).concat(),
            tok.decode(&ids, false).unwrap(),
            "{text:?}"
        );
    }
    let vocab = tok.vocab_size() as u32;
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for round in 0..300 {
        let len = rng.random_range(1..30);
        let ids: Vec<u32> = (0..len).map(|_| rng.random_range(0..vocab)).collect();
        let skip = round % 2 == 1;
        let expected = tok.decode(&ids, skip).unwrap();
        assert_eq!(
            stream(&tok, &ids, skip).concat(),
            expected,
            "ids {ids:?} skip={skip}"
        );
    }
}
