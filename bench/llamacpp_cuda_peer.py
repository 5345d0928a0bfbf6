#!/usr/bin/env python3
"""The llama.cpp CUDA peer of bench/gpu_bench.sh: P1, P3 and P2 on the same shapes, one JSON line.

Runs on the GPU machine with what bench/build_llamacpp_cuda.sh put in .gpu-llamacpp (built on
the CPU machine: `llama-batched-bench.xz`, unpacked to /tmp/arle-llamacpp on first use). The model is a
random-weight GGUF (F16: 2 bytes per weight, as our bf16) written from the benchmark's
config.json by bench/make_random_gguf.py. Every row is one `llama-batched-bench` run (flash
attention on, all layers on the GPU), matched to ours:

- P1: `-npp 128 -ntg 512 -npl 1`, three times: decode tok/s of 512 tokens after a 128-token
  prompt (`speed_tg`), median.
- P3: `-npp 4096 -ntg 1 -npl 1 -b 4096 -ub 4096`, three times: one 4096-token prompt in one
  batch; prefill ms (`t_pp`), median.
- P2: `-npp 1000 -ntg 1000 -npl B`: B sequences of 1000 prompt tokens then 1000 generated
  tokens each, all at once (llama.cpp has no request queue, so this is its closest
  offline-throughput run; ours pushes 1000 requests through the scheduler). B is 256 when the
  f16 KV cache fits in free GPU memory next to the weights, else the largest power of two that
  does. Output tok/s = B * 1000 / (prompt + generation time).

    python3 bench/llamacpp_cuda_peer.py --model CONFIG_DIR --name NAME --which p1,p3,p2 \
        [--bin-dir .gpu-llamacpp] [--gguf-dir /tmp/arle-bench-gguf]
"""

from __future__ import annotations

import argparse
import json
import lzma
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def emit(obj: dict) -> None:
    print(json.dumps(obj), flush=True)


def run(cmd: list[str], env: dict, timeout: int) -> str:
    print("+ " + " ".join(cmd), file=sys.stderr, flush=True)
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    sys.stderr.write(p.stderr[-4000:])
    if p.returncode != 0:
        raise RuntimeError(f"{Path(cmd[0]).name} exited {p.returncode}")
    return p.stdout


def library_env(bin_dir: Path) -> dict:
    """LD_LIBRARY_PATH: the carried libcudart, then wherever libcublas.so.13 lives here."""
    dirs = [str(bin_dir)]
    candidates = [Path("/usr/local/cuda/targets/x86_64-linux/lib"), Path("/usr/local/cuda/lib64")]
    try:
        import nvidia  # torch's CUDA wheels, when the system has no toolkit libs

        candidates += [Path(p) / "cu13" / "lib" for p in nvidia.__path__]
    except ImportError:
        pass
    dirs += [str(d) for d in candidates if (d / "libcublas.so.13").exists()]
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = ":".join(dirs + [env.get("LD_LIBRARY_PATH", "")])
    return env


def free_gpu_bytes() -> int:
    out = subprocess.run(["nvidia-smi", "--query-gpu=memory.free", "--format=csv,noheader,nounits"],
                         capture_output=True, text=True, check=True).stdout
    return int(out.split()[0]) * 2**20


def kv_bytes_per_token(cfg: dict) -> int:
    heads = cfg["num_attention_heads"]
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // heads
    return cfg["num_hidden_layers"] * cfg.get("num_key_value_heads", heads) * head_dim * 2 * 2


def batched_bench(exe: str, gguf_path: Path, env: dict, timeout: int, *args: str) -> list[dict]:
    """One llama-batched-bench run; its JSON rows (one per prompt/gen/batch combination)."""
    out = run([exe, "-m", str(gguf_path), "-ngl", "99", "-fa", "on", *args,
               "--output-format", "jsonl"], env, timeout)
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    if not rows:
        raise RuntimeError("llama-batched-bench printed no result")
    return rows


def unpack(bin_dir: Path) -> str:
    """The llama-batched-bench executable, unpacked from the carried .xz into /tmp (not into the
    carried folder, which must stay under the carry limit)."""
    exe = Path("/tmp/arle-llamacpp/llama-batched-bench")
    if not exe.exists():
        exe.parent.mkdir(parents=True, exist_ok=True)
        part = exe.with_suffix(".part")  # renamed when complete: no half-unpacked binary stays
        with lzma.open(bin_dir / "llama-batched-bench.xz") as src, open(part, "wb") as dst:
            shutil.copyfileobj(src, dst)
        part.chmod(0o755)
        part.rename(exe)
    return str(exe)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, required=True, help="folder with config.json")
    ap.add_argument("--name", required=True)
    ap.add_argument("--which", default="p1,p3")
    ap.add_argument("--bin-dir", type=Path, default=HERE.parent / ".gpu-llamacpp")
    ap.add_argument("--gguf-dir", type=Path, default=Path("/tmp/arle-bench-gguf"))
    a = ap.parse_args()
    which = set(a.which.split(","))
    if not which <= {"p1", "p2", "p3"}:
        ap.error(f"--which takes p1, p2, p3 (comma-separated), not {a.which!r}")
    sys.path.insert(0, str(a.bin_dir / "gguf.whl"))  # pure-python wheel, importable as a zip
    sys.path.insert(0, str(HERE))
    import make_random_gguf

    cfg = make_random_gguf.load_config(a.model)
    result: dict = {"bench": "llamacpp_cuda", "model": a.name,
                    "version": (a.bin_dir / "VERSION").read_text().strip()}
    arch = (cfg.get("architectures") or [""])[0]
    if arch not in make_random_gguf.ARCHS:
        emit({**result, "skipped": f"{arch}: make_random_gguf.py writes {sorted(make_random_gguf.ARCHS)}"})
        return
    a.gguf_dir.mkdir(parents=True, exist_ok=True)
    gguf_path = a.gguf_dir / f"{a.name}.gguf"
    if not gguf_path.exists():
        t0 = time.time()
        make_random_gguf.write(cfg, gguf_path, "f16")
        result["gguf_write_s"] = round(time.time() - t0, 1)
    env = library_env(a.bin_dir)
    exe = unpack(a.bin_dir)
    errors = []
    if "p1" in which:
        try:
            rows = batched_bench(exe, gguf_path, env, 600, "-c", "1024", "-b", "512", "-ub", "512",
                                 "-npp", "128,128,128", "-ntg", "512", "-npl", "1")
            result["p1_decode_tok_s"] = statistics.median(r["speed_tg"] for r in rows)
        except Exception as e:  # report and go on with the other rows
            errors.append(f"p1: {e}")
    if "p3" in which:
        try:
            rows = batched_bench(exe, gguf_path, env, 600, "-c", "8192", "-b", "4096", "-ub",
                                 "4096", "-npp", "4096,4096,4096", "-ntg", "1", "-npl", "1")
            result["p3_prefill_ms"] = statistics.median(r["t_pp"] for r in rows) * 1e3
        except Exception as e:
            errors.append(f"p3: {e}")
    if "p2" in which:
        try:
            per_seq = 2000 * kv_bytes_per_token(cfg)
            room = free_gpu_bytes() - gguf_path.stat().st_size - (6 << 30)  # compute buffers
            batch = 256
            while batch > 1 and batch * per_seq > room:
                batch //= 2
            row = batched_bench(exe, gguf_path, env, 1200, "-c", str(batch * 2000), "-b", "8192",
                                "-ub", "2048", "-npp", "1000", "-ntg", "1000",
                                "-npl", str(batch))[-1]
            result["p2"] = {"batch": batch, "in": 1000, "out": 1000,
                            "output_tok_s": batch * 1000 / row["t"],
                            "decode_tok_s": row["speed_tg"], "prefill_tok_s": row["speed_pp"]}
        except Exception as e:
            errors.append(f"p2: {e}")
    if errors:
        result["errors"] = errors
    emit(result)


if __name__ == "__main__":
    main()
