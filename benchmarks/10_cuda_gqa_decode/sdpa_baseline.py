#!/usr/bin/env python3
"""The library baseline for lesson 10's benchmark: PyTorch's scaled_dot_product_attention
on one decode step.

Times torch.nn.functional.scaled_dot_product_attention on the GPU for the problems of
bench_decode: one query per sequence (Tq = 1) over a cache of T = 4096 keys, B = 32,
H = 32, D = 128, with G = 8 (GQA, through enable_gqa=True, PyTorch 2.5 or later) and
G = 32 (the MHA-expanded cache), in float32 and float16. CUDA events, 5 warm-up runs, the
median of 50, the L2 cache flushed before each. Prints the cache bytes read per step over
the time (GB/s) and that as a percentage of the device-to-device copy bandwidth measured
here the same way as bench_decode measures it, and names the backend SDPA uses.

Run on a machine with an NVIDIA GPU and torch installed:
    python3 benchmarks/10_cuda_gqa_decode/sdpa_baseline.py [--json results.json]
Elsewhere it prints that it is skipped and exits 0.
"""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
from sdpa_common import Sdpa, json_path, write_json  # noqa: E402


def main() -> int:
    sdpa = Sdpa("sdpa_baseline")
    if sdpa.skipped:
        print(sdpa.skipped)
        return 0
    torch = sdpa.torch
    dev = sdpa.dev
    print(sdpa.describe())
    copy = sdpa.copy_gbs()
    print(f"device-to-device copy: {copy:.0f} GB/s (read + write)")

    b, h, t, d = 32, 32, 4096, 128
    rows = []
    print(f"{'problem':<48} {'backend':>17} {'ms':>9} {'GB/s':>7} {'% of copy':>10}")
    for dtype in (torch.float32, torch.float16):
        for g in (8, 32):
            q = torch.rand(b, h, 1, d, device=dev, dtype=dtype) * 2 - 1
            k = torch.rand(b, g, t, d, device=dev, dtype=dtype) * 2 - 1
            v = torch.rand(b, g, t, d, device=dev, dtype=dtype) * 2 - 1
            backend = sdpa.backend_of(q, k, v, False)
            ms = sdpa.median_ms(lambda: sdpa.attention(q, k, v, False))
            gbs = (k.numel() + v.numel()) * k.element_size() / ms / 1e6  # the cache, read once
            name = f"SDPA {str(dtype).removeprefix('torch.')} decode B={b} T={t} H={h} G={g} D={d}"
            print(f"{name:<48} {backend:>17} {ms:9.3f} {gbs:7.0f} {100 * gbs / copy:9.1f}%")
            rows.append({"dtype": str(dtype).removeprefix("torch."), "b": b, "h": h, "g": g, "t": t, "d": d,
                         "backend": backend, "ms": ms, "gbs": gbs})
    if json_path():
        write_json(json_path(), sdpa, rows, copy_gbs=copy)
    return 0


if __name__ == "__main__":
    sys.exit(main())
