//! Gated DeltaNet ops: the chunked and recurrent forms against an independent f64 recurrence
//! written here from MODEL-SPECS §4.4, state captures at chunk boundaries (bit-exact against a
//! split run), the causal conv window carry, the gated RMSNorm and the gates.

#![allow(clippy::unwrap_used)]

mod common;

use arle_tensor::ops::{
    causal_conv1d_silu, conv_window_after, gated_delta_rule_chunked, gated_delta_rule_recurrent,
    gated_rms_norm, gdn_gates, GdnInput, GdnShape,
};
use arle_tensor::{Tensor, Weight};
use common::{random_tensor, random_vec, rng};

const SHAPE: GdnShape = GdnShape {
    num_k_heads: 2,
    num_v_heads: 4,
    k_head_dim: 16,
    v_head_dim: 24,
};

/// Random post-conv qkv, gates with realistic ranges, and a random initial state.
struct Case {
    qkv: Tensor,
    g: Vec<f32>,
    beta: Vec<f32>,
    state: Vec<f32>,
}

fn case(seed: u64, n: usize) -> Case {
    let mut r = rng(seed);
    let qkv = random_tensor(&mut r, &[n, SHAPE.conv_dim()]);
    let hv = SHAPE.num_v_heads;
    let g = random_vec(&mut r, n * hv)
        .iter()
        .map(|v| -0.3 * (v + 1.0))
        .collect();
    let beta = random_vec(&mut r, n * hv)
        .iter()
        .map(|v| 0.5 + 0.45 * v)
        .collect();
    let state = random_vec(&mut r, SHAPE.state_floats())
        .iter()
        .map(|v| 0.1 * v)
        .collect();
    Case {
        qkv,
        g,
        beta,
        state,
    }
}

impl Case {
    fn input(&self) -> GdnInput<'_> {
        GdnInput {
            qkv: &self.qkv,
            g: &self.g,
            beta: &self.beta,
        }
    }
}

/// The definition (§4.4 step 6), f64, token by token: returns (o [n, Hv·Dv], final state).
fn reference(c: &Case) -> (Vec<f32>, Vec<f32>) {
    let s = SHAPE;
    let (n, hv, dk, dv) = (c.qkv.dim(0), s.num_v_heads, s.k_head_dim, s.v_head_dim);
    let r = hv / s.num_k_heads;
    let mut state: Vec<f64> = c.state.iter().map(|&v| v as f64).collect();
    let mut out = vec![0.0f32; n * hv * dv];
    let l2 = |x: &[f32]| -> Vec<f64> {
        let ss: f64 = x.iter().map(|&v| (v as f64) * (v as f64)).sum();
        let inv = 1.0 / (ss + 1e-6).sqrt();
        x.iter().map(|&v| v as f64 * inv).collect()
    };
    for t in 0..n {
        let row = c.qkv.row(t);
        for h in 0..hv {
            let kh = h / r;
            let q: Vec<f64> = l2(&row[kh * dk..(kh + 1) * dk])
                .iter()
                .map(|v| v / (dk as f64).sqrt())
                .collect();
            let k = l2(&row[s.key_dim() + kh * dk..s.key_dim() + (kh + 1) * dk]);
            let v = &row[2 * s.key_dim() + h * dv..2 * s.key_dim() + (h + 1) * dv];
            let st = &mut state[h * dk * dv..(h + 1) * dk * dv];
            let decay = (c.g[t * hv + h] as f64).exp();
            st.iter_mut().for_each(|x| *x *= decay);
            let beta = c.beta[t * hv + h] as f64;
            for b in 0..dv {
                let m: f64 = (0..dk).map(|a| st[a * dv + b] * k[a]).sum();
                let delta = beta * (v[b] as f64 - m);
                (0..dk).for_each(|a| st[a * dv + b] += k[a] * delta);
                let o: f64 = (0..dk).map(|a| st[a * dv + b] * q[a]).sum();
                out[(t * hv + h) * dv + b] = o as f32;
            }
        }
    }
    (out, state.iter().map(|&v| v as f32).collect())
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn chunked_form_matches_the_recurrence_definition() {
    for (seed, n) in [(1, 1), (2, 63), (3, 64), (4, 150)] {
        let c = case(seed, n);
        let (want_o, want_s) = reference(&c);
        let mut state = c.state.clone();
        let (o, caps) = gated_delta_rule_chunked(&c.input(), &SHAPE, &mut state, &[]).unwrap();
        assert!(caps.is_empty());
        assert_eq!(o.shape(), [n, SHAPE.value_dim()]);
        let (d_o, d_s) = (max_abs(o.data(), &want_o), max_abs(&state, &want_s));
        assert!(
            d_o <= 1e-5 && d_s <= 1e-5,
            "n={n}: output {d_o:e}, state {d_s:e}"
        );
    }
}

#[test]
fn recurrent_form_matches_the_recurrence_definition() {
    let c = case(5, 40);
    let (want_o, want_s) = reference(&c);
    let mut state = c.state.clone();
    let o = gated_delta_rule_recurrent(&c.input(), &SHAPE, &mut state).unwrap();
    assert!(max_abs(o.data(), &want_o) <= 1e-5);
    assert!(max_abs(&state, &want_s) <= 1e-5);
}

/// Rows `r` of a case as its own case (state = `state`).
fn slice(c: &Case, r: std::ops::Range<usize>, state: Vec<f32>) -> Case {
    let (w, hv) = (SHAPE.conv_dim(), SHAPE.num_v_heads);
    Case {
        qkv: Tensor::from_vec(
            vec![r.len(), w],
            c.qkv.data()[r.start * w..r.end * w].to_vec(),
        )
        .unwrap(),
        g: c.g[r.start * hv..r.end * hv].to_vec(),
        beta: c.beta[r.start * hv..r.end * hv].to_vec(),
        state,
    }
}

#[test]
fn captures_at_chunk_boundaries_change_nothing_and_equal_split_runs() {
    let c = case(6, 150);
    let mut plain_state = c.state.clone();
    let (plain, _) = gated_delta_rule_chunked(&c.input(), &SHAPE, &mut plain_state, &[]).unwrap();
    let mut state = c.state.clone();
    let (o, caps) = gated_delta_rule_chunked(&c.input(), &SHAPE, &mut state, &[64, 128]).unwrap();
    assert_eq!(
        o.data(),
        plain.data(),
        "captures at 64-multiples must not move chunk edges"
    );
    assert_eq!(state, plain_state);
    assert_eq!(caps.len(), 2);
    // The capture at 64 is the state of a 64-token run; resuming from it gives the same rest.
    let mut head_state = c.state.clone();
    let head = slice(&c, 0..64, c.state.clone());
    gated_delta_rule_chunked(&head.input(), &SHAPE, &mut head_state, &[]).unwrap();
    assert_eq!(caps[0], head_state);
    let tail = slice(&c, 64..150, caps[0].clone());
    let mut tail_state = caps[0].clone();
    let (rest, _) = gated_delta_rule_chunked(&tail.input(), &SHAPE, &mut tail_state, &[]).unwrap();
    assert_eq!(rest.data(), &plain.data()[64 * SHAPE.value_dim()..]);
    assert_eq!(tail_state, plain_state);
}

#[test]
fn mid_chunk_capture_equals_a_split_run_and_is_close_to_uninterrupted() {
    let c = case(7, 150);
    let mut plain_state = c.state.clone();
    let (plain, _) = gated_delta_rule_chunked(&c.input(), &SHAPE, &mut plain_state, &[]).unwrap();
    let mut state = c.state.clone();
    let (o, caps) = gated_delta_rule_chunked(&c.input(), &SHAPE, &mut state, &[100]).unwrap();
    assert!(max_abs(o.data(), plain.data()) <= 1e-5);
    assert!(max_abs(&state, &plain_state) <= 1e-5);
    let mut head_state = c.state.clone();
    let head = slice(&c, 0..100, c.state.clone());
    gated_delta_rule_chunked(&head.input(), &SHAPE, &mut head_state, &[]).unwrap();
    assert_eq!(caps[0], head_state);
}

#[test]
fn bad_shapes_and_captures_are_errors() {
    let c = case(8, 10);
    let mut state = c.state.clone();
    for caps in [&[0][..], &[11], &[5, 5], &[6, 3]] {
        assert!(gated_delta_rule_chunked(&c.input(), &SHAPE, &mut state, caps).is_err());
    }
    let mut short = vec![0.0; 3];
    assert!(gated_delta_rule_recurrent(&c.input(), &SHAPE, &mut short).is_err());
    let bad = GdnInput {
        qkv: &c.qkv,
        g: &c.g[1..],
        beta: &c.beta,
    };
    assert!(gated_delta_rule_chunked(&bad, &SHAPE, &mut state, &[]).is_err());
}

#[test]
fn conv_carries_its_window_across_calls() {
    let (channels, k, n) = (5, 4, 9);
    let mut r = rng(9);
    let x = random_tensor(&mut r, &[n, channels]);
    let w = random_vec(&mut r, channels * k);
    // Naive definition: zeros before the sequence, newest row times w[K-1], then SiLU.
    let mut want = vec![0.0f32; n * channels];
    for t in 0..n {
        for c in 0..channels {
            let mut acc = 0.0f32;
            for j in 0..k {
                let src = t as isize - (k as isize - 1) + j as isize;
                if src >= 0 {
                    acc += w[c * k + j] * x.data()[src as usize * channels + c];
                }
            }
            want[t * channels + c] = acc / (1.0 + (-acc).exp());
        }
    }
    let mut window = vec![0.0f32; (k - 1) * channels];
    let full = causal_conv1d_silu(&x, &mut window, &w, k).unwrap();
    assert!(max_abs(full.data(), &want) <= 1e-6);
    assert_eq!(
        window,
        x.data()[(n - 3) * channels..].to_vec(),
        "last K-1 input rows"
    );
    // Split 2 + 1 + 6 rows: the same outputs and window.
    let mut window2 = vec![0.0f32; (k - 1) * channels];
    let mut outs = Vec::new();
    for r in [0..2, 2..3, 3..9] {
        let part = Tensor::from_vec(
            vec![r.len(), channels],
            x.data()[r.start * channels..r.end * channels].to_vec(),
        )
        .unwrap();
        outs.extend(
            causal_conv1d_silu(&part, &mut window2, &w, k)
                .unwrap()
                .into_vec(),
        );
    }
    assert!(max_abs(&outs, full.data()) <= 1e-6);
    assert_eq!(window2, window);
    // conv_window_after(zeros, x, 2) = [0-row, x0, x1].
    let after2 = conv_window_after(&vec![0.0; 3 * channels], x.data(), channels, 2).unwrap();
    assert_eq!(&after2[..channels], &[0.0; 5]);
    assert_eq!(&after2[channels..], &x.data()[..2 * channels]);
    assert!(causal_conv1d_silu(&x, &mut window, &w[1..], k).is_err());
}

#[test]
fn gated_norm_uses_plain_weight_and_silu_gate() {
    let mut r = rng(10);
    let x = random_tensor(&mut r, &[6, 8]);
    let z = random_tensor(&mut r, &[6, 8]);
    let wv = random_vec(&mut r, 8);
    let w = Weight::from_f32(vec![8], &wv).unwrap();
    let y = gated_rms_norm(&x, &z, &w, 1e-6).unwrap();
    for t in 0..6 {
        let row = x.row(t);
        let ms: f32 = row.iter().map(|v| v * v).sum::<f32>() / 8.0;
        for i in 0..8 {
            let g = z.row(t)[i];
            let want = wv[i] * row[i] / (ms + 1e-6).sqrt() * g / (1.0 + (-g).exp());
            assert!((y.row(t)[i] - want).abs() <= 1e-6);
        }
    }
    assert!(gated_rms_norm(&x, &z.clone().reshape(vec![8, 6]).unwrap(), &w, 1e-6).is_err());
}

#[test]
fn gates_follow_the_softplus_threshold() {
    let a = Tensor::from_vec(vec![1, 2], vec![0.5, 30.0]).unwrap();
    let b = Tensor::from_vec(vec![1, 2], vec![0.0, 2.0]).unwrap();
    let (g, beta) = gdn_gates(&a, &b, &[0.2, -1.0], &[0.1, 1.0]).unwrap();
    let sp0 = (0.6f32).exp().ln_1p();
    assert!((g[0] + 0.2f32.exp() * sp0).abs() <= 1e-6);
    assert!(
        (g[1] + (-1.0f32).exp() * 31.0).abs() <= 1e-5,
        "x > 20: softplus(x) = x"
    );
    assert!((beta[0] - 0.5).abs() <= 1e-7);
    assert!((beta[1] - 1.0 / (1.0 + (-2.0f32).exp())).abs() <= 1e-7);
}
