#!/usr/bin/env python3
"""Quantisation fixtures for crates/tensor/tests/quant_*.rs, produced by the python `gguf` package.

Regenerate: /tmp/ref/venv/bin/python scripts/make_quant_fixtures.py [path/to/SmolLM2-135M-Instruct.Q4_1.gguf]
(needs numpy + gguf; the model defaults to .cache/models/, see scripts/fetch-test-assets.sh).

Writes crates/tensor/tests/fixtures/quant/:
  manifest.tsv          one line per case: `case  dtype  elements  origin`
  <case>.blocks.bin     raw GGUF bytes of `elements` values of `dtype`
  <case>.f32.bin        gguf.quants.dequantize(...) of those bytes, little-endian f32

Synthetic cases are random block bytes whose f16 scale/min fields are set to finite values in
[-2, 2] (plus one block with zero scales and one with subnormal scales), so that dequantised
values are finite. Real cases are the first rows of tensors of the SmolLM2 GGUF.
"""

import os
import sys

import numpy as np
from gguf import GGUFReader
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType as T
from gguf.quants import dequantize

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "crates", "tensor", "tests", "fixtures", "quant")
MODEL = os.path.join(ROOT, ".cache", "models", "SmolLM2-135M-Instruct.Q4_1.gguf")

# Byte offsets of the f16 scale/min fields inside one block (ggml block layouts).
F16_FIELDS = {
    T.Q4_0: [0],
    T.Q4_1: [0, 2],
    T.Q5_0: [0],
    T.Q5_1: [0, 2],
    T.Q8_0: [0],
    T.Q2_K: [80, 82],
    T.Q3_K: [108],
    T.Q4_K: [0, 2],
    T.Q5_K: [0, 2],
    T.Q6_K: [208],
}
BLOCKS = {T.Q4_0: 48, T.Q4_1: 48, T.Q5_0: 48, T.Q5_1: 48, T.Q8_0: 48}  # k-quants: 12


def synthetic_blocks(rng, qtype):
    block_elems, block_bytes = GGML_QUANT_SIZES[qtype]
    n_blocks = BLOCKS.get(qtype, 12)
    raw = rng.integers(0, 256, size=(n_blocks, block_bytes), dtype=np.uint8)
    for off in F16_FIELDS[qtype]:
        scales = rng.uniform(-2.0, 2.0, size=n_blocks).astype(np.float16)
        scales[0] = 0.0  # a block with zero scale/min
        scales[1] = np.float16(3e-6) * (1 if off == F16_FIELDS[qtype][0] else -1)  # subnormal
        raw[:, off : off + 2] = scales.view(np.uint8).reshape(n_blocks, 2)
    return raw.reshape(-1), n_blocks * block_elems


def finite_float_bits(rng, n, exp_shift, max_exp):
    """Random 16-bit float patterns (f16 or bf16) with biased exponent <= max_exp: no Inf/NaN,
    all signs and mantissas, subnormals included, and magnitudes a dot product cannot overflow."""
    vals = rng.integers(0, 1 << 16, size=n, dtype=np.uint32).astype(np.uint16)
    exp = (vals >> exp_shift) & np.uint16(0xFF >> (8 - (15 - exp_shift)))
    big = exp > max_exp
    vals[big] &= ~np.uint16(1 << 14)  # clear the top exponent bit
    return vals.view(np.uint8)


def write_case(manifest, case, qtype, raw, elements, origin):
    raw = np.ascontiguousarray(raw, dtype=np.uint8)
    if qtype == T.F32:
        deq = raw.view(np.float32).copy()
    else:
        deq = dequantize(raw.reshape(1, -1), qtype).reshape(-1).astype(np.float32)
    assert deq.size == elements, (case, deq.size, elements)
    assert np.isfinite(deq).all(), case
    raw.tofile(os.path.join(OUT, f"{case}.blocks.bin"))
    deq.astype("<f4").tofile(os.path.join(OUT, f"{case}.f32.bin"))
    manifest.append(f"{case}\t{qtype.name.lower()}\t{elements}\t{origin}")


def tensor_rows(reader, name, n_rows):
    t = next(t for t in reader.tensors if t.name == name)
    row_elems = int(t.shape[0])
    block_elems, block_bytes = GGML_QUANT_SIZES[t.tensor_type]
    row_bytes = row_elems // block_elems * block_bytes
    raw = np.asarray(t.data).view(np.uint8).reshape(-1)[: n_rows * row_bytes]
    return t.tensor_type, raw, n_rows * row_elems


def main():
    model = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("ARLE_SMOLLM2_GGUF", MODEL)
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20240611)
    manifest = ["# case\tdtype\telements\torigin (made by scripts/make_quant_fixtures.py)"]

    for qtype in F16_FIELDS:
        raw, n = synthetic_blocks(rng, qtype)
        write_case(manifest, f"rand_{qtype.name.lower()}", qtype, raw, n, "random blocks")
    n = 1000
    write_case(manifest, "rand_f16", T.F16, finite_float_bits(rng, n, 10, 30), n, "random bits")
    write_case(manifest, "rand_bf16", T.BF16, finite_float_bits(rng, n, 7, 127 + 40), n, "random bits")
    f32 = rng.standard_normal(n).astype(np.float32) * np.float32(3.0)
    write_case(manifest, "rand_f32", T.F32, f32.view(np.uint8), n, "random normal")

    reader = GGUFReader(model)
    for case, name, rows in [
        ("real_q4_1_ffn_gate", "blk.0.ffn_gate.weight", 2),
        ("real_q8_0_token_embd", "token_embd.weight", 2),
        ("real_f32_attn_norm", "blk.0.attn_norm.weight", 1),
    ]:
        qtype, raw, n = tensor_rows(reader, name, rows)
        write_case(manifest, case, qtype, raw, n, f"SmolLM2 {name} first {rows} rows")

    with open(os.path.join(OUT, "manifest.tsv"), "w") as f:
        f.write("\n".join(manifest) + "\n")
    total = sum(os.path.getsize(os.path.join(OUT, p)) for p in os.listdir(OUT))
    print(f"wrote {len(manifest) - 1} cases, {total} bytes, to {OUT}")


if __name__ == "__main__":
    main()
