"""What the PyTorch baselines of lessons 09 and 10 share: the GPU, the L2 flush, CUDA-event
timing (5 warm-up runs, the median of 50, the L2 cache flushed before each run, as the
C++ benchmarks do), and the name of the backend scaled_dot_product_attention uses.
"""
import json
import statistics
import sys


class Sdpa:
    """PyTorch on the GPU, or the reason it cannot run (`skipped`)."""

    def __init__(self, who: str):
        self.skipped = None
        try:
            import torch
            import torch.nn.functional as F
            from torch.nn.attention import SDPBackend, sdpa_kernel
        except ImportError as e:
            self.skipped = f"{who}: skipped: PyTorch is not installed ({e})"
            return
        if not torch.cuda.is_available():
            self.skipped = f"{who}: skipped: no CUDA GPU visible to PyTorch"
            return
        self.torch, self.F = torch, F
        self._backends = (("flash", SDPBackend.FLASH_ATTENTION),
                          ("memory-efficient", SDPBackend.EFFICIENT_ATTENTION),
                          ("math", SDPBackend.MATH))
        self._sdpa_kernel = sdpa_kernel
        self.dev = torch.device("cuda")
        l2 = torch.cuda.get_device_properties(self.dev).L2_cache_size
        self._flush = torch.empty(max(2 * l2, 64 << 20), dtype=torch.uint8, device=self.dev)

    def describe(self) -> str:
        return f"device: {self.torch.cuda.get_device_name(self.dev)}, torch {self.torch.__version__}"

    def median_ms(self, fn, reps: int = 50) -> float:
        torch = self.torch
        for _ in range(5):
            fn()
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        times = []
        for i in range(reps):
            self._flush.fill_(i & 0xFF)
            start.record()
            fn()
            stop.record()
            stop.synchronize()
            times.append(start.elapsed_time(stop))
        return statistics.median(times)

    def attention(self, q, k, v, causal: bool):
        return self.F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=True)

    def backend_of(self, q, k, v, causal: bool) -> str:
        """The first of flash, memory-efficient and math that takes the problem: PyTorch's own order."""
        for name, backend in self._backends:
            try:
                with self._sdpa_kernel(backend):
                    self.attention(q, k, v, causal)
                return name
            except RuntimeError:
                continue
        return "none"

    def copy_gbs(self) -> float:
        """Device-to-device copy bandwidth (bytes read + written per second), as the C++ benchmarks measure it."""
        torch = self.torch
        src = torch.empty(1 << 30, dtype=torch.uint8, device=self.dev)
        dst = torch.empty_like(src)
        ms = self.median_ms(lambda: dst.copy_(src), reps=20)
        return 2 * src.numel() / ms / 1e6


def json_path():
    """The path after --json on the command line, or None."""
    args = sys.argv[1:]
    return args[args.index("--json") + 1] if "--json" in args and args.index("--json") + 1 < len(args) else None


def write_json(path, sdpa, rows, **extra):
    """Writes the rows for benchmarks/gpu_report.py, with the device and torch version."""
    data = {"device": sdpa.torch.cuda.get_device_name(sdpa.dev), "torch": sdpa.torch.__version__, **extra,
            "rows": rows}
    with open(path, "w") as f:
        json.dump(data, f, indent=1)
    print(f"wrote {path}")
