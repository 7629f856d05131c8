#!/usr/bin/env python3
"""Draws docs/figures/10_gqa_decode.svg: lesson 10's decode kernel on one sequence.

The compact cache of one sequence holds G = 2 KV heads of T keys. Each KV head is cut
into `SPLITS` chunks of key tiles; block (s, g) loads the tiles of chunk s of KV head g
once into shared memory and its H/G = 3 warps (query heads g*3 .. g*3+2) all score
them. Each block leaves, per query head, a partial (o_s, m_s, l_s); the combine step
rescales them to the common maximum and divides.

Run: python3 docs/figures/10_gqa_decode.py   (standard library only)
"""
from pathlib import Path

G, REP, SPLITS, TILES = 2, 3, 3, 2      # KV heads, query heads per group, chunks, tiles per chunk
TILE_W, ROW_H = 46, 30
FONT = "font-family='DejaVu Sans, Helvetica, Arial, sans-serif'"
KV_COLORS = ["#4c78a8", "#f58518"]
Q_COLORS = ["#9ecae9", "#ffbf79"]


def text(x, y, s, size=12, anchor="middle", weight="normal", fill="#222"):
    return (f"<text x='{x}' y='{y}' {FONT} font-size='{size}' text-anchor='{anchor}' "
            f"font-weight='{weight}' fill='{fill}'>{s}</text>")


def rect(x, y, w, h, fill="none", stroke="#555", width=0.8, opacity=1.0, dash=None):
    d = f" stroke-dasharray='{dash}'" if dash else ""
    return (f"<rect x='{x}' y='{y}' width='{w}' height='{h}' fill='{fill}' fill-opacity='{opacity:.2f}' "
            f"stroke='{stroke}' stroke-width='{width}'{d}/>")


def main():
    x0, y0 = 150, 70
    chunk_w = TILES * TILE_W
    out = []
    out.append(text(x0 + SPLITS * chunk_w / 2, 30, "KV cache of one sequence, (G, T, D): keys left to right",
                    13, weight="bold"))
    for s in range(SPLITS):
        out.append(text(x0 + s * chunk_w + chunk_w / 2, y0 - 12, f"chunk s = {s}", 11))
    for g in range(G):
        y = y0 + g * (ROW_H * (REP + 1) + 30)
        out.append(text(x0 - 12, y + ROW_H / 2 + 4, f"KV head g = {g}", 11, anchor="end"))
        for s in range(SPLITS):
            for t in range(TILES):
                out.append(rect(x0 + s * chunk_w + t * TILE_W, y, TILE_W, ROW_H, KV_COLORS[g], "#fff", 1.5,
                                0.55 + 0.2 * t))
            # the block: this chunk's tiles, read once, shared by the group's warps
            bx, by = x0 + s * chunk_w + 3, y + ROW_H + 4
            out.append(rect(bx, by, chunk_w - 6, ROW_H * REP, "none", "#e45756", 1.6, dash="4 2"))
            for w in range(REP):
                out.append(rect(bx + 4, by + 3 + w * ROW_H, chunk_w - 14, ROW_H - 6, Q_COLORS[g], "#888", 0.6))
                out.append(text(bx + chunk_w / 2 - 3, by + w * ROW_H + ROW_H / 2 + 4,
                                f"warp {w}: head {g * REP + w}", 9))
        out.append(text(x0 - 12, y + ROW_H + 4 + ROW_H * REP / 2, f"blocks (s, {g})", 10, anchor="end",
                        fill="#e45756"))
    # combine
    cx = x0 + SPLITS * chunk_w + 40
    cy = y0 + 20
    h_total = G * (ROW_H * (REP + 1) + 30) - 30
    out.append(rect(cx, cy, 190, h_total - 40, "#f7f7f7", "#555", 1.0))
    out.append(text(cx + 95, cy + 24, "combine, per query head", 11, weight="bold"))
    lines = ["M = max over s of m_s", "o = sum e^(m_s - M) o_s", "divided by sum e^(m_s - M) l_s",
             "", "an empty chunk: m_s = -inf,", "weight 0"]
    for n, line in enumerate(lines):
        out.append(text(cx + 14, cy + 50 + 18 * n, line, 10, anchor="start"))
    for g in range(G):  # each group's partial results go to the combine
        ay = y0 + g * (ROW_H * (REP + 1) + 30) + ROW_H + 4 + ROW_H * REP / 2
        out.append(f"<line x1='{x0 + SPLITS * chunk_w + 2}' y1='{ay}' x2='{cx - 4}' y2='{ay}' stroke='#e45756' "
                   f"stroke-width='1.5' marker-end='url(#arrow)'/>")
    out.append(text(x0 + SPLITS * chunk_w / 2, y0 + h_total + 44,
                    "each block writes (o_s, m_s, l_s) for the H/G heads of its group", 10, fill="#555"))
    width, height = cx + 220, y0 + h_total + 70
    svg = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}'>",
           "<defs><marker id='arrow' markerWidth='8' markerHeight='8' refX='7' refY='4' orient='auto'>"
           "<path d='M0,0 L8,4 L0,8 z' fill='#e45756'/></marker></defs>",
           rect(0, 0, width, height, "#ffffff", "none", 0)] + out + ["</svg>"]
    path = Path(__file__).with_suffix(".svg")
    path.write_text("\n".join(svg) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
