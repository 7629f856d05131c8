#!/usr/bin/env python3
"""Lessons 09 and 10 on a GPU: the READMEs' numbers, from what tools/gpu_check.sh measured.

    gpu_report.py DIR        copies DIR's bench_flash.json, sdpa_09.json, bench_decode.json and
                             sdpa_10.json (those present) next to the benchmarks, as
                             results_gpu.json and results_sdpa.json, then writes the tables
                             between the lesson READMEs' gpu-results markers
    gpu_report.py --check NN exits 1 unless lesson NN's README block is what its JSON files give

The C++ benchmarks write their JSON when given a path; the PyTorch scripts with --json.
Python 3 standard library only.
"""
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- gpu-results:begin -->", "<!-- gpu-results:end -->"
LESSONS = {
    "09": ("09_cuda_flash_attention", "bench_flash.json", "sdpa_09.json"),
    "10": ("10_cuda_gqa_decode", "bench_decode.json", "sdpa_10.json"),
}
KERNEL_NAMES = {"flash f32": "fused, float32 (09.1-09.3)", "flash fp16 wmma": "fused, half, tensor cores (09.4-09.6)",
                "cuBLAS f32 (unfused)": "cuBLAS, unfused, float32", "cuBLAS fp16 (unfused)": "cuBLAS, unfused, half",
                "gqa_decode": "lesson 10 kernels", "cublas_f32": "cuBLAS, unfused, float32"}


def render_09(bench, sdpa):
    """Lesson 09's block: TFLOP/s of every kernel, and the ratio to SDPA in the same precision."""
    sdpa_rows = {(r["dtype"], r["d"], r["causal"]): r for r in (sdpa or {}).get("rows", [])}
    first = bench["rows"][0]
    out = [f"Measured by `tools/gpu_check.sh` on an {bench['device']} ({bench['sms']} SMs; device-to-device "
           f"copy {bench['copy_gbs']:.0f} GB/s, read + write), $B = {first['b']}$, $H = {first['h']}$, "
           f"$G = {first['g']}$, $T = {first['t']}$; the median of 50 runs, L2 flushed before each. TFLOP/s count "
           f"$4 B H P D$ for the $P$ visible (query, key) pairs."
           + (f" PyTorch {sdpa['torch']}'s `scaled_dot_product_attention` ran on the same GPU." if sdpa else ""),
           "",
           "| kernel | D | causal | ms | TFLOP/s | SDPA (backend) TFLOP/s | ratio to SDPA |",
           "|---|---:|:---:|---:|---:|---|---:|"]
    for r in bench["rows"]:
        dtype = "float16" if ("fp16" in r["kernel"]) else "float32"
        s = sdpa_rows.get((dtype, r["d"], r["causal"]))
        base = f"{s['tflops']:.1f} ({dtype}, {s['backend']})" if s else "not measured"
        ratio = f"{r['tflops'] / s['tflops']:.2f}" if s else "-"
        out.append(f"| {KERNEL_NAMES.get(r['kernel'], r['kernel'])} | {r['d']} | {'yes' if r['causal'] else 'no'} | "
                   f"{r['ms']:.3f} | {r['tflops']:.1f} | {base} | {ratio} |")
    return out


def render_10(bench, sdpa):
    """Lesson 10's block: GB/s of the cache read per step, as a share of the copy bandwidth."""
    copy = bench["copy_gbs"]
    first = bench["rows"][0]
    out = [f"Measured by `tools/gpu_check.sh` on an {bench['device']} ({bench['sms']} SMs; device-to-device "
           f"copy {copy:.0f} GB/s, read + write), one decode step, $B = {first['b']}$, $T = {first['t']}$, "
           f"$H = {first['h']}$, $D = {first['d']}$, float32 cache; GB/s count the cache's bytes read once per "
           "step; the median of 50 runs, L2 flushed before each.",
           "",
           "| kernel | cache | splits | ms | GB/s | % of copy |",
           "|---|---|---:|---:|---:|---:|"]
    best = {}
    for r in bench["rows"]:
        cache = "GQA, G = 8" if r["g"] < r["h"] else "MHA-expanded, G = H"
        splits = r["splits"] if r["kernel"] == "gqa_decode" else "-"
        out.append(f"| {KERNEL_NAMES.get(r['kernel'], r['kernel'])} | {cache} | {splits} | {r['ms']:.3f} | "
                   f"{r['gbs']:.0f} | {100 * r['gbs'] / copy:.1f}% |")
        if r["kernel"] == "gqa_decode":
            best[r["g"] < r["h"]] = min(best.get(r["g"] < r["h"], 1e30), r["ms"])
    for r in (sdpa or {}).get("rows", []):
        cache = "GQA, G = 8" if r["g"] < r["h"] else "MHA-expanded, G = H"
        out.append(f"| PyTorch SDPA, {r['dtype']} ({r['backend']}) | {cache} | - | {r['ms']:.3f} | {r['gbs']:.0f} | "
                   f"{100 * r['gbs'] / sdpa['copy_gbs']:.1f}% |")
    if True in best and False in best:
        out += ["", f"The GQA cache makes the step {best[False] / best[True]:.2f} times faster than the same "
                    "kernels on the MHA-expanded cache (the best split of each)."]
    return out


def block(nn):
    """The README block of lesson nn from its JSON files, or None if there are none."""
    folder = ROOT / "benchmarks" / LESSONS[nn][0]
    gpu, sdpa = folder / "results_gpu.json", folder / "results_sdpa.json"
    if not gpu.exists():
        return None
    bench = json.loads(gpu.read_text())
    base = json.loads(sdpa.read_text()) if sdpa.exists() else None
    return "\n".join((render_09 if nn == "09" else render_10)(bench, base))


def replace_block(text, new):
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{new}\n{END}{tail}"


def main(argv):
    check = "--check" in argv
    lessons = [a for a in argv if a in LESSONS] if check else list(LESSONS)
    if not check:
        if len(argv) != 1:
            sys.exit(__doc__)
        source = Path(argv[0])
        for nn, (folder, bench_name, sdpa_name) in LESSONS.items():
            for name, target in ((bench_name, "results_gpu.json"), (sdpa_name, "results_sdpa.json")):
                if (source / name).exists():
                    shutil.copyfile(source / name, ROOT / "benchmarks" / folder / target)
    status = 0
    for nn in lessons:
        folder = LESSONS[nn][0]
        readme = ROOT / "lessons" / folder / "README.md"
        text = readme.read_text()
        new = block(nn)
        if new is None:
            continue
        updated = replace_block(text, new)
        if check:
            if updated != text:
                print(f"{readme.relative_to(ROOT)}: the block between the gpu-results markers is not what "
                      f"benchmarks/{folder}/results_*.json give: run python3 benchmarks/gpu_report.py DIR")
                status = 1
        else:
            readme.write_text(updated)
            print(f"wrote the measured numbers into {readme.relative_to(ROOT)}")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
