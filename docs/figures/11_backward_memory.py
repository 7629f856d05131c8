#!/usr/bin/env python3
"""Draws docs/figures/11_backward_memory.svg: the peak extra allocation of one backward call
against the sequence length T, for the naive backward (it holds (T, T) matrices of one head)
and FlashAttention-2's backward (tiles only), on log-log axes, with the size of the results
(dQ, dK, dV) for reference.

The numbers are lessons/11_attention_backward/results.json, written by
benchmarks/11_attention_backward/bench_backward_memory (bytes counted by a replaced operator
new, the same on every machine with the same build):

    cmake --preset solutions
    cmake --build build/solutions --target bench_backward_memory
    build/solutions/benchmarks/11_attention_backward/bench_backward_memory lessons/11_attention_backward/results.json
    python3 docs/figures/11_backward_memory.py

Standard library only.
"""
import json
import math
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "lessons" / "11_attention_backward" / "results.json"
OUT = Path(__file__).with_suffix(".svg")
FONT = "font-family='DejaVu Sans, Helvetica, Arial, sans-serif'"
NAIVE, FLASH, RESULT = "#e45756", "#4c78a8", "#999999"
W, H = 700, 400
X0, Y0, X1, Y1 = 80, 40, 470, 340  # plot area


def mib(b):
    return b / 2**20


def main():
    r = json.loads(RESULTS.read_text())
    s = r["shape"]
    rows = r["rows"]
    ts = [row["t"] for row in rows]
    results = [(s["H"] + 2 * s["G"]) * t * s["D"] * 4 for t in ts]  # dQ, dK, dV in float32
    series = [("naive backward", NAIVE, [row["naive"] for row in rows]),
              ("FlashAttention-2 backward", FLASH, [row["flash"] for row in rows]),
              ("the results dQ, dK, dV", RESULT, results)]
    lo = math.floor(math.log10(mib(min(min(v) for _, _, v in series))))
    hi = math.ceil(math.log10(mib(max(max(v) for _, _, v in series))))
    tx = lambda t: X0 + (X1 - X0) * (math.log2(t) - math.log2(ts[0])) / (math.log2(ts[-1]) - math.log2(ts[0]))
    ty = lambda b: Y1 - (Y1 - Y0) * (math.log10(mib(b)) - lo) / (hi - lo)
    out = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{W}' height='{H}' viewBox='0 0 {W} {H}'>",
           f"<rect width='{W}' height='{H}' fill='white'/>",
           f"<text x='{X0}' y='22' {FONT} font-size='14' font-weight='bold'>Peak extra allocation of one backward call</text>"]
    for e in range(lo, hi + 1):
        y = Y1 - (Y1 - Y0) * (e - lo) / (hi - lo)
        label = f"{10 ** e:g} MiB" if e >= 0 else f"{10 ** e:.{-e}f} MiB"
        out.append(f"<line x1='{X0}' y1='{y:.1f}' x2='{X1}' y2='{y:.1f}' stroke='#e6e6e6'/>")
        out.append(f"<text x='{X0 - 6}' y='{y + 4:.1f}' {FONT} font-size='11' text-anchor='end' fill='#444'>{label}</text>")
    for t in ts:
        x = tx(t)
        out.append(f"<line x1='{x:.1f}' y1='{Y0}' x2='{x:.1f}' y2='{Y1}' stroke='#f0f0f0'/>")
        out.append(f"<text x='{x:.1f}' y='{Y1 + 16}' {FONT} font-size='11' text-anchor='middle' fill='#444'>{t}</text>")
    out.append(f"<text x='{(X0 + X1) / 2}' y='{Y1 + 34}' {FONT} font-size='12' text-anchor='middle'>sequence length T (Tq = Tk, causal)</text>")
    out.append(f"<rect x='{X0}' y='{Y0}' width='{X1 - X0}' height='{Y1 - Y0}' fill='none' stroke='#888'/>")
    for name, color, values in series:
        dash = " stroke-dasharray='5,4'" if color == RESULT else ""
        for (ta, ba), (tb, bb) in zip(zip(ts, values), zip(ts[1:], values[1:])):
            out.append(f"<line x1='{tx(ta):.1f}' y1='{ty(ba):.1f}' x2='{tx(tb):.1f}' y2='{ty(bb):.1f}' "
                       f"stroke='{color}' stroke-width='2.5'{dash}/>")
        for t, b in zip(ts, values):
            out.append(f"<circle cx='{tx(t):.1f}' cy='{ty(b):.1f}' r='3.5' fill='{color}'/>")
    ly = Y0 + 10
    for name, color, values in series:
        out.append(f"<line x1='{X1 + 14}' y1='{ly}' x2='{X1 + 38}' y2='{ly}' stroke='{color}' stroke-width='2.5'/>")
        out.append(f"<text x='{X1 + 44}' y='{ly + 4}' {FONT} font-size='11'>{name}</text>")
        out.append(f"<text x='{X1 + 44}' y='{ly + 18}' {FONT} font-size='10' fill='#555'>{mib(values[-1]):.1f} MiB at T = {ts[-1]}</text>")
        ly += 44
    out.append(f"<text x='{X1 + 14}' y='{ly + 8}' {FONT} font-size='10' fill='#555'>B = {s['B']}, H = {s['H']}, G = {s['G']},</text>")
    out.append(f"<text x='{X1 + 14}' y='{ly + 22}' {FONT} font-size='10' fill='#555'>D = {s['D']}, tiles of {s['tile']} rows;</text>")
    out.append(f"<text x='{X1 + 14}' y='{ly + 36}' {FONT} font-size='10' fill='#555'>slope 2 on these axes:</text>")
    out.append(f"<text x='{X1 + 14}' y='{ly + 50}' {FONT} font-size='10' fill='#555'>quadratic; slope 1: linear</text>")
    out.append("</svg>")
    OUT.write_text("\n".join(out) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
