//! Quantisation parity against the python `gguf` package.
//!
//! Fixtures (tests/fixtures/quant/, made by scripts/make_quant_fixtures.py) hold raw GGUF
//! bytes and `gguf.quants.dequantize`'s f32 output, for random blocks of every block type
//! and for the first rows of real SmolLM2 tensors. Dequantisation must match bit for bit on
//! every instruction set this CPU has; dot products must match an f64 dot of the reference
//! values within a relative tolerance of the absolute sum `Σ |w·x|`.

use arle_tensor::quant::{self, Isa};
use arle_tensor::DType;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::PathBuf;

/// Relative error allowed for dot products, measured against `Σ |w[i] · x[i]|`.
const DOT_REL_TOL: f64 = 2e-6;

struct Case {
    name: String,
    dtype: DType,
    bytes: Vec<u8>,
    reference: Vec<f32>,
}

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/quant")
}

fn parse_dtype(name: &str) -> DType {
    DType::ALL
        .into_iter()
        .find(|d| d.name() == name)
        .unwrap_or_else(|| panic!("unknown dtype {name} in manifest"))
}

fn load_cases() -> Vec<Case> {
    let dir = fixture_dir();
    let manifest = std::fs::read_to_string(dir.join("manifest.tsv")).expect("manifest.tsv");
    let cases: Vec<Case> = manifest
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            let (name, dtype) = (cols[0].to_string(), parse_dtype(cols[1]));
            let elements: usize = cols[2].parse().expect("element count");
            let bytes = std::fs::read(dir.join(format!("{name}.blocks.bin"))).expect("blocks");
            let raw = std::fs::read(dir.join(format!("{name}.f32.bin"))).expect("f32");
            let reference: Vec<f32> = raw
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            assert_eq!(reference.len(), elements, "{name}");
            assert_eq!(dtype.bytes_for(elements), Some(bytes.len()), "{name}");
            Case {
                name,
                dtype,
                bytes,
                reference,
            }
        })
        .collect();
    assert!(cases.len() >= 16, "manifest lists {} cases", cases.len());
    cases
}

fn random_x(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// (exact f64 dot, Σ |w·x|) of reference weights against `x`.
fn reference_dot(w: &[f32], x: &[f32]) -> (f64, f64) {
    w.iter().zip(x).fold((0.0, 0.0), |(s, a), (&w, &x)| {
        let p = w as f64 * x as f64;
        (s + p, a + p.abs())
    })
}

fn assert_dot_close(got: f32, w: &[f32], x: &[f32], what: &str) {
    let (want, abs_sum) = reference_dot(w, x);
    let err = (got as f64 - want).abs();
    assert!(
        err <= DOT_REL_TOL * abs_sum + 1e-30,
        "{what}: dot {got} vs f64 reference {want} (err {err:e}, Σ|wx| {abs_sum:e})"
    );
}

#[test]
fn every_dtype_has_a_fixture() {
    let cases = load_cases();
    for dtype in [
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
    ] {
        assert!(
            cases.iter().any(|c| c.dtype == dtype),
            "no fixture for {dtype:?}"
        );
    }
    for real in [
        "real_q4_1_ffn_gate",
        "real_q8_0_token_embd",
        "real_f32_attn_norm",
    ] {
        assert!(cases.iter().any(|c| c.name == real), "missing {real}");
    }
}

#[test]
fn dequantize_is_bit_exact_on_every_isa() {
    let cases = load_cases();
    for isa in Isa::all_supported() {
        for case in &cases {
            let mut out = vec![f32::NAN; case.reference.len()];
            quant::dequantize_with(isa, case.dtype, &case.bytes, &mut out).expect("dequantize");
            for (i, (got, want)) in out.iter().zip(&case.reference).enumerate() {
                assert_eq!(
                    got.to_bits(),
                    want.to_bits(),
                    "{isa:?} {}: value {i} is {got}, gguf gives {want}",
                    case.name
                );
            }
        }
    }
    let mut out = vec![0.0; cases[0].reference.len()];
    quant::dequantize(cases[0].dtype, &cases[0].bytes, &mut out).expect("default isa");
    assert_eq!(out, cases[0].reference);
}

#[test]
fn dot_matches_f64_reference_on_every_isa() {
    let cases = load_cases();
    for isa in Isa::all_supported() {
        for (seed, case) in cases.iter().enumerate() {
            let x = random_x(case.reference.len(), seed as u64);
            let got = quant::dot_with(isa, case.dtype, &case.bytes, &x).expect("dot");
            assert_dot_close(got, &case.reference, &x, &format!("{isa:?} {}", case.name));
        }
    }
}

#[test]
fn dot_handles_every_prefix_length() {
    // Whole-block prefixes of each fixture (and arbitrary lengths for floats), so that SIMD
    // main loops and scalar tails of every size are exercised.
    let cases = load_cases();
    for isa in Isa::all_supported() {
        for case in &cases {
            let block = case.dtype.block_elems();
            let step = if block == 1 { 1 } else { block };
            let max = case
                .reference
                .len()
                .min(if block == 1 { 80 } else { usize::MAX });
            for n in (step..=max).step_by(step) {
                let n_bytes = case.dtype.bytes_for(n).expect("whole blocks");
                let x = random_x(n, n as u64);
                let got = quant::dot_with(isa, case.dtype, &case.bytes[..n_bytes], &x)
                    .expect("dot of a prefix");
                let what = format!("{isa:?} {} first {n}", case.name);
                assert_dot_close(got, &case.reference[..n], &x, &what);
            }
        }
    }
}

#[test]
fn dot_many_matches_single_dots() {
    let cases = load_cases();
    for isa in Isa::all_supported() {
        for case in &cases {
            let n = case.reference.len();
            for n_rows in [1usize, 3, 4, 5, 9] {
                let xs: Vec<Vec<f32>> = (0..n_rows).map(|j| random_x(n, 100 + j as u64)).collect();
                let x_refs: Vec<&[f32]> = xs.iter().map(|x| x.as_slice()).collect();
                let mut out = vec![f32::NAN; n_rows];
                quant::dot_many_with(isa, case.dtype, &case.bytes, &x_refs, &mut out)
                    .expect("dot_many");
                for (j, x) in xs.iter().enumerate() {
                    let what = format!("{isa:?} {} dot_many row {j} of {n_rows}", case.name);
                    assert_dot_close(out[j], &case.reference, x, &what);
                }
            }
        }
    }
}

#[test]
fn dot_rows_equals_dot_of_each_row_bit_for_bit() {
    // Every whole-block row length that divides the fixture (so 1 to many rows, covering the
    // multi-row passes and their remainders), on every ISA.
    let cases = load_cases();
    for isa in Isa::all_supported() {
        for case in &cases {
            let (len, block) = (case.reference.len(), case.dtype.block_elems());
            for row_len in (block..=len).step_by(block).filter(|r| len % r == 0) {
                let n_rows = len / row_len;
                let row_bytes = case.bytes.len() / n_rows;
                let x = random_x(row_len, row_len as u64);
                let mut out = vec![f32::NAN; n_rows];
                quant::dot_rows_with(isa, case.dtype, &case.bytes, &x, &mut out).expect("rows");
                for (r, got) in out.iter().enumerate() {
                    let row = &case.bytes[r * row_bytes..(r + 1) * row_bytes];
                    let want = quant::dot_with(isa, case.dtype, row, &x).expect("dot");
                    let what = format!("{isa:?} {} row {r} of {n_rows}", case.name);
                    assert_eq!(got.to_bits(), want.to_bits(), "{what}: {got} vs {want}");
                }
            }
        }
    }
}

#[test]
fn dot_rows_rejects_a_partial_row() {
    let x = vec![1.0f32; 32];
    let mut out = vec![0.0f32; 2];
    let bytes = vec![0u8; DType::Q4_1.bytes_for(32).expect("one block") * 2 + 1];
    assert!(quant::dot_rows(DType::Q4_1, &bytes, &x, &mut out).is_err());
    let bytes = vec![0u8; DType::Q4_1.bytes_for(32).expect("one block")];
    assert!(quant::dot_rows(DType::Q4_1, &bytes, &x, &mut out).is_err());
}
