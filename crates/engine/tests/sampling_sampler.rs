//! `Sampler` behaviour: seeded reproducibility, exact penalty formulas, greedy ties, raw
//! logprobs against a direct log-softmax, prompt logprobs, and parameter validation.

#![allow(clippy::unwrap_used)]

use arle_engine::sampling::{prompt_logprobs, Sampler};
use arle_engine::{EngineError, SamplingParams};

/// Step-dependent logits over a 64-token vocab (deterministic, no RNG).
fn step_logits(step: usize) -> Vec<f32> {
    (0..64)
        .map(|i| (((i * 7 + step * 13) % 29) as f32) * 0.15 - 2.0)
        .collect()
}

fn generate(params: &SamplingParams, num_steps: usize) -> Vec<u32> {
    let mut sampler = Sampler::new(params).unwrap();
    let prompt = [1u32, 2, 3];
    let mut output = Vec::new();
    for step in 0..num_steps {
        let mut row = step_logits(step);
        let token = sampler.sample(&mut row, &prompt, &output).unwrap().token_id;
        output.push(token);
    }
    output
}

#[test]
fn same_seed_same_tokens_different_seed_differs() {
    let params = SamplingParams {
        temperature: 0.9,
        top_p: 0.95,
        top_k: Some(40),
        repetition_penalty: 1.1,
        frequency_penalty: 0.2,
        seed: Some(1234),
        ..SamplingParams::default()
    };
    let first = generate(&params, 200);
    assert_eq!(first, generate(&params, 200));
    let other = generate(
        &SamplingParams {
            seed: Some(1235),
            ..params.clone()
        },
        200,
    );
    assert_ne!(first, other);
    let distinct: std::collections::HashSet<u32> = first.iter().copied().collect();
    assert!(
        distinct.len() > 5,
        "sampling should spread over tokens: {distinct:?}"
    );
    // Unseeded samplers draw from OS entropy.
    let unseeded = SamplingParams {
        seed: None,
        ..params
    };
    assert_ne!(generate(&unseeded, 200), generate(&unseeded, 200));
}

fn repetition(logit: f32, penalty: f32) -> f32 {
    if logit > 0.0 {
        logit / penalty
    } else {
        logit * penalty
    }
}

#[test]
fn penalties_change_logits_exactly_as_the_formulas_say() {
    let raw = vec![2.0f32, -1.0, 0.5, 3.0, -0.5, 1.5, 0.0, -2.0];
    let prompt = [1u32, 2, 2, 6];
    let output = [2u32, 3, 3, 3, 5];
    let (rep, freq, pres) = (1.3f32, 0.25f32, 0.5f32);
    let params = SamplingParams {
        temperature: 0.0,
        repetition_penalty: rep,
        frequency_penalty: freq,
        presence_penalty: pres,
        ..SamplingParams::default()
    };
    let mut sampler = Sampler::new(&params).unwrap();
    let mut row = raw.clone();
    sampler.sample(&mut row, &prompt, &output).unwrap();
    let count = |id: u32| output.iter().filter(|&&t| t == id).count() as f32;
    for id in 0..raw.len() as u32 {
        let mut want = raw[id as usize];
        if prompt.contains(&id) || output.contains(&id) {
            want = repetition(want, rep);
        }
        if output.contains(&id) {
            want -= count(id) * freq + pres;
        }
        assert_eq!(row[id as usize], want, "token {id}");
    }
    // Untouched tokens keep their raw logits.
    assert_eq!((row[0], row[4], row[7]), (2.0, -0.5, -2.0));

    // Incremental counts: one more output token adds one more frequency step for it only.
    let longer = [2u32, 3, 3, 3, 5, 3];
    let mut row = raw.clone();
    sampler.sample(&mut row, &prompt, &longer).unwrap();
    assert_eq!(row[3], repetition(3.0, rep) - 4.0 * freq - pres);
    assert_eq!(row[5], repetition(1.5, rep) - freq - pres);
    // A rewritten (shorter) output is recounted, not accumulated.
    let mut row = raw.clone();
    sampler.sample(&mut row, &prompt, &[3]).unwrap();
    assert_eq!(row[3], repetition(3.0, rep) - freq - pres);
    assert_eq!(row[5], 1.5);
    assert_eq!(
        row[2],
        repetition(0.5, rep),
        "prompt token keeps only the repetition penalty"
    );
}

#[test]
fn temperature_scales_the_row_after_penalties() {
    let raw = vec![1.0f32, -1.0, 0.5, 2.0];
    let params = SamplingParams {
        temperature: 0.5,
        presence_penalty: 1.0,
        seed: Some(3),
        ..SamplingParams::default()
    };
    let mut sampler = Sampler::new(&params).unwrap();
    let mut row = raw.clone();
    sampler.sample(&mut row, &[], &[3]).unwrap();
    assert_eq!(row, vec![2.0, -2.0, 1.0, 2.0]);
}

#[test]
fn penalties_flip_the_greedy_choice() {
    let params = SamplingParams {
        temperature: 0.0,
        presence_penalty: 1.0,
        ..SamplingParams::default()
    };
    let mut sampler = Sampler::new(&params).unwrap();
    assert_eq!(
        sampler
            .sample(&mut [0.0, 2.0, 1.5], &[], &[])
            .unwrap()
            .token_id,
        1
    );
    assert_eq!(
        sampler
            .sample(&mut [0.0, 2.0, 1.5], &[], &[1])
            .unwrap()
            .token_id,
        2
    );
}

#[test]
fn greedy_ties_go_to_lowest_id_and_bad_rows_are_errors() {
    let params = SamplingParams {
        temperature: 0.0,
        ..SamplingParams::default()
    };
    let mut sampler = Sampler::new(&params).unwrap();
    let mut sample = |row: Vec<f32>| sampler.sample(&mut row.clone(), &[], &[]);
    assert_eq!(sample(vec![1.0, 3.0, 3.0, 2.0]).unwrap().token_id, 1);
    assert_eq!(sample(vec![f32::NAN, 0.5, 0.5]).unwrap().token_id, 1);
    assert_eq!(sample(vec![-1.0, -1.0]).unwrap().token_id, 0);
    assert!(matches!(
        sample(vec![f32::NEG_INFINITY; 3]),
        Err(EngineError::Sampling(_))
    ));
    assert!(matches!(sample(vec![]), Err(EngineError::Sampling(_))));
    let random = SamplingParams {
        seed: Some(1),
        ..SamplingParams::default()
    };
    let mut sampler = Sampler::new(&random).unwrap();
    let result = sampler.sample(&mut [f32::NAN, f32::NEG_INFINITY], &[], &[]);
    assert!(matches!(result, Err(EngineError::Sampling(_))));
}

/// Direct f64 log-softmax.
fn log_softmax(row: &[f32]) -> Vec<f64> {
    let max = row
        .iter()
        .map(|&l| f64::from(l))
        .fold(f64::NEG_INFINITY, f64::max);
    let lse = max
        + row
            .iter()
            .map(|&l| (f64::from(l) - max).exp())
            .sum::<f64>()
            .ln();
    row.iter().map(|&l| f64::from(l) - lse).collect()
}

#[test]
fn logprobs_are_raw_log_softmax_with_top_alternatives() {
    let raw: Vec<f32> = (0..50)
        .map(|i| ((i * 17 % 23) as f32) * 0.3 - 3.0)
        .collect();
    let reference = log_softmax(&raw);
    let mut by_rank: Vec<u32> = (0..raw.len() as u32).collect();
    by_rank.sort_by(|&a, &b| {
        reference[b as usize]
            .total_cmp(&reference[a as usize])
            .then(a.cmp(&b))
    });
    let params = SamplingParams {
        temperature: 0.7,
        top_k: Some(5),
        repetition_penalty: 1.5,
        presence_penalty: 0.7,
        logprobs: Some(4),
        seed: Some(99),
        ..SamplingParams::default()
    };
    let mut sampler = Sampler::new(&params).unwrap();
    let mut output = Vec::new();
    for _ in 0..30 {
        let mut row = raw.clone();
        let sampled = sampler.sample(&mut row, &[4, 5], &output).unwrap();
        let logprob = sampled.logprob.unwrap();
        assert_eq!(logprob.token_id, sampled.token_id);
        let want = reference[sampled.token_id as usize];
        assert!(
            (f64::from(logprob.logprob) - want).abs() < 1e-5,
            "{logprob:?} vs {want}"
        );
        assert_eq!(logprob.top.len(), 4);
        for ((id, lp), &want_id) in logprob.top.iter().zip(&by_rank) {
            assert_eq!(*id, want_id);
            assert!((f64::from(*lp) - reference[want_id as usize]).abs() < 1e-5);
        }
        output.push(sampled.token_id);
    }

    let plain = SamplingParams {
        logprobs: Some(0),
        temperature: 0.0,
        ..SamplingParams::default()
    };
    let sampled = Sampler::new(&plain)
        .unwrap()
        .sample(&mut raw.clone(), &[], &[])
        .unwrap();
    let logprob = sampled.logprob.unwrap();
    assert!(logprob.top.is_empty());
    assert_eq!(sampled.token_id, by_rank[0]);
    assert!((f64::from(logprob.logprob) - reference[by_rank[0] as usize]).abs() < 1e-5);
    let none = Sampler::new(&SamplingParams::default())
        .unwrap()
        .sample(&mut raw.clone(), &[], &[]);
    assert_eq!(none.unwrap().logprob, None);
}

#[test]
fn prompt_logprobs_score_token_i_plus_one_under_row_i() {
    let vocab = 6;
    let rows: Vec<f32> = (0..3 * vocab)
        .map(|i| ((i * 5 % 7) as f32) * 0.4 - 1.0)
        .collect();
    let prompt = [3u32, 1, 4, 0];
    let got = prompt_logprobs(&rows, vocab, &prompt, 2).unwrap();
    assert_eq!(got.len(), 4);
    assert_eq!(got[0], None);
    for i in 0..3 {
        let reference = log_softmax(&rows[i * vocab..(i + 1) * vocab]);
        let entry = got[i + 1].as_ref().unwrap();
        assert_eq!(entry.token_id, prompt[i + 1]);
        assert!((f64::from(entry.logprob) - reference[prompt[i + 1] as usize]).abs() < 1e-5);
        assert_eq!(entry.top.len(), 2);
        let best = reference.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        assert!((f64::from(entry.top[0].1) - best).abs() < 1e-5);
        assert!(entry.top[0].1 >= entry.top[1].1);
    }
    // Too few rows, ragged rows, or an out-of-vocab token are errors.
    assert!(prompt_logprobs(&rows[..2 * vocab], vocab, &prompt, 0).is_err());
    assert!(prompt_logprobs(&rows[..vocab + 1], vocab, &prompt[..2], 0).is_err());
    assert!(prompt_logprobs(&rows[..vocab], vocab, &[0, 9], 0).is_err());
    // A single token has nothing to score.
    assert_eq!(prompt_logprobs(&[], vocab, &[5], 1).unwrap(), vec![None]);
}

#[test]
fn invalid_params_are_rejected() {
    let bad = [
        SamplingParams {
            temperature: -0.1,
            ..SamplingParams::default()
        },
        SamplingParams {
            temperature: f32::NAN,
            ..SamplingParams::default()
        },
        SamplingParams {
            top_p: 0.0,
            ..SamplingParams::default()
        },
        SamplingParams {
            top_p: 1.5,
            ..SamplingParams::default()
        },
        SamplingParams {
            min_p: -0.1,
            ..SamplingParams::default()
        },
        SamplingParams {
            repetition_penalty: 0.0,
            ..SamplingParams::default()
        },
        SamplingParams {
            presence_penalty: 2.5,
            ..SamplingParams::default()
        },
        SamplingParams {
            frequency_penalty: -3.0,
            ..SamplingParams::default()
        },
    ];
    for params in bad {
        assert!(
            matches!(Sampler::new(&params), Err(EngineError::InvalidRequest(_))),
            "{params:?}"
        );
    }
    let zero_k = SamplingParams {
        top_k: Some(0),
        ..SamplingParams::default()
    };
    assert_eq!(
        Sampler::new(&zero_k).unwrap().config().top_k,
        None,
        "top_k 0 disables"
    );
}

#[test]
fn many_top_logprobs_and_ties_order_by_lower_id() {
    // 300 tokens with many equal logits; both the streaming (<= 64) and the selection path.
    let raw: Vec<f32> = (0..300).map(|i| ((i * 37 % 11) as f32) * 0.5).collect();
    let reference = log_softmax(&raw);
    let mut by_rank: Vec<u32> = (0..raw.len() as u32).collect();
    by_rank.sort_by(|&a, &b| raw[b as usize].total_cmp(&raw[a as usize]).then(a.cmp(&b)));
    for num_top in [1, 7, 64, 65, 200, 1000] {
        let params = SamplingParams {
            temperature: 0.0,
            logprobs: Some(num_top),
            ..SamplingParams::default()
        };
        let sampled = Sampler::new(&params)
            .unwrap()
            .sample(&mut raw.clone(), &[], &[])
            .unwrap();
        let top = sampled.logprob.unwrap().top;
        assert_eq!(top.len(), num_top.min(raw.len()));
        let ids: Vec<u32> = top.iter().map(|&(id, _)| id).collect();
        assert_eq!(ids, by_rank[..top.len()].to_vec(), "num_top {num_top}");
        for (id, lp) in top {
            assert!((f64::from(lp) - reference[id as usize]).abs() < 1e-5);
        }
        assert_eq!(
            sampled.token_id, by_rank[0],
            "greedy tie goes to the lowest id"
        );
    }
}
