//! Empirical sampling frequencies against the exact renormalised distribution, computed here
//! by a direct f64 reference (full sort, no partial selection), and filter parity on a larger
//! vocab where top-p's quickselect runs many rounds.

#![allow(clippy::unwrap_used)]

use arle_engine::sampling::filters::{self, Candidate};
use arle_engine::sampling::Sampler;
use arle_engine::SamplingParams;

/// Probabilities chosen so the filtered sets can be checked by hand.
const PROBS: [f64; 8] = [0.35, 0.25, 0.15, 0.10, 0.08, 0.04, 0.02, 0.01];
const NUM_DRAWS: usize = 20_000;

fn logits_of(probs: &[f64]) -> Vec<f32> {
    probs.iter().map(|p| p.ln() as f32).collect()
}

/// Reference: softmax(logits / T) -> top-k -> top-p (smallest set with mass >= p) -> min-p
/// (relative to the max) -> renormalise. Returns the full-vocab distribution.
fn reference_distribution(logits: &[f32], params: &SamplingParams) -> Vec<f64> {
    let t = f64::from(params.temperature);
    let scaled: Vec<f64> = logits.iter().map(|&l| f64::from(l) / t).collect();
    let max = scaled.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let total: f64 = scaled.iter().map(|l| (l - max).exp()).sum();
    let probs: Vec<f64> = scaled.iter().map(|l| (l - max).exp() / total).collect();
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
    if let Some(k) = params.top_k {
        order.truncate(k);
    }
    let kept_mass: f64 = order.iter().map(|&i| probs[i]).sum();
    if params.top_p < 1.0 {
        let mut cumulative = 0.0;
        let mut keep = order.len();
        for (n, &i) in order.iter().enumerate() {
            cumulative += probs[i] / kept_mass;
            if cumulative >= f64::from(params.top_p) {
                keep = n + 1;
                break;
            }
        }
        order.truncate(keep);
    }
    let p_max = probs[order[0]];
    order.retain(|&i| probs[i] >= f64::from(params.min_p) * p_max);
    let mass: f64 = order.iter().map(|&i| probs[i]).sum();
    let mut out = vec![0.0; probs.len()];
    for &i in &order {
        out[i] = probs[i] / mass;
    }
    out
}

fn draw_counts(logits: &[f32], params: &SamplingParams) -> Vec<usize> {
    let mut sampler = Sampler::new(params).unwrap();
    let mut counts = vec![0usize; logits.len()];
    let mut row = logits.to_vec();
    for _ in 0..NUM_DRAWS {
        row.copy_from_slice(logits);
        let token = sampler.sample(&mut row, &[], &[]).unwrap().token_id as usize;
        counts[token] += 1;
    }
    counts
}

/// Chi-square upper quantile at p = 1e-6 (Wilson-Hilferty), so a correct sampler passes with
/// near certainty and a wrong distribution fails by a wide margin at 20k draws.
fn chi_square_limit(dof: usize) -> f64 {
    let k = dof as f64;
    let z = 4.75;
    k * (1.0 - 2.0 / (9.0 * k) + z * (2.0 / (9.0 * k)).sqrt()).powi(3)
}

fn check_frequencies(params: SamplingParams, expected_support: &[usize]) {
    let logits = logits_of(&PROBS);
    let expected = reference_distribution(&logits, &params);
    let support: Vec<usize> = (0..expected.len()).filter(|&i| expected[i] > 0.0).collect();
    assert_eq!(
        support, expected_support,
        "reference support for {params:?}"
    );
    let counts = draw_counts(&logits, &params);
    let mut chi_square = 0.0;
    for (token, (&count, &p)) in counts.iter().zip(&expected).enumerate() {
        if p == 0.0 {
            assert_eq!(
                count, 0,
                "filtered token {token} was sampled under {params:?}"
            );
            continue;
        }
        let mean = p * NUM_DRAWS as f64;
        chi_square += (count as f64 - mean).powi(2) / mean;
    }
    if support.len() > 1 {
        let limit = chi_square_limit(support.len() - 1);
        assert!(
            chi_square < limit,
            "chi2 {chi_square:.1} >= {limit:.1} for {params:?}: {counts:?}"
        );
    }
}

fn params(
    temperature: f32,
    top_k: Option<usize>,
    top_p: f32,
    min_p: f32,
    seed: u64,
) -> SamplingParams {
    SamplingParams {
        temperature,
        top_k,
        top_p,
        min_p,
        seed: Some(seed),
        ..SamplingParams::default()
    }
}

#[test]
fn plain_temperature_one_matches_softmax() {
    check_frequencies(params(1.0, None, 1.0, 0.0, 1), &[0, 1, 2, 3, 4, 5, 6, 7]);
}

#[test]
fn temperature_sharpens_and_flattens() {
    check_frequencies(params(0.5, None, 1.0, 0.0, 2), &[0, 1, 2, 3, 4, 5, 6, 7]);
    check_frequencies(params(2.0, None, 1.0, 0.0, 3), &[0, 1, 2, 3, 4, 5, 6, 7]);
}

#[test]
fn top_k_keeps_k_best() {
    check_frequencies(params(1.0, Some(3), 1.0, 0.0, 4), &[0, 1, 2]);
    check_frequencies(params(2.0, Some(1), 1.0, 0.0, 5), &[0]);
}

#[test]
fn top_p_keeps_smallest_nucleus() {
    // 0.35 + 0.25 = 0.60 < 0.7 <= 0.75 = 0.35 + 0.25 + 0.15.
    check_frequencies(params(1.0, None, 0.7, 0.0, 6), &[0, 1, 2]);
    // A tiny p still keeps the best token.
    check_frequencies(params(1.0, None, 0.01, 0.0, 7), &[0]);
}

#[test]
fn min_p_drops_tokens_below_fraction_of_max() {
    // Threshold 0.2 * 0.35 = 0.07: keeps 0.35 .. 0.08.
    check_frequencies(params(1.0, None, 1.0, 0.2, 8), &[0, 1, 2, 3, 4]);
}

#[test]
fn combined_filters() {
    // T = 0.8: top-6 then the 0.9 nucleus is 4 tokens (mass 0.908); min-p 0.05 keeps them.
    check_frequencies(params(0.8, Some(6), 0.9, 0.05, 9), &[0, 1, 2, 3]);
    // T = 1.5: nucleus of 4 (mass 0.882), then min-p 0.45 drops token 3 (ratio 0.434).
    check_frequencies(params(1.5, Some(5), 0.8, 0.45, 10), &[0, 1, 2]);
}

/// Deterministic pseudo-random logits (splitmix-style), no RNG crate needed.
fn spread_logits(vocab: usize, salt: u64) -> Vec<f32> {
    (0..vocab as u64)
        .map(|i| {
            let mut x = (i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt;
            x ^= x >> 31;
            x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
            x ^= x >> 29;
            ((x % 10_000) as f32 / 10_000.0) * 4.0 - 2.0
        })
        .collect()
}

#[test]
fn top_p_on_large_vocab_matches_reference_set() {
    // Nearly flat logits: the nucleus spans hundreds of tokens.
    let logits = spread_logits(5_000, 42);
    for (top_p, top_k) in [
        (0.9f32, None),
        (0.5, None),
        (0.3, Some(2_000)),
        (0.99, Some(100)),
    ] {
        let params = SamplingParams {
            top_p,
            top_k,
            ..SamplingParams::default()
        };
        let expected = reference_distribution(&logits, &params);
        let mut expected_ids: Vec<u32> = (0u32..)
            .zip(&expected)
            .filter(|(_, &p)| p > 0.0)
            .map(|(i, _)| i)
            .collect();
        let mut candidates: Vec<Candidate> = Vec::new();
        filters::collect_candidates(&logits, &mut candidates).unwrap();
        if let Some(k) = top_k {
            filters::keep_top_k(&mut candidates, k);
        }
        filters::keep_top_p(&mut candidates, top_p);
        let mut got_ids: Vec<u32> = candidates.iter().map(|c| c.token_id).collect();
        got_ids.sort_unstable();
        expected_ids.sort_unstable();
        assert!(
            expected_ids.len() > 64 || top_k == Some(100),
            "nucleus {}",
            expected_ids.len()
        );
        assert_eq!(got_ids, expected_ids, "top_p {top_p} top_k {top_k:?}");
    }
}

#[test]
fn masked_and_nan_logits_are_never_sampled() {
    let mut logits = logits_of(&PROBS);
    logits[0] = f32::NEG_INFINITY;
    logits[1] = f32::NAN;
    logits[2] = f32::INFINITY;
    let params = params(1.0, None, 1.0, 0.0, 11);
    let counts = draw_counts(&logits, &params);
    assert_eq!(&counts[..3], &[0, 0, 0]);
    assert_eq!(counts.iter().sum::<usize>(), NUM_DRAWS);
}
