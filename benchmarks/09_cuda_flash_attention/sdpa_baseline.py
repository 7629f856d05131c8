#!/usr/bin/env python3
"""The library baseline for lesson 09's benchmark: PyTorch's scaled_dot_product_attention.

Times torch.nn.functional.scaled_dot_product_attention on the GPU for the problems of
bench_flash (B=4, H=32, G=8, T=4096, D=64 and 128, causal and not), in float16 and in
float32, with CUDA events (5 warm-up runs, the median of 50, the L2 cache flushed before
each), and prints TFLOP/s with the same flop count as bench_flash (4 B H Tq Tk D, only
the visible pairs when causal). It names the backend SDPA uses: the first of flash,
memory-efficient and math that accepts the problem, which is PyTorch's own order of
preference. GQA goes through enable_gqa=True (PyTorch 2.5 or later).

Run on a machine with an NVIDIA GPU and torch installed:
    python3 benchmarks/09_cuda_flash_attention/sdpa_baseline.py [--json results.json]
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

    b, h, g, t = 4, 32, 8, 4096
    rows = []
    print(f"{'problem':<44} {'backend':>17} {'ms':>9} {'TFLOP/s':>9}")
    for dtype in (torch.float16, torch.float32):
        for d in (64, 128):
            for causal in (False, True):
                q = torch.rand(b, h, t, d, device=dev, dtype=dtype) * 2 - 1
                k = torch.rand(b, g, t, d, device=dev, dtype=dtype) * 2 - 1
                v = torch.rand(b, g, t, d, device=dev, dtype=dtype) * 2 - 1
                backend = sdpa.backend_of(q, k, v, causal)
                ms = sdpa.median_ms(lambda: sdpa.attention(q, k, v, causal))
                # Tq == Tk: PyTorch's top-left causal alignment equals the bottom-right one here.
                pairs = t * (t + 1) / 2 if causal else t * t
                tflops = 4 * b * h * pairs * d / ms / 1e9
                name = (f"SDPA {str(dtype).removeprefix('torch.')} B={b} H={h} G={g} T={t} D={d}"
                        f"{' causal' if causal else ''}")
                print(f"{name:<44} {backend:>17} {ms:9.3f} {tflops:9.2f}")
                rows.append({"dtype": str(dtype).removeprefix("torch."), "b": b, "h": h, "g": g, "t": t, "d": d,
                             "causal": causal, "backend": backend, "ms": ms, "tflops": tflops})
    if json_path():
        write_json(json_path(), sdpa, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
