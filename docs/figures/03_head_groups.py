#!/usr/bin/env python3
"""Draws docs/figures/03_head_groups.svg: which key/value head each of H = 9 query
heads reads. Multi-head attention (G = H = 9), grouped-query attention with G = 3
(SmolLM2-135M's shape) in repeat_interleave order, the same G = 3 in the wrong tile
order, and multi-query attention (G = 1).

Run: python3 docs/figures/03_head_groups.py   (standard library only)
"""
from pathlib import Path

H = 9
BOX_W, BOX_H, GAP = 40, 28, 10      # one head, in pixels
PANEL_W, PANEL_H = 520, 205
# One colour per KV head; a query head takes the colour of the KV head it reads.
COLOURS = ["#4c78a8", "#f58518", "#54a24b", "#b279a2", "#9d755d",
           "#72b7b2", "#eeca3b", "#ff9da6", "#bab0ac"]
WRONG = "#e45756"
FONT = "font-family='DejaVu Sans, Helvetica, Arial, sans-serif'"


def interleave(h, g):
    """KV head read by query head h: h / (H/G), PyTorch enable_gqa, HF repeat_kv, llama2.c."""
    return h // (H // g)


def tile(h, g):
    """The wrong mapping: h mod G, what tiling the KV heads (torch.repeat) would give."""
    return h % g


def panel(x0, y0, title, subtitle, g, mapping, reference=None):
    """Query heads on top, KV heads below, a line from each query head to the KV head
    it reads. Lines (and query heads) that differ from `reference` are red."""
    out = [f"<text x='{x0}' y='{y0}' {FONT} font-size='15' font-weight='bold'>{title}</text>",
           f"<text x='{x0}' y='{y0 + 19}' {FONT} font-size='12' fill='#444'>{subtitle}</text>"]
    qy, ky = y0 + 50, y0 + 140
    qx = [x0 + 70 + h * (BOX_W + GAP) for h in range(H)]
    # KV heads spread under the query heads they serve in the correct order.
    kx = []
    for kv in range(g):
        first, last = kv * (H // g), (kv + 1) * (H // g) - 1
        centre = (qx[first] + qx[last] + BOX_W) / 2
        kx.append(centre - BOX_W / 2)
    out.append(f"<text x='{x0}' y='{qy + BOX_H / 2 + 4}' {FONT} font-size='12' fill='#444'>"
               f"query</text>")
    out.append(f"<text x='{x0}' y='{ky + BOX_H / 2 + 4}' {FONT} font-size='12' fill='#444'>"
               f"key/value</text>")
    for h in range(H):
        kv = mapping(h, g)
        wrong = reference is not None and kv != reference(h, g)
        stroke = WRONG if wrong else COLOURS[kv]
        out.append(f"<line x1='{qx[h] + BOX_W / 2}' y1='{qy + BOX_H}' x2='{kx[kv] + BOX_W / 2}' "
                   f"y2='{ky}' stroke='{stroke}' stroke-width='{2.5 if wrong else 1.8}'/>")
    for h in range(H):
        kv = mapping(h, g)
        wrong = reference is not None and kv != reference(h, g)
        out.append(f"<rect x='{qx[h]}' y='{qy}' width='{BOX_W}' height='{BOX_H}' rx='4' "
                   f"fill='{COLOURS[kv]}' stroke='{WRONG if wrong else '#333'}' "
                   f"stroke-width='{3 if wrong else 1}'/>")
        out.append(f"<text x='{qx[h] + BOX_W / 2}' y='{qy + BOX_H / 2 + 4}' {FONT} font-size='12' "
                   f"text-anchor='middle' fill='white'>q{h}</text>")
    for kv in range(g):
        out.append(f"<rect x='{kx[kv]}' y='{ky}' width='{BOX_W}' height='{BOX_H}' rx='4' "
                   f"fill='{COLOURS[kv]}' stroke='#333'/>")
        out.append(f"<text x='{kx[kv] + BOX_W / 2}' y='{ky + BOX_H / 2 + 4}' {FONT} font-size='12' "
                   f"text-anchor='middle' fill='white'>kv{kv}</text>")
    return out


def main():
    wrong = sum(tile(h, 3) != interleave(h, 3) for h in range(H))
    parts = []
    parts += panel(10, 24, "MHA: G = H = 9", "every query head has its own K and V; cache 9/9",
                   H, interleave)
    parts += panel(10 + PANEL_W, 24, "MQA: G = 1", "all query heads share one K and V; cache 1/9",
                   1, interleave)
    parts += panel(10, 24 + PANEL_H, "GQA: G = 3, head h reads kv h / (H/G)",
                   "repeat_interleave order 0 0 0 1 1 1 2 2 2; cache 3/9", 3, interleave)
    parts += panel(10 + PANEL_W, 24 + PANEL_H, "wrong: tile order, head h reads kv h mod G",
                   f"0 1 2 0 1 2 0 1 2; red: {wrong} of {H} heads read another group's K and V", 3, tile,
                   interleave)
    width, height = 2 * PANEL_W + 10, 2 * PANEL_H + 20
    svg = (f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
           f"viewBox='0 0 {width} {height}'>\n"
           f"<rect width='{width}' height='{height}' fill='white'/>\n" + "\n".join(parts) + "\n</svg>\n")
    out = Path(__file__).with_suffix(".svg")
    out.write_text(svg)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
