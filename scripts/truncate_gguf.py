#!/usr/bin/env python3
"""Writes a copy of a llama GGUF keeping only its first N blocks (tensor bytes copied as-is).

Used to carry a small, real-tokenizer, real-Q4_1 model to the GPU machine (64 MiB carry limit):
    /tmp/ref/venv/bin/python scripts/truncate_gguf.py IN.gguf OUT.gguf 4
The output is a valid model with different (truncated) outputs; only for smoke runs.
"""
import sys

from gguf import GGUFReader, GGUFValueType, GGUFWriter


def main() -> None:
    src, dst, keep = sys.argv[1], sys.argv[2], int(sys.argv[3])
    r = GGUFReader(src)
    arch = r.fields["general.architecture"].contents()
    w = GGUFWriter(dst, arch)
    for name, field in r.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        value = field.contents()
        if name == f"{arch}.block_count":
            value = keep
        vtype = field.types[0]
        if vtype == GGUFValueType.ARRAY:
            w.add_key_value(name, value, vtype, sub_type=field.types[-1])
        else:
            w.add_key_value(name, value, vtype)
    for t in r.tensors:
        if t.name.startswith("blk.") and int(t.name.split(".")[1]) >= keep:
            continue
        w.add_tensor(t.name, t.data, raw_dtype=t.tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main()
