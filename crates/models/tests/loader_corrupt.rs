//! Corrupt and truncated GGUF files (derived from the real SmolLM2 file) must give
//! `ModelError::Corrupt` naming the file and the problem, never a panic.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};

use arle_models::gguf::GgufFile;
use arle_models::ModelError;
use arle_tensor::Bytes;

fn smollm2_gguf() -> PathBuf {
    let path = std::env::var_os("ARLE_SMOLLM2_GGUF")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf")
        });
    assert!(
        path.is_file(),
        "SmolLM2 GGUF not found at {}: run scripts/fetch-test-assets.sh (or set ARLE_SMOLLM2_GGUF)",
        path.display()
    );
    path
}

/// The real file's header (everything before the data section) and facts about it.
struct Original {
    header: Vec<u8>,
    file_len: u64,
    first_tensor: (String, usize, usize), // name, n_dims, rel offset
    second_tensor: (String, usize),       // name, n_dims
}

fn original() -> Original {
    let path = smollm2_gguf();
    let gguf = GgufFile::open(&path).expect("the real file opens");
    let bytes = std::fs::read(&path).unwrap();
    let t0 = &gguf.tensors[0];
    Original {
        header: bytes[..gguf.data_offset].to_vec(),
        file_len: bytes.len() as u64,
        first_tensor: (
            t0.name.clone(),
            t0.shape.len(),
            t0.offset - gguf.data_offset,
        ),
        second_tensor: (gguf.tensors[1].name.clone(), gguf.tensors[1].shape.len()),
    }
}

/// Position of a length-prefixed GGUF string `s` in `buf` (the position of its u64 length).
fn find_string(buf: &[u8], s: &str) -> usize {
    let mut needle = (s.len() as u64).to_le_bytes().to_vec();
    needle.extend_from_slice(s.as_bytes());
    buf.windows(needle.len())
        .position(|w| w == needle)
        .unwrap_or_else(|| panic!("{s} not found"))
}

/// Writes `header` to a temp file, extended with zeros (sparse) to `len` bytes.
fn write_temp(dir: &Path, name: &str, header: &[u8], len: u64) -> PathBuf {
    let path = dir.join(name);
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(header).unwrap();
    f.set_len(len.max(header.len() as u64)).unwrap();
    path
}

fn assert_corrupt(path: &Path, want: &str) {
    match GgufFile::open(path) {
        Ok(_) => panic!(
            "{}: opened, expected error containing `{want}`",
            path.display()
        ),
        Err(e @ ModelError::Corrupt { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains(&path.display().to_string()),
                "no file name in: {msg}"
            );
            assert!(msg.contains(want), "expected `{want}` in: {msg}");
        }
        Err(other) => panic!("{}: wrong error kind: {other}", path.display()),
    }
}

fn put_u32(buf: &mut [u8], at: usize, v: u32) {
    buf[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_u64(buf: &mut [u8], at: usize, v: u64) {
    buf[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn truncated_files_are_corrupt() {
    let o = original();
    let dir = tempfile::tempdir().unwrap();
    let tensor_infos = find_string(&o.header, &o.first_tensor.0);
    let data_offset = o.header.len() as u64;
    let cuts: Vec<(u64, &str)> = vec![
        (0, "truncated: magic"),
        (3, "truncated: magic"),
        (6, "truncated: version"),
        (20, "tensor count is 272, but only 4 bytes remain"),
        (30, "truncated"),
        (1000, "truncated"),
        (400_000, "truncated"),
        (tensor_infos as u64 + 12, "truncated"),
        (data_offset - 3, "truncated"),
        (data_offset + 1000, "past end of file"),
        (o.file_len - 1, "past end of file"),
    ];
    for (i, (len, want)) in cuts.into_iter().enumerate() {
        let keep = &o.header[..(len as usize).min(o.header.len())];
        let path = write_temp(dir.path(), &format!("cut{i}.gguf"), keep, len);
        assert_corrupt(&path, want);
    }
    // Untouched header + full length opens: the harness itself is sound.
    let path = write_temp(dir.path(), "whole.gguf", &o.header, o.file_len);
    let gguf = GgufFile::open(&path).expect("sparse copy of the real header opens");
    assert_eq!(gguf.tensors.len(), 272);
}

#[test]
fn garbled_headers_are_corrupt() {
    let o = original();
    let dir = tempfile::tempdir().unwrap();
    let h = &o.header;
    let key0_len = u64::from_le_bytes(h[24..32].try_into().unwrap()) as usize;
    let tokens = find_string(h, "tokenizer.ggml.tokens") + 8 + "tokenizer.ggml.tokens".len();
    let add_bos = find_string(h, "tokenizer.ggml.add_bos_token") + 8 + 28;
    let (t0_name, t0_dims, t0_rel) = o.first_tensor.clone();
    let t0_rel = t0_rel as u64;
    let t0 = find_string(h, &t0_name) + 8 + t0_name.len(); // at n_dims
    let t0_type = t0 + 4 + 8 * t0_dims;
    let (t1_name, t1_dims) = &o.second_tensor;
    let t1 = find_string(h, t1_name) + 8 + t1_name.len(); // at n_dims
    let t1_offset = t1 + 4 + 8 * t1_dims + 4;
    let k_name = find_string(h, "blk.0.attn_k.weight") + 8;

    type Edit = Box<dyn Fn(&mut Vec<u8>)>;
    let cases: Vec<(&str, Edit, &str)> = vec![
        ("magic", Box::new(|b| b[3] = b'X'), "not a GGUF file"),
        (
            "v1",
            Box::new(|b| put_u32(b, 4, 1)),
            "unsupported GGUF version 1",
        ),
        (
            "bigendian",
            Box::new(|b| put_u32(b, 4, 3 << 24)),
            "unsupported GGUF version",
        ),
        (
            "ntensors",
            Box::new(|b| put_u64(b, 8, u64::MAX)),
            "tensor count",
        ),
        (
            "nkv",
            Box::new(|b| put_u64(b, 16, 1 << 40)),
            "metadata count",
        ),
        (
            "keylen",
            Box::new(|b| put_u64(b, 24, u64::MAX / 2)),
            "length of metadata key",
        ),
        ("utf8", Box::new(|b| b[32] = 0xff), "not valid UTF-8"),
        (
            "vtype",
            Box::new(move |b| put_u32(b, 32 + key0_len, 99)),
            "unknown value type 99",
        ),
        (
            "arraylen",
            Box::new(move |b| put_u64(b, tokens + 8, 1 << 60)),
            "array length",
        ),
        (
            "arraytype",
            Box::new(move |b| put_u32(b, tokens + 4, 77)),
            "element type 77",
        ),
        (
            "bool",
            Box::new(move |b| b[add_bos + 4] = 2),
            "bool byte is 2",
        ),
        ("ndims", Box::new(move |b| put_u32(b, t0, 9)), "9 dims"),
        (
            "ttype",
            Box::new(move |b| put_u32(b, t0_type, 99)),
            "ggml type id 99",
        ),
        (
            "q4_3",
            Box::new(move |b| put_u32(b, t0_type, 4)),
            "ggml type id 4",
        ),
        (
            "align",
            Box::new(move |b| put_u64(b, t0_type + 4, 1)),
            "not a multiple of the alignment",
        ),
        (
            "offset",
            Box::new(move |b| put_u64(b, t0_type + 4, 1 << 40)),
            "past end of file",
        ),
        (
            "dims",
            Box::new(move |b| put_u64(b, t0 + 4, 1 << 62)),
            "tensor `",
        ),
        (
            "overlap",
            Box::new(move |b| put_u64(b, t1_offset, t0_rel)),
            "overlap",
        ),
        (
            "dup",
            Box::new(move |b| b[k_name + 11] = b'q'),
            "duplicate tensor name",
        ),
    ];
    for (name, edit, want) in cases {
        let mut header = o.header.clone();
        edit(&mut header);
        let path = write_temp(dir.path(), &format!("{name}.gguf"), &header, o.file_len);
        assert_corrupt(&path, want);
    }
}

#[test]
fn random_header_damage_never_panics() {
    let o = original();
    let path = Path::new("fuzz.gguf");
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    // Damage concentrated in the first 64 KiB (counts, keys, small values) and the tensor infos.
    let infos = find_string(&o.header, &o.first_tensor.0);
    for _ in 0..150 {
        let mut header = o.header.clone();
        for _ in 0..4 {
            let region = if next() % 2 == 0 {
                0..65536
            } else {
                infos..o.header.len()
            };
            let at = region.start + (next() as usize) % (region.end - region.start);
            header[at] = next() as u8;
        }
        // Either outcome is fine; a panic or abort is not.
        if let Err(e) = GgufFile::parse(path, Bytes::from_vec(header)) {
            assert!(e.to_string().contains("fuzz.gguf"), "{e}");
        }
    }
}
