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
    python3 benchmarks/09_cuda_flash_attention/sdpa_baseline.py
Elsewhere it prints that it is skipped and exits 0.
"""
import statistics
import sys


def main() -> int:
    try:
        import torch
        import torch.nn.functional as F
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError as e:
        print(f"sdpa_baseline: skipped: PyTorch is not installed ({e})")
        return 0
    if not torch.cuda.is_available():
        print("sdpa_baseline: skipped: no CUDA GPU visible to PyTorch")
        return 0

    dev = torch.device("cuda")
    print(f"device: {torch.cuda.get_device_name(dev)}, torch {torch.__version__}")
    l2 = torch.cuda.get_device_properties(dev).L2_cache_size
    flush = torch.empty(max(2 * l2, 64 << 20), dtype=torch.uint8, device=dev)

    def median_ms(fn, reps=50):
        for _ in range(5):
            fn()
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        times = []
        for i in range(reps):
            flush.fill_(i & 0xFF)
            start.record()
            fn()
            stop.record()
            stop.synchronize()
            times.append(start.elapsed_time(stop))
        return statistics.median(times)

    def backend_of(q, k, v, causal):
        for name, backend in (("flash", SDPBackend.FLASH_ATTENTION),
                              ("memory-efficient", SDPBackend.EFFICIENT_ATTENTION),
                              ("math", SDPBackend.MATH)):
            try:
                with sdpa_kernel(backend):
                    F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=True)
                return name
            except RuntimeError:
                continue
        return "none"

    b, h, g, t = 4, 32, 8, 4096
    print(f"{'problem':<44} {'backend':>17} {'ms':>9} {'TFLOP/s':>9}")
    for dtype in (torch.float16, torch.float32):
        for d in (64, 128):
            for causal in (False, True):
                q = torch.rand(b, h, t, d, device=dev, dtype=dtype) * 2 - 1
                k = torch.rand(b, g, t, d, device=dev, dtype=dtype) * 2 - 1
                v = torch.rand(b, g, t, d, device=dev, dtype=dtype) * 2 - 1
                backend = backend_of(q, k, v, causal)
                ms = median_ms(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal,
                                                                      enable_gqa=True))
                # Tq == Tk: PyTorch's top-left causal alignment equals the bottom-right one here.
                pairs = t * (t + 1) / 2 if causal else t * t
                tflops = 4 * b * h * pairs * d / ms / 1e9
                name = (f"SDPA {str(dtype).removeprefix('torch.')} B={b} H={h} G={g} T={t} D={d}"
                        f"{' causal' if causal else ''}")
                print(f"{name:<44} {backend:>17} {ms:9.3f} {tflops:9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
