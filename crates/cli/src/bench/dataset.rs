//! Benchmark prompts: fixed-length random token ids, or a JSONL file.
//!
//! JSONL: one object per line, `{"prompt": "text" | [token ids], "output_len": N}`;
//! `output_len` (or `max_tokens`) is optional and defaults to `--output-len`. Blank lines are
//! skipped. Invariant: random prompts are independent draws, so two requests share a prefix
//! page only by chance (about never), and the server's prefix cache does not flatter TTFT.

use std::path::Path;

use anyhow::{bail, Context};
use rand::{Rng, SeedableRng};
use serde_json::Value;

use crate::bench::client::{BenchRequest, PromptInput};

/// `num_prompts` prompts of `input_len` ids drawn uniformly from `0..vocab_size`.
pub fn random_requests(
    num_prompts: usize,
    input_len: usize,
    output_len: usize,
    vocab_size: u32,
    seed: u64,
) -> Vec<BenchRequest> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..num_prompts)
        .map(|_| BenchRequest {
            prompt: PromptInput::Tokens(
                (0..input_len)
                    .map(|_| rng.random_range(0..vocab_size))
                    .collect(),
            ),
            output_len,
        })
        .collect()
}

/// The first `num_prompts` requests of a JSONL file (fewer if the file is shorter).
pub fn load_jsonl(
    path: &Path,
    num_prompts: usize,
    default_output_len: usize,
) -> anyhow::Result<Vec<BenchRequest>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the dataset {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if out.len() == num_prompts {
            break;
        }
        if line.trim().is_empty() {
            continue;
        }
        let req = parse_line(line, default_output_len)
            .with_context(|| format!("{}:{}", path.display(), i + 1))?;
        out.push(req);
    }
    if out.is_empty() {
        bail!("the dataset {} holds no prompts", path.display());
    }
    Ok(out)
}

/// One JSONL record.
pub fn parse_line(line: &str, default_output_len: usize) -> anyhow::Result<BenchRequest> {
    let value: Value = serde_json::from_str(line).context("not a JSON object")?;
    let prompt = match &value["prompt"] {
        Value::String(s) if !s.is_empty() => PromptInput::Text(s.clone()),
        Value::Array(ids) if !ids.is_empty() => PromptInput::Tokens(
            ids.iter()
                .map(|v| v.as_u64().and_then(|id| u32::try_from(id).ok()))
                .collect::<Option<Vec<u32>>>()
                .context("`prompt` array must hold token ids (u32)")?,
        ),
        _ => bail!("`prompt` must be a non-empty string or token-id array"),
    };
    let output_len = match value.get("output_len").or_else(|| value.get("max_tokens")) {
        None => default_output_len,
        Some(v) => v
            .as_u64()
            .filter(|&n| n > 0)
            .context("`output_len` must be a positive integer")? as usize,
    };
    Ok(BenchRequest { prompt, output_len })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_prompts_have_exact_lengths_and_differ() {
        let reqs = random_requests(3, 512, 128, 1000, 7);
        assert_eq!(reqs.len(), 3);
        let ids: Vec<&Vec<u32>> = reqs
            .iter()
            .map(|r| match &r.prompt {
                PromptInput::Tokens(t) => t,
                PromptInput::Text(_) => panic!("random prompts are token ids"),
            })
            .collect();
        assert!(ids
            .iter()
            .all(|t| t.len() == 512 && t.iter().all(|&x| x < 1000)));
        assert_ne!(ids[0][..16], ids[1][..16]);
        assert_eq!(random_requests(3, 512, 128, 1000, 7), reqs, "seeded");
    }

    #[test]
    fn parses_text_and_token_records() {
        let r = parse_line(r#"{"prompt": "hello", "output_len": 5}"#, 9).expect("valid");
        assert_eq!(r.prompt, PromptInput::Text("hello".into()));
        assert_eq!(r.output_len, 5);
        let r = parse_line(r#"{"prompt": [1, 2, 3]}"#, 9).expect("valid");
        assert_eq!(r.prompt, PromptInput::Tokens(vec![1, 2, 3]));
        assert_eq!(r.output_len, 9);
        assert!(parse_line(r#"{"prompt": ""}"#, 9).is_err());
        assert!(parse_line(r#"{"prompt": [-1]}"#, 9).is_err());
        assert!(parse_line(r#"{"prompt": "x", "output_len": 0}"#, 9).is_err());
        assert!(parse_line("not json", 9).is_err());
    }

    #[test]
    fn jsonl_skips_blank_lines_and_stops_at_num_prompts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("p.jsonl");
        std::fs::write(
            &path,
            "{\"prompt\": \"a\"}\n\n{\"prompt\": \"b\"}\n{\"prompt\": \"c\"}\n",
        )
        .expect("write");
        let reqs = load_jsonl(&path, 2, 4).expect("loads");
        assert_eq!(reqs.len(), 2);
        assert_eq!(reqs[1].prompt, PromptInput::Text("b".into()));
        let err = load_jsonl(&dir.path().join("missing.jsonl"), 2, 4);
        assert!(err.is_err());
    }
}
