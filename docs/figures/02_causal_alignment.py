#!/usr/bin/env python3
"""Draws docs/figures/02_causal_alignment.svg: the causal mask for Tq = 3 queries
and Tk = 5 keys, aligned bottom-right (q_offset = Tk - Tq, this tutorial and
FlashAttention) and top-left (PyTorch's is_causal), and the mask of one decode
query with the right offset and with an offset one too small.

Run: python3 docs/figures/02_causal_alignment.py   (standard library only)
"""
from pathlib import Path

CELL = 34          # side of one mask entry, in pixels
ALLOWED = "#4c78a8"
MASKED = "#f2f2f2"
WRONG = "#e45756"  # an entry that differs from the correct mask
FONT = "font-family='DejaVu Sans, Helvetica, Arial, sans-serif'"


def mask(tq, tk, q_offset):
    """m[i][j] is True iff query row i (at position q_offset + i) may attend key j."""
    return [[j <= q_offset + i for j in range(tk)] for i in range(tq)]


def panel(x0, y0, title, subtitle, m, q_offset, reference=None):
    """One mask as a grid, rows labelled with absolute positions. Entries that
    differ from `reference` are drawn in red."""
    tq, tk = len(m), len(m[0])
    out = [f"<text x='{x0}' y='{y0}' {FONT} font-size='15' font-weight='bold'>{title}</text>",
           f"<text x='{x0}' y='{y0 + 19}' {FONT} font-size='12' fill='#444'>{subtitle}</text>"]
    gx, gy = x0 + 92, y0 + 52
    for j in range(tk):
        out.append(f"<text x='{gx + j * CELL + CELL / 2}' y='{gy - 7}' {FONT} font-size='11' "
                   f"text-anchor='middle' fill='#444'>k{j}</text>")
    for i in range(tq):
        out.append(f"<text x='{gx - 8}' y='{gy + i * CELL + CELL / 2 + 4}' {FONT} font-size='11' "
                   f"text-anchor='end' fill='#444'>row {i}, pos {q_offset + i}</text>")
        for j in range(tk):
            wrong = reference is not None and m[i][j] != reference[i][j]
            fill = WRONG if wrong else (ALLOWED if m[i][j] else MASKED)
            out.append(f"<rect x='{gx + j * CELL}' y='{gy + i * CELL}' width='{CELL}' height='{CELL}' "
                       f"fill='{fill}' stroke='#999' stroke-width='1'/>")
            if not m[i][j]:
                out.append(f"<text x='{gx + j * CELL + CELL / 2}' y='{gy + i * CELL + CELL / 2 + 4}' "
                           f"{FONT} font-size='11' text-anchor='middle' fill='#888'>-inf</text>")
    return out


def main():
    tq, tk = 3, 5
    bottom_right = mask(tq, tk, tk - tq)
    top_left = mask(tq, tk, 0)
    decode = mask(1, tk, tk - 1)
    decode_wrong = mask(1, tk, tk - 2)

    parts = []
    parts += panel(10, 24, "bottom-right: q_offset = Tk - Tq = 2",
                   "this tutorial and FlashAttention", bottom_right, 2)
    parts += panel(430, 24, "top-left: PyTorch is_causal (q_offset = 0)",
                   "red: entries that differ from the left panel", top_left, 0, bottom_right)
    parts += panel(10, 200, "decode: Tq = 1, q_offset = Tk - 1 = 4",
                   "the newest token sees keys 0 ... 4, itself included", decode, 4)
    parts += panel(430, 200, "off by one: q_offset = 3",
                   "red: the query misses its own key", decode_wrong, 3, decode)
    legend_y = 306
    parts += [
        f"<rect x='10' y='{legend_y}' width='14' height='14' fill='{ALLOWED}'/>",
        f"<text x='30' y='{legend_y + 12}' {FONT} font-size='12'>may attend: j &lt;= q_offset + i</text>",
        f"<rect x='240' y='{legend_y}' width='14' height='14' fill='{MASKED}' stroke='#999'/>",
        f"<text x='260' y='{legend_y + 12}' {FONT} font-size='12'>masked: logit set to -inf, weight exactly 0</text>",
        f"<rect x='560' y='{legend_y}' width='14' height='14' fill='{WRONG}'/>",
        f"<text x='580' y='{legend_y + 12}' {FONT} font-size='12'>differs from the correct mask</text>",
    ]
    width, height = 830, legend_y + 26
    svg = (f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
           f"viewBox='0 0 {width} {height}'>\n"
           f"<rect width='{width}' height='{height}' fill='white'/>\n" + "\n".join(parts) + "\n</svg>\n")
    out = Path(__file__).with_suffix(".svg")
    out.write_text(svg)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
