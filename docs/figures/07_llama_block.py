#!/usr/bin/env python3
"""Draws docs/figures/07_llama_block.svg: one block of SmolLM2-135M, and the whole model.

Left: the whole decoder of lesson 07 for B = 1 and T new tokens (T = prompt length in
prefill, 1 in a decode step): token ids, the embedding lookup, 30 blocks, the final
RMSNorm and the output projection, which is the embedding transposed (tied weights).
Right: one pre-norm block. The residual stream x (T, 576) runs down the left edge and
takes two additions. The attention sublayer normalizes x, projects it to q (9 heads),
k and v (3 heads each), turns q and k with RoPE, appends k and v to the layer's KV
cache, and lets query head h read KV head h / (H/G) over the cached positions; the heads
are merged and projected by Wo. The feed-forward sublayer is SwiGLU. Grey notes name the
lesson that built each part; the group colours are those of 03_head_groups.svg.

Run: python3 docs/figures/07_llama_block.py   (standard library only)
"""
from pathlib import Path

# SmolLM2-135M
D_MODEL, D_FF, VOCAB, LAYERS = 576, 1536, 49152, 30
H, G, HEAD_DIM = 9, 3, 64
ROPE_BASE = 100000

WIDTH, HEIGHT = 1000, 834
FONT = "font-family='DejaVu Sans, Helvetica, Arial, sans-serif'"
# One colour per KV head (03_head_groups.py); a query head takes its KV head's colour.
COLOURS = ["#4c78a8", "#f58518", "#54a24b"]
TINTS = ["#c3d3e6", "#fcd9b3", "#c6e2c2"]   # the same, lighter: positions cached earlier
FREE = "#e6e6e6"
LINEAR = "#e8edf4"    # a weight matrix
NORM = "#ece6f2"      # RMSNorm
ELEMENT = "#fbeedd"   # element-wise work, lookups
NOTE = "#8a8a8a"
INK = "#222"

PANEL = (262, 64, 992, 820)   # the block: x0, y0, x1, y1
RX = 298                      # the residual stream's x


def text(x, y, s, size=12, anchor="middle", weight="normal", fill=INK, style="normal"):
    return (f"<text x='{x}' y='{y}' {FONT} font-size='{size}' text-anchor='{anchor}' "
            f"font-weight='{weight}' font-style='{style}' fill='{fill}'>{s}</text>")


def weight(sub, rest):
    """W with a subscript, then the rest of the label: weight("q", "576 → 576")."""
    return f"W<tspan dy='3' font-size='9'>{sub}</tspan><tspan dy='-3' dx='6'>{rest}</tspan>"


def note(x, y, s, anchor="start"):
    """A grey note naming the lesson that built a part."""
    return text(x, y, s, 11, anchor, fill=NOTE, style="italic")


def box(x, y, w, h, lines, fill=LINEAR, stroke="#555", width=1.0, dash=None, rx=5):
    """A rounded box with lines of text centred in it; each line is a string or (string, size, weight)."""
    d = f" stroke-dasharray='{dash}'" if dash else ""
    out = [f"<rect x='{x}' y='{y}' width='{w}' height='{h}' rx='{rx}' fill='{fill}' "
           f"stroke='{stroke}' stroke-width='{width}'{d}/>"]
    specs = [(s, 12, "normal") if isinstance(s, str) else s for s in lines]
    step = 15
    first = y + h / 2 - (len(specs) - 1) * step / 2 + 4
    for i, (s, size, weight) in enumerate(specs):
        out.append(text(x + w / 2, first + i * step, s, size, weight=weight))
    return out


def arrow(points, colour="#555", width=1.3, head=True):
    """A polyline through points, with an arrowhead at the last one."""
    d = " ".join(f"{'M' if i == 0 else 'L'} {x} {y}" for i, (x, y) in enumerate(points))
    m = " marker-end='url(#arrow)'" if head else ""
    return f"<path d='{d}' fill='none' stroke='{colour}' stroke-width='{width}'{m}/>"


def dot(x, y):
    return f"<circle cx='{x}' cy='{y}' r='3' fill='#555'/>"


def add(x, y, r=9):
    """A residual addition: a circle with a plus."""
    return [f"<circle cx='{x}' cy='{y}' r='{r}' fill='white' stroke='#333' stroke-width='1.4'/>",
            f"<line x1='{x - r + 3}' y1='{y}' x2='{x + r - 3}' y2='{y}' stroke='#333' stroke-width='1.4'/>",
            f"<line x1='{x}' y1='{y - r + 3}' x2='{x}' y2='{y + r - 3}' stroke='#333' stroke-width='1.4'/>"]


def whole_model(block_y0, block_y1):
    """The left column: ids to logits, with the block that the right panel opens up."""
    x, w = 16, 224
    cx = x + w / 2
    out = [text(x, 84, "the whole model", 14, "start", "bold")]
    out += box(x, 100, w, 30, ["token ids (T)"], fill="white")
    out.append(arrow([(cx, 130), (cx, 166)]))
    out += box(x, 166, w, 46, ["embedding lookup: row per id",
                               f"token_embd ({VOCAB} &#215; {D_MODEL})"], fill=ELEMENT)
    out.append(arrow([(cx, 212), (cx, block_y0)]))
    out.append(text(cx + 8, (212 + block_y0) / 2 + 4, f"x (T, {D_MODEL})", 12, "start", fill="#444"))
    out += box(x, block_y0, w, block_y1 - block_y0,
               [("block l", 13, "bold"), f"&#215; {LAYERS}, l = 0 &#8230; {LAYERS - 1}",
                f"x (T, {D_MODEL}) in and out"],
               fill="#fff7d6", stroke="#b08d00", width=1.6)
    # Zoom lines from the block to the panel that shows it.
    for (y_from, y_to) in ((block_y0, PANEL[1]), (block_y1, PANEL[3])):
        out.append(f"<line x1='{x + w}' y1='{y_from}' x2='{PANEL[0]}' y2='{y_to}' stroke='#b08d00' "
                   f"stroke-width='1' stroke-dasharray='4 3'/>")
    y = block_y1
    out.append(arrow([(cx, y), (cx, y + 44)]))
    out.append(text(cx + 8, y + 26, f"x (T, {D_MODEL})", 12, "start", fill="#444"))
    out += box(x, y + 44, w, 46, ["RMSNorm (final)", f"gain {D_MODEL}, &#949; = 1e-5"], fill=NORM)
    out.append(arrow([(cx, y + 90), (cx, y + 126)]))
    out += box(x, y + 126, w, 46, ["output = embedding&#7488; (tied)",
                                   f"{D_MODEL} &#215; {VOCAB}"], fill=LINEAR)
    out.append(arrow([(cx, y + 172), (cx, y + 208)]))
    out += box(x, y + 208, w, 30, [f"logits (T, {VOCAB})"], fill="white")
    out.append(note(x, y + 262, "lesson 07: RMSNorm, SwiGLU, the model"))
    return out


def projections(y):
    """RMSNorm of the attention sublayer, then Wq, Wk, Wv. Returns parts and column centres."""
    out = []
    nx, nw = 326, 250
    out.append(dot(RX, y + 19))
    out.append(arrow([(RX, y + 19), (nx, y + 19)]))
    out += box(nx, y, nw, 38, [f"RMSNorm: gain {D_MODEL}, &#949; = 1e-5"], fill=NORM)
    cols = [(326, 280, "q", D_MODEL, f"q: {H} heads &#215; (T, {HEAD_DIM})"),
            (640, 150, "k", G * HEAD_DIM, f"k: {G} heads &#215; (T, {HEAD_DIM})"),
            (816, 150, "v", G * HEAD_DIM, f"v: {G} heads &#215; (T, {HEAD_DIM})")]
    bus = y + 58
    py = y + 74
    centres = []
    out.append(arrow([(nx + nw / 2, y + 38), (nx + nw / 2, bus)], head=False))
    out.append(arrow([(cols[0][0] + cols[0][1] / 2, bus), (cols[-1][0] + cols[-1][1] / 2, bus)], head=False))
    out.append(dot(nx + nw / 2, bus))
    out.append(text(nx + nw / 2 + 6, bus - 6, f"(T, {D_MODEL})", 11, "start", fill="#444"))
    for x, w, name, n_out, shape in cols:
        c = x + w / 2
        centres.append(c)
        out.append(arrow([(c, bus), (c, py)]))
        out += box(x, py, w, 32, [weight(name, f"{D_MODEL} &#8594; {n_out}")])
        out.append(text(c, py + 50, shape, 11, fill="#444"))
    return out, centres, py + 58


def rope(y, centres):
    """RoPE on q and k; v passes by."""
    out = []
    x0, x1 = 326, 790
    for c in centres[:2]:
        out.append(arrow([(c, y - 20), (c, y)]))
    out += box(x0, y, x1 - x0, 30,
               [f"RoPE on q and k: adjacent pairs (2i, 2i+1), &#952; = {ROPE_BASE} (the model's base)"],
               fill=ELEMENT)
    out.append(note(x0 + 4, y + 46, "lesson 06: RoPE"))
    return out


def cache(x, y, w, h, centres, y_rope):
    """The layer's KV cache: K and V buffers of (G, capacity, D); the T new rows highlighted."""
    cap, length, new = 16, 7, 3          # drawn capacity, positions cached before, T new
    out = [f"<rect x='{x}' y='{y}' width='{w}' height='{h}' rx='6' fill='#fcfcfc' stroke='#555'/>",
           text(x + 12, y + 19, "KV cache, layer l", 13, "start", "bold"),
           text(x + 12, y + 35, f"K and V, each ({G}, capacity, {HEAD_DIM})", 12, "start"),
           note(x + w - 10, y + 19, "lesson 04: cache", "end")]
    # k enters from RoPE, v from its projection.
    out.append(arrow([(centres[1], y_rope + 30), (centres[1], y)]))
    out.append(text(centres[1] + 6, (y_rope + 30 + y) / 2 + 4, "k, after RoPE", 11, "start", fill="#444"))
    out.append(arrow([(centres[2], y_rope - 20), (centres[2], y)]))
    cw, ch = 16, 11
    gx = x + 40
    for b, (name, gy) in enumerate((("K", y + 52), ("V", y + 52 + G * (ch + 2) + 14))):
        out.append(text(gx - 12, gy + G * (ch + 2) / 2 + 4, name, 13, "end", "bold"))
        for g in range(G):
            for t in range(cap):
                fill = TINTS[g] if t < length else COLOURS[g] if t < length + new else FREE
                heavy = length <= t < length + new
                out.append(f"<rect x='{gx + t * cw}' y='{gy + g * (ch + 2)}' width='{cw - 2}' "
                           f"height='{ch}' fill='{fill}' stroke='{'#222' if heavy else 'white'}' "
                           f"stroke-width='{1.2 if heavy else 0.6}'/>")
        if b == 0:
            lx = gx + cap * cw + 6
            for g in range(G):
                out.append(text(lx, gy + g * (ch + 2) + ch - 1, f"kv{g}", 10, "start", fill=COLOURS[g]))
    by = y + 52 + 2 * G * (ch + 2) + 14 + 6
    a, b = gx + length * cw, gx + (length + new) * cw - 2
    out.append(f"<path d='M{a} {by} v5 h{b - a} v-5' fill='none' stroke='#222'/>")
    out.append(text((a + b) / 2, by + 18, "appended: T rows, positions p &#8722; T + 1 &#8230; p", 11))
    for i, s in enumerate(("tinted: positions 0 &#8230; p &#8722; T, from earlier steps",
                           "grey: free, up to capacity",
                           "keys are stored after RoPE")):
        out.append(text(gx, by + 36 + 15 * i, s, 11, "start", fill="#444"))
    return out


def attention(x, y, w, h, q_centre, y_rope, cache_x, cache_ky):
    """Grouped-query attention: query head h reads KV head h / (H/G)."""
    per = H // G
    out = [f"<rect x='{x}' y='{y}' width='{w}' height='{h}' rx='6' fill='#fcfcfc' stroke='#555'/>",
           text(x + 12, y + 19, "grouped-query attention", 13, "start", "bold"),
           note(x + w - 10, y + 19, "lesson 03: GQA", "end"),
           text(x + 12, y + 35, f"{H} query heads, {G} KV heads", 12, "start")]
    out.append(arrow([(q_centre, y_rope + 30), (q_centre, y)]))
    bw, gap = 26, 5
    qx0 = x + (w - (H * bw + (H - 1) * gap)) / 2
    qy, ky = y + 50, y + 112
    qx = [qx0 + i * (bw + gap) for i in range(H)]
    kx = [(qx[g * per] + qx[g * per + per - 1] + bw) / 2 - 17 for g in range(G)]
    for i in range(H):
        g = i // per
        out.append(f"<line x1='{qx[i] + bw / 2}' y1='{qy + 24}' x2='{kx[g] + 17}' y2='{ky}' "
                   f"stroke='{COLOURS[g]}' stroke-width='1.8'/>")
    for i in range(H):
        g = i // per
        out.append(f"<rect x='{qx[i]}' y='{qy}' width='{bw}' height='24' rx='4' "
                   f"fill='{COLOURS[g]}' stroke='#333'/>")
        out.append(text(qx[i] + bw / 2, qy + 16, f"q{i}", 11, fill="white"))
    for g in range(G):
        out.append(f"<rect x='{kx[g]}' y='{ky}' width='34' height='24' rx='4' "
                   f"fill='{COLOURS[g]}' stroke='#333'/>")
        out.append(text(kx[g] + 17, ky + 16, f"kv{g}", 11, fill="white"))
    # K and V of the cached positions flow in from the cache, in place.
    last = kx[-1] + 34
    out.append(arrow([(cache_x, cache_ky), (last + 4, cache_ky)], colour="#555"))
    lines = [f"query head h reads KV head h / (H/G), H/G = {per}",
             "causal over positions 0 &#8230; p:",
             "reads the cache in place",
             f"out: {H} heads &#215; (T, {HEAD_DIM})"]
    for i, s in enumerate(lines):
        out.append(text(x + 12, ky + 44 + 15 * i, s, 11, "start", fill="#444"))
    return out


def attention_out(y, gqa_bottom, add_y):
    """Merge the heads, project with Wo, add to the residual stream."""
    out = []
    mx, mw = 470, 150
    ox, ow = 326, 118
    out.append(arrow([(mx + mw / 2, gqa_bottom), (mx + mw / 2, y)]))
    out += box(mx, y, mw, 40, ["merge heads", f"(T, {D_MODEL})"], fill=ELEMENT)
    out.append(arrow([(mx, y + 20), (ox + ow, y + 20)]))
    out += box(ox, y, ow, 40, [weight("o", f"{D_MODEL} &#8594; {D_MODEL}")])
    out.append(arrow([(ox, y + 20), (RX + 10, add_y)]))
    out += add(RX, add_y)
    return out


def swiglu(y, add_y):
    """The feed-forward sublayer: RMSNorm, then SwiGLU."""
    out = []
    cy = y + 54
    out.append(dot(RX, cy))
    out.append(arrow([(RX, cy), (326, cy)]))
    out += box(326, cy - 21, 132, 42, ["RMSNorm", f"gain {D_MODEL}, &#949; = 1e-5"], fill=NORM)
    gx, gw = 500, 150
    out.append(arrow([(458, cy), (478, cy)], head=False))
    out.append(arrow([(478, cy - 24), (478, cy + 24)], head=False))
    out.append(dot(478, cy))
    for dy, name in ((-24, "gate"), (24, "up")):
        out.append(arrow([(478, cy + dy), (gx, cy + dy)]))
        out += box(gx, cy + dy - 16, gw, 32, [weight(name, f"{D_MODEL} &#8594; {D_FF}")])
    sx, sw = 698, 128
    for dy in (-24, 24):
        out.append(arrow([(gx + gw, cy + dy), (674, cy + dy), (674, cy + dy * 0.4), (sx, cy + dy * 0.4)]))
    out += box(sx, cy - 21, sw, 42, ["silu(gate) &#8857; up", f"(T, {D_FF})"], fill=ELEMENT)
    dx, dw = 852, 132
    out.append(arrow([(sx + sw, cy), (dx, cy)]))
    out += box(dx, cy - 16, dw, 32, [weight("down", f"{D_FF} &#8594; {D_MODEL}")])
    out.append(arrow([(dx + dw / 2, cy + 16), (dx + dw / 2, add_y), (RX + 10, add_y)]))
    out.append(text(dx - 90, add_y - 6, f"(T, {D_MODEL})", 11, fill="#444"))
    out += add(RX, add_y)
    out.append(text(326, y + 2, "SwiGLU feed-forward", 13, "start", "bold"))
    out.append(note(326 + 160, y + 2, "lesson 07: RMSNorm, SwiGLU, the model"))
    return out


def main():
    x0, y0, x1, y1 = PANEL
    parts = [text(16, 28, "One block of SmolLM2-135M, and the whole model", 17, "start", "bold"),
             text(16, 48, "B = 1, T new tokens (T = prompt length in prefill, 1 in a decode step); "
                  "p = position of the newest token", 12, "start", fill="#444")]
    parts.append(f"<rect x='{x0}' y='{y0}' width='{x1 - x0}' height='{y1 - y0}' rx='8' fill='none' "
                 f"stroke='#b08d00' stroke-width='1.2' stroke-dasharray='6 4'/>")
    parts.append(text(x0 + 12, y0 + 20, "one block l: pre-norm, two residual additions", 14, "start", "bold"))
    # The residual stream.
    top, bottom = y0 + 52, y1 - 14
    parts.append(text(RX, top - 6, f"x (T, {D_MODEL})", 12, "start", fill="#444"))
    parts.append(arrow([(RX, top), (RX, bottom)], colour="#333", width=2.2))
    parts.append(text(RX + 8, bottom - 4, f"x (T, {D_MODEL}) to block l + 1", 12, "start", fill="#444"))
    p, centres, y = projections(top + 14)
    parts += p
    y_rope = y + 20
    parts += rope(y_rope, centres)
    att_y = y_rope + 62
    cache_x, cache_w = 640, 344
    box_h = 228
    parts += cache(cache_x, att_y, cache_w, box_h, centres, y_rope)
    parts += attention(326, att_y, 300, box_h, centres[0], y_rope, cache_x, att_y + 124)
    out_y = att_y + box_h + 22
    parts += attention_out(out_y, att_y + box_h, out_y + 20)
    parts += swiglu(out_y + 58, bottom - 36)
    parts += whole_model(380, 470)
    defs = ("<defs><marker id='arrow' viewBox='0 0 10 10' refX='9' refY='5' markerWidth='7' "
            "markerHeight='7' orient='auto-start-reverse'><path d='M 0 0 L 10 5 L 0 10 z' "
            "fill='#555'/></marker></defs>")
    svg = (f"<svg xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' height='{HEIGHT}' "
           f"viewBox='0 0 {WIDTH} {HEIGHT}'>\n{defs}\n"
           f"<rect width='{WIDTH}' height='{HEIGHT}' fill='white'/>\n" + "\n".join(parts) + "\n</svg>\n")
    out = Path(__file__).with_suffix(".svg")
    out.write_text(svg)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
