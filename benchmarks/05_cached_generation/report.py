#!/usr/bin/env python3
"""Lesson 05's benchmark report: plots and the README's numbers, from results.json.

    report.py            draws speedup.png, kv_bytes.png and decode_time.png with gnuplot
                         and writes the tables between the README's result markers
    report.py --check    exits 1 unless the README's marked block is exactly what
                         results.json gives (a CTest test, label `bench`)

Python 3 standard library only; gnuplot (Debian: gnuplot-nox) for the plots.
"""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LESSON = ROOT / "lessons" / "05_cached_generation"
RESULTS = LESSON / "results.json"
README = LESSON / "README.md"
BEGIN = "<!-- results:begin -->"
END = "<!-- results:end -->"
NAMES = {8: "MHA", 2: "GQA", 1: "MQA"}


def variant(g, h=8):
    name = "MHA" if g == h else "MQA" if g == 1 else "GQA"
    return f"{name} (G = {g})"


def sig(x, digits=3):
    """x with `digits` significant digits, without exponent for the sizes used here."""
    if x == 0:
        return "0"
    s = f"{x:.{digits}g}"
    if "e" in s:
        s = f"{x:.{max(0, digits - 1)}f}"
    return s


def render(r):
    """The README's block of results, as Markdown."""
    m, mach, bw = r["model"], r["machine"], r["bandwidth"]
    h = m["n_heads"]
    out = []
    out.append(
        f"Measured by `benchmarks/05_cached_generation/run.sh` on {mach['cpu']} "
        f"({mach['logical_cpus']} logical CPUs, a virtual machine), {mach['threads_used']} thread, "
        f"last-level cache {mach['l3_bytes'] // 2**20} MiB, {mach['compiler']} at -O2; "
        f"load average {mach['load_average_at_start']:.2f} at the start and "
        f"{mach['load_average_at_end']:.2f} at the end; the whole run took "
        f"{r['total_seconds']:.0f} s. Model: d_model {m['d_model']}, {h} query heads of "
        f"{m['head_dim']}, {m['n_layers']} layers, {m['mlp']} MLP of {m['d_ff']}, vocabulary "
        f"{m['vocab']}, batch {m['batch']}, prompt {m['prompt_tokens']} tokens, greedy.")
    out.append("")
    out.append("Times are wall-clock seconds and, in brackets, the thread's CPU seconds (which "
               "leave out the time the run waited for a processor on the shared machine).")
    out.append("")
    out.append("| variant | generated tokens | uncached (s) | cached (s) | speedup | speedup in CPU time | runs (uncached, cached) | same tokens |")
    out.append("|---|---:|---:|---:|---:|---:|---|---|")
    for row in r["generation"]:
        out.append(
            f"| {variant(row['kv_heads'], h)} | {row['new_tokens']} | {sig(row['uncached_s'])} "
            f"({sig(row['uncached_cpu_s'])}) | {sig(row['cached_s'])} ({sig(row['cached_cpu_s'])}) | "
            f"{row['speedup']:.1f}x | {row['speedup_cpu']:.1f}x | {row['uncached_runs']}, "
            f"{row['cached_runs']} | {'yes' if row['same_tokens'] else 'NO'} |")
    out.append("")
    out.append(
        f"Largest difference between cached and uncached logits (prefill and 32 decode steps, "
        f"every variant), relative to the largest logit: "
        f"{r['max_logit_difference_relative']:.1e}.")
    out.append("")
    series = r["decode_step"]["series"]
    if series:
        first = series[0]["first_context"]
        n = len(series[0]["seconds"])
        width = max(1, n // 8)  # steps per window
        windows = [(a, min(n, a + width)) for a in range(0, n, max(1, n // 4))][:4]
        windows.append((n - width, n))

        def median(xs):
            xs = sorted(xs)
            return xs[len(xs) // 2]

        out.append(f"Time of one decode step (ms of {r['decode_step']['clock']}; each step the "
                   f"median of {r['decode_step']['runs']} runs, each cell the median of the "
                   f"{width} steps of a window of contexts):")
        out.append("")
        out.append("| variant | " + " | ".join(f"context {first + a} to {first + b - 1}"
                                            for a, b in windows) + " |")
        out.append("|---|" + "---:|" * len(windows))
        for s in series:
            out.append(f"| {variant(s['kv_heads'], h)} | "
                       + " | ".join(f"{1e3 * median(s['seconds'][a:b]):.2f}" for a, b in windows)
                       + " |")
        out.append("")
    out.append("| variant | KV bytes per token (all layers, float32) | relative to MHA |")
    out.append("|---|---:|---:|")
    kv = r["kv_bytes_per_token"]
    mha = max(k["bytes"] for k in kv) if kv else 1
    for k in kv:
        out.append(f"| {variant(k['kv_heads'], h)} | {k['bytes']:.0f} | {k['bytes'] / mha:.3g} |")
    out.append("")
    gib = 2**30
    out.append(
        f"Decode attention, one query per head, batch {bw['batch']}, {bw['n_heads']} query heads "
        f"of {bw['head_dim']}, context {bw['context']} tokens; memory bandwidth measured by a "
        f"copy of {bw['copy_bytes'] // 2**20} MiB: {bw['copy_bytes_per_s'] / gib:.2f} GiB/s "
        f"(bytes read plus bytes written). Group-streaming build: {bw['streaming_build']}.")
    out.append("")
    out.append("| path | cache | K+V read per step (MiB) | time per step (ms) | thread CPU time (ms) | GiB/s | % of copy bandwidth |")
    out.append("|---|---|---:|---:|---:|---:|---:|")
    for row in bw["rows"]:
        out.append(
            f"| `{row['path']}` | {variant(row['kv_heads'], h)} | {row['kv_bytes'] / 2**20:.0f} | "
            f"{1e3 * row['seconds']:.1f} | {1e3 * row['thread_cpu_seconds']:.1f} | "
            f"{row['bytes_per_s'] / gib:.2f} | {row['percent_of_copy']:.0f}% |")
    out.append("")
    wall = {(row["path"], row["kv_heads"]): row["seconds"] for row in bw["rows"]}
    cpu = {(row["path"], row["kv_heads"]): row["thread_cpu_seconds"] for row in bw["rows"]}
    g = bw["gqa_kv_heads"]
    parts = []
    for path in sorted({row["path"] for row in bw["rows"]}, reverse=True):
        if (path, g) in wall and (path, h) in wall:
            parts.append(f"`{path}` {wall[(path, h)] / wall[(path, g)]:.2f}x "
                         f"({cpu[(path, h)] / cpu[(path, g)]:.2f}x in CPU time)")
    out.append(f"GQA (G = {g}) against the same cache expanded to MHA, time per step: "
               + ", ".join(parts) + f"; H/G = {h // g}.")
    return "\n".join(out)


def readme_block(text):
    if BEGIN not in text or END not in text:
        sys.exit(f"{README}: the markers {BEGIN} and {END} are missing")
    start = text.index(BEGIN) + len(BEGIN)
    return start, text.index(END)


def gnuplot(script):
    subprocess.run(["gnuplot"], input=script, text=True, check=True)


def plots(r):
    h = r["model"]["n_heads"]
    term = "set terminal pngcairo size 720,440 font 'sans,11'\n"
    lines, data = [], []
    for i, g in enumerate(sorted({row["kv_heads"] for row in r["generation"]}, reverse=True)):
        rows = [row for row in r["generation"] if row["kv_heads"] == g]
        data.append(f"$g{g} << EOD\n" + "\n".join(f"{row['new_tokens']} {row['speedup_cpu']}" for row in rows) + "\nEOD\n")
        lines.append(f"$g{g} using 1:2 with linespoints lw 2 pt {7 + i} title '{variant(g, h)}'")
    gnuplot(term + "".join(data) + f"""set output '{LESSON / "speedup.png"}'
set title 'Cached over uncached greedy generation, prompt {r["model"]["prompt_tokens"]} tokens'
set xlabel 'generated tokens'
set ylabel 'speedup (uncached / cached thread CPU time)'
set grid
set key top left
set xrange [0:*]
set yrange [0:*]
plot """ + ", ".join(lines) + "\n")

    kv = r["kv_bytes_per_token"]
    rows = "\n".join(f"\"{variant(k['kv_heads'], h)}\" {k['bytes'] / 1024}" for k in kv)
    top = 1.2 * max(k["bytes"] for k in kv) / 1024
    gnuplot(term + f"""$kv << EOD
{rows}
EOD
set output '{LESSON / "kv_bytes.png"}'
set title 'KV cache per token, {r["model"]["n_layers"]} layers, head dim {r["model"]["head_dim"]}, float32'
set ylabel 'KiB per token'
set style fill solid 0.7 border -1
set boxwidth 0.6
set grid ytics
set yrange [0:{top}]
set key off
plot $kv using 0:2:xtic(1) with boxes lc rgb '#3b6ea8', $kv using 0:2:(sprintf('%g KiB', $2)) with labels offset 0,1
""")

    series = r["decode_step"]["series"]
    if series:
        data, lines = [], []
        for i, s in enumerate(series):
            g = s["kv_heads"]
            pts = "\n".join(f"{s['first_context'] + k} {1e3 * t}" for k, t in enumerate(s["seconds"]))
            data.append(f"$d{g} << EOD\n{pts}\nEOD\n")
            lines.append(f"$d{g} using 1:2 with lines lw 2 title '{variant(g, h)}'")
        gnuplot(term + "".join(data) + f"""set output '{LESSON / "decode_time.png"}'
set title 'One decode step ({r["decode_step"]["clock"]}, median of {r["decode_step"]["runs"]} runs)'
set xlabel 'context (tokens in the cache after the step)'
set ylabel 'ms per generated token'
set grid
set key top left
set yrange [0:*]
plot """ + ", ".join(lines) + "\n")


def main():
    r = json.loads(RESULTS.read_text())
    block = "\n" + render(r) + "\n"
    text = README.read_text()
    start, end = readme_block(text)
    if "--check" in sys.argv[1:]:
        if text[start:end] != block:
            import difflib
            sys.stdout.writelines(difflib.unified_diff(
                text[start:end].splitlines(True), block.splitlines(True),
                "README.md (marked block)", "from results.json"))
            print(f"\n{README} does not show the numbers of {RESULTS};"
                  " run benchmarks/05_cached_generation/report.py to rewrite it")
            return 1
        if r.get("quick"):
            print(f"{RESULTS} comes from a --quick run; run benchmarks/05_cached_generation/run.sh")
            return 1
        print("README numbers equal results.json")
        return 0
    plots(r)
    README.write_text(text[:start] + block + text[end:])
    print(f"wrote {README.relative_to(ROOT)} and the plots next to it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
