#!/usr/bin/env python3
"""Lesson 07's benchmark report: plots and the README's numbers, from results.json.

    report.py            draws model_speedup.png and model_kv_bytes.png with gnuplot and writes the
                         tables between the README's result markers
    report.py --check    exits 1 unless the README's marked block is exactly what
                         results.json gives (a CTest test, label `bench`)

results.json is written by bench_model (benchmarks/07_real_model/run.sh runs both).
Python 3 standard library only; gnuplot (Debian: gnuplot-nox) for the plots.
"""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LESSON = ROOT / "lessons" / "07_real_model"
RESULTS = LESSON / "results.json"
README = LESSON / "README.md"
BEGIN = "<!-- results:begin -->"
END = "<!-- results:end -->"
MiB = 2**20


def render(r):
    """The README's block of results, as Markdown."""
    mach, m, gen, dec = r["machine"], r["model"], r["generation"], r["decode"]
    out = [
        f"Measured by `benchmarks/07_real_model/run.sh` on {mach['cpu']} ({mach['cores']} cores, "
        f"a shared virtual machine); OpenBLAS on {mach['blas_threads']} threads, everything else "
        f"on one; load average {r['load_average_at_start']:.2f} at the start and "
        f"{r['load_average_at_end']:.2f} at the end; the whole run took {r['total_seconds'] / 60:.0f} "
        f"minutes. Weights dequantized to float32 ({m['parameters'] / 1e6:.1f} M parameters, "
        f"loaded in {m['load_seconds']:.1f} s). One timed run per row: the uncached runs take minutes.",
        "",
        f"Greedy generation after a {gen['prompt_tokens']}-token prompt (the start of GPL-3):",
        "",
        "| new tokens | uncached (s) | cached (s) | speedup |",
        "|---:|---:|---:|---:|",
    ]
    for n, u, c in zip(gen["new_tokens"], gen["uncached_seconds"], gen["cached_seconds"]):
        out.append(f"| {n:.0f} | {u:.1f} | {c:.2f} | {u / c:.1f}x |")
    out.append("")
    out.append("Cached and uncached generation gave the same tokens at every length: "
               + ("**yes**." if gen["same_tokens"] else "**NO**."))
    out.append("")
    out.append("| model | KV heads G | KV cache per token | at 2048 tokens | perplexity of GPL-3 | change |")
    out.append("|---|---:|---:|---:|---:|---:|")
    for v in r["variants"]:
        out.append(
            f"| {v['name']} | {v['kv_heads']} | {v['kv_bytes_per_token']} B ({v['kv_bytes_per_token'] / 1024:.0f} KiB) "
            f"| {v['kv_bytes_2048'] / MiB:.0f} MiB | {v['ppl']:.4f} ± {v['ppl_error']:.4f} "
            f"| {v['ppl_drift_percent']:+.1f} % |")
    nat = r["variants"][0]
    out.append("")
    out.append(f"Perplexity by the protocol of section 8: {nat['chunks']} chunks of 512 tokens, "
               f"{nat['scored']} tokens scored.")
    out.append("")
    out.append(
        f"Decode, one token per step (median of the steps), against the bandwidth floor: the "
        f"bytes a step must read ({dec['weight_bytes'] / 1e6:.0f} MB of float32 weights, plus the "
        f"cache) over the copy bandwidth measured by the same program, "
        f"{dec['copy_bandwidth_gbs']:.1f} GB/s (bytes read plus written; 1 GB = 1000³ bytes):")
    out.append("")
    out.append("| context | ms per token | tokens/s | bytes read per step | floor (ms) | % of the floor |")
    out.append("|---:|---:|---:|---:|---:|---:|")
    for p in dec["points"]:
        out.append(f"| {p['context']} | {1e3 * p['median_seconds']:.1f} | {p['tokens_per_second']:.1f} "
                   f"| {p['bytes_read'] / 1e6:.0f} MB | {1e3 * p['floor_seconds']:.1f} "
                   f"| {p['percent_of_floor']:.0f} % |")
    return "\n".join(out)


def readme_block(text):
    if BEGIN not in text or END not in text:
        sys.exit(f"{README}: the markers {BEGIN} and {END} are missing")
    return text.index(BEGIN) + len(BEGIN), text.index(END)


def gnuplot(script):
    subprocess.run(["gnuplot"], input=script, text=True, check=True)


def plots(r):
    term = "set terminal pngcairo size 720,440 font 'sans,11'\n"
    gen = r["generation"]
    pts = "\n".join(f"{n:.0f} {u / c}" for n, u, c in
                    zip(gen["new_tokens"], gen["uncached_seconds"], gen["cached_seconds"]))
    gnuplot(term + f"""$s << EOD
{pts}
EOD
set output '{LESSON / "model_speedup.png"}'
set title 'SmolLM2-135M: cached over uncached greedy generation, prompt {gen["prompt_tokens"]} tokens'
set xlabel 'generated tokens'
set ylabel 'speedup (uncached time / cached time)'
set grid
set key off
set xrange [0:*]
set yrange [0:*]
plot $s using 1:2 with linespoints lw 2 pt 7 lc rgb '#3b6ea8', $s using 1:2:(sprintf('%.1fx', $2)) with labels offset 0,1
""")
    rows = "\n".join(f"\"{v['name']}, G = {v['kv_heads']}\" {v['kv_bytes_per_token'] / 1024}"
                     for v in r["variants"])
    top = 1.25 * max(v["kv_bytes_per_token"] for v in r["variants"]) / 1024
    gnuplot(term + f"""$kv << EOD
{rows}
EOD
set output '{LESSON / "model_kv_bytes.png"}'
set title 'SmolLM2-135M: KV cache per token, 30 layers, head dim 64, float32'
set ylabel 'KiB per token'
set style fill solid 0.7 border -1
set boxwidth 0.6
set grid ytics
set yrange [0:{top}]
set key off
plot $kv using 0:2:xtic(1) with boxes lc rgb '#3b6ea8', $kv using 0:2:(sprintf('%g KiB', $2)) with labels offset 0,1
""")


def main():
    r = json.loads(RESULTS.read_text())
    block = "\n" + render(r) + "\n"
    text = README.read_text()
    start, end = readme_block(text)
    if "--check" in sys.argv[1:]:
        if text[start:end] != block:
            sys.exit(f"{README}: the numbers between {BEGIN} and {END} are not those of "
                     f"{RESULTS}; run benchmarks/07_real_model/report.py")
        print("README numbers equal results.json")
        return
    if r.get("quick"):
        sys.exit("results.json comes from a --quick run: run the full benchmark first")
    plots(r)
    README.write_text(text[:start] + block + text[end:])
    print(f"wrote {README.relative_to(ROOT)}, model_speedup.png, model_kv_bytes.png")


if __name__ == "__main__":
    main()
