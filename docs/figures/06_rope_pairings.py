#!/usr/bin/env python3
"""Draws docs/figures/06_rope_pairings.svg: the two pairings of RoPE for one head of
D = 8 channels, and the column permutation that links them.

Left: the half-split pairs (i, i + D/2) of Hugging Face transformers on top, the
adjacent pairs (2i, 2i + 1) of GGUF / llama.cpp below, and between them the arrows of
the permutation llama.cpp's converter applies to each head of Wq and Wk: column
i + s*D/2 goes to column 2i + s. Channels of the same colour form one pair and turn
by the same angle p * theta^(-2i/D). Right: one pair in its plane at positions
p = 0 ... 4 for the fastest frequency (omega_0 = 1 rad per position) and a slower one.

Run: python3 docs/figures/06_rope_pairings.py   (standard library only)
"""
import math
from pathlib import Path

D = 8
HALF = D // 2
BOX, GAP = 44, 12
X0 = 40
COLOURS = ["#4c78a8", "#f58518", "#54a24b", "#b279a2"]  # pair i = 0 ... 3
FONT = "font-family='DejaVu Sans, Helvetica, Arial, sans-serif'"


def box_x(j):
    return X0 + j * (BOX + GAP)


def text(x, y, s, size=12, anchor="start", weight="normal", fill="#222"):
    return (f"<text x='{x}' y='{y}' {FONT} font-size='{size}' text-anchor='{anchor}' "
            f"font-weight='{weight}' fill='{fill}'>{s}</text>")


def row(y, title, subtitle, pair_of, label_of):
    """D channel boxes coloured by pair; an arc under each pair joins its two channels."""
    out = [text(X0, y - 34, title, 14, weight="bold"), text(X0, y - 16, subtitle, 12, fill="#444")]
    for j in range(D):
        i = pair_of(j)
        out.append(f"<rect x='{box_x(j)}' y='{y}' width='{BOX}' height='{BOX}' rx='5' "
                   f"fill='{COLOURS[i]}' stroke='#333'/>")
        out.append(text(box_x(j) + BOX / 2, y + BOX / 2 + 5, label_of(j), 13, "middle", fill="white"))
        out.append(text(box_x(j) + BOX / 2, y + BOX + 15, f"col {j}", 10, "middle", fill="#666"))
    return out


def arcs(y, pairs, below=True):
    out = []
    for i, (a, b) in enumerate(pairs):
        xa, xb = box_x(a) + BOX / 2, box_x(b) + BOX / 2
        depth = 18 + 8 * abs(b - a)
        yy = y + BOX + 20 if below else y
        cy = yy + depth if below else yy - depth
        out.append(f"<path d='M {xa} {yy} Q {(xa + xb) / 2} {cy} {xb} {yy}' fill='none' "
                   f"stroke='{COLOURS[i]}' stroke-width='2.2'/>")
    return out


def rotation_panel(cx, cy, r):
    """A pair (x_a, x_b) = (1, 0) at positions 0..4, turned by p * omega radians."""
    out = [text(cx - r - 10, cy - r - 62, "one pair, turned by p &#183; &#969;&#7522;", 14, weight="bold"),
           text(cx - r - 10, cy - r - 44, "positions p = 0 ... 4; the angle between two", 12, fill="#444"),
           text(cx - r - 10, cy - r - 28, "positions depends only on their distance", 12, fill="#444"),
           f"<circle cx='{cx}' cy='{cy}' r='{r}' fill='none' stroke='#bbb'/>",
           f"<line x1='{cx - r - 12}' y1='{cy}' x2='{cx + r + 12}' y2='{cy}' stroke='#ccc'/>",
           f"<line x1='{cx}' y1='{cy + r + 12}' x2='{cx}' y2='{cy - r - 12}' stroke='#ccc'/>",
           text(cx + r + 14, cy + 4, "x&#8336;", 12), text(cx + 4, cy - r - 14, "x&#7495;", 12)]
    for omega, colour, label in ((1.0, COLOURS[0], "&#969;&#8320; = 1"), (0.1, COLOURS[1], "&#969;&#8321; = 0.1")):
        for p in range(5):
            a = p * omega
            x, y = cx + r * math.cos(a), cy - r * math.sin(a)  # counter-clockwise
            out.append(f"<line x1='{cx}' y1='{cy}' x2='{x:.1f}' y2='{y:.1f}' stroke='{colour}' "
                       f"stroke-width='{2.4 if p == 0 else 1.6}' opacity='{1.0 - 0.12 * p:.2f}'/>")
            out.append(f"<circle cx='{x:.1f}' cy='{y:.1f}' r='3.5' fill='{colour}'/>")
            if omega == 1.0 and p > 0:
                out.append(text(cx + (r + 14) * math.cos(a), cy - (r + 14) * math.sin(a) + 4, f"p={p}",
                                11, "middle", fill=colour))
        out.append(text(cx - r - 10, cy + r + 30 + (18 if omega < 1 else 0), label + " rad per position",
                        12, fill=colour))
    out.append(text(cx - r - 10, cy + r + 66, "(D = 4, &#952; = 100: &#969;&#7522; = &#952;^(-2i/D))", 11,
                    fill="#666"))
    return out


def main():
    parts = []
    top, bottom = 70, 340
    hs_pairs = [(i, i + HALF) for i in range(HALF)]
    adj_pairs = [(2 * i, 2 * i + 1) for i in range(HALF)]
    parts += row(top, "half-split pairs (i, i + D/2): Hugging Face transformers",
                 "rotate_half: channel i turns together with channel i + 4",
                 lambda j: j % HALF, lambda j: f"x{j}")
    parts += arcs(top, hs_pairs)
    # The permutation: half-split column i + s*D/2 -> adjacent column 2i + s.
    y1, y2 = top + BOX + 78, bottom - 58
    for i in range(HALF):
        for s in range(2):
            src, dst = i + s * HALF, 2 * i + s
            parts.append(f"<line x1='{box_x(src) + BOX / 2}' y1='{y1}' x2='{box_x(dst) + BOX / 2}' "
                         f"y2='{y2}' stroke='{COLOURS[i]}' stroke-width='1.8' "
                         f"marker-end='url(#arrow)'/>")
    parts.append(text(box_x(D - 1) + BOX + 10, (y1 + y2) / 2 - 6, "llama.cpp converter:", 12, fill="#444"))
    parts.append(text(box_x(D - 1) + BOX + 10, (y1 + y2) / 2 + 10, "column i + s&#183;D/2", 12, fill="#444"))
    parts.append(text(box_x(D - 1) + BOX + 10, (y1 + y2) / 2 + 26, "&#8594; column 2i + s", 12, fill="#444"))
    parts += row(bottom, "adjacent pairs (2i, 2i + 1): GGUF, llama.cpp, Meta's Llama",
                 "the same pairs after the permutation: each cell shows which x it holds",
                 lambda j: j // 2, lambda j: f"x{(j % 2) * HALF + j // 2}")
    parts += arcs(bottom, adj_pairs)
    parts += rotation_panel(860, 290, 95)
    width, height = 1040, 480
    defs = ("<defs><marker id='arrow' viewBox='0 0 10 10' refX='9' refY='5' markerWidth='7' "
            "markerHeight='7' orient='auto-start-reverse'><path d='M 0 0 L 10 5 L 0 10 z' "
            "fill='#555'/></marker></defs>")
    svg = (f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
           f"viewBox='0 0 {width} {height}'>\n{defs}\n"
           f"<rect width='{width}' height='{height}' fill='white'/>\n" + "\n".join(parts) + "\n</svg>\n")
    out = Path(__file__).with_suffix(".svg")
    out.write_text(svg)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
