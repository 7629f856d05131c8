#!/usr/bin/env python3
"""Draws docs/figures/04_cache_layout.svg: the KV cache of lesson 04.

Top: the K buffer of one (batch, KV head), capacity 12 positions of D floats, after a
prefill of 5 tokens, two decode steps, a chunk of 3 (length 10); the view keys() covers
the stored prefix, the next append writes at position length.
Middle: the whole buffer (B = 2, G = 2) in memory order: each (b, g) block holds the full
capacity, so the view of length positions skips the free slots of every block.
Bottom: the decode query at position length - 1 sees keys 0 ... length - 1, its own
included; a mask off by one drops the newest key.

Run: python3 docs/figures/04_cache_layout.py   (standard library only)
"""
from pathlib import Path

CAPACITY, D = 12, 4
APPENDS = [("prefill, Tn = 5", 5, "#4c78a8"), ("decode, Tn = 1", 1, "#f58518"),
           ("decode, Tn = 1", 1, "#54a24b"), ("chunk, Tn = 3", 3, "#b279a2")]
LENGTH = sum(n for _, n, _ in APPENDS)
FREE = "#e6e6e6"
WRONG = "#e45756"
FONT = "font-family='DejaVu Sans, Helvetica, Arial, sans-serif'"
CELL = 30          # one position, in pixels
WIDTH = 780


def text(x, y, s, size=12, anchor="start", fill="#222", weight="normal"):
    return (f"<text x='{x}' y='{y}' {FONT} font-size='{size}' text-anchor='{anchor}' "
            f"fill='{fill}' font-weight='{weight}'>{s}</text>")


def position_colours():
    """Colour of each position: the append that wrote it, or FREE."""
    colours = []
    for _, n, colour in APPENDS:
        colours += [colour] * n
    return colours + [FREE] * (CAPACITY - LENGTH)


def top(y0):
    x0 = 150
    out = [text(10, y0, "K buffer of one (b, g): capacity 12 positions x D floats, allocated once",
                15, weight="bold")]
    colours = position_colours()
    y = y0 + 30
    out.append(text(x0 - 10, y + D * 12 / 2 + 4, "D floats", anchor="end", fill="#444"))
    for t in range(CAPACITY):
        for c in range(D):
            out.append(f"<rect x='{x0 + t * CELL}' y='{y + c * 12}' width='{CELL - 2}' height='11' "
                       f"fill='{colours[t]}' stroke='#fff'/>")
        out.append(text(x0 + t * CELL + CELL / 2 - 1, y + D * 12 + 14, t, 11, "middle", "#444"))
    out.append(text(x0 - 10, y + D * 12 + 14, "position", 11, "end", "#444"))
    # The view keys(): positions 0 ... length - 1.
    by = y + D * 12 + 24
    out.append(f"<path d='M{x0} {by} v6 h{LENGTH * CELL - 2} v-6' fill='none' stroke='#222'/>")
    out.append(text(x0 + LENGTH * CELL / 2, by + 20,
                    f"keys(): a (B, G, length = {LENGTH}, D) view of the buffer, no copy", 12, "middle"))
    # The next append.
    nx = x0 + LENGTH * CELL + CELL / 2 - 1
    out.append(f"<line x1='{nx}' y1='{y - 18}' x2='{nx}' y2='{y - 3}' stroke='#222' "
               f"stroke-width='1.5' marker-end='url(#arrow)'/>")
    out.append(text(nx + 8, y - 10, "next append writes here: position length", 11))
    # Legend of the appends.
    lx, ly = 20, by + 48
    for label, n, colour in APPENDS + [(f"free: capacity - length = {CAPACITY - LENGTH}", 0, FREE)]:
        out.append(f"<rect x='{lx}' y='{ly - 10}' width='12' height='12' fill='{colour}'/>")
        out.append(text(lx + 16, ly, label, 11))
        lx += 16 + 6.5 * len(label) + 22
    return out, ly + 20


def middle(y0):
    b_count, g_count, small = 2, 2, 11
    x0 = 20
    out = [text(10, y0, "the whole K buffer, (B, G, capacity, D) = (2, 2, 12, 4), in memory order",
                15, weight="bold")]
    colours = position_colours()
    y = y0 + 20
    x = x0
    for b in range(b_count):
        for g in range(g_count):
            out.append(text(x + CAPACITY * small / 2, y + 30, f"b{b} g{g}", 11, "middle", "#444"))
            for t in range(CAPACITY):
                out.append(f"<rect x='{x + t * small}' y='{y}' width='{small - 1}' height='16' "
                           f"fill='{colours[t]}'/>")
            x += CAPACITY * small + 24
    out.append(text(10, y + 52, "A (b, g) block is contiguous: position j of it starts j x D floats in, "
                    "and the next block starts capacity x D floats later.", 12))
    out.append(text(10, y + 70, "The view reads the first length positions of every block and skips "
                    "the free ones; appending never moves a block.", 12))
    return out, y + 90


def bottom(y0):
    x0 = 260
    out = [text(10, y0, f"decode: the query at position length - 1 = {LENGTH - 1}", 15, weight="bold")]
    rows = [("right: sees keys 0 ... length - 1", LENGTH),
            ("wrong, off by one: misses its own key", LENGTH - 1)]
    y = y0 + 20
    for label, seen in rows:
        out.append(text(x0 - 10, y + 15, label, 12, "end", WRONG if seen < LENGTH else "#222"))
        for t in range(CAPACITY):
            missed = seen <= t < LENGTH
            fill = "#54a24b" if t < seen else ("#fff" if missed else FREE)
            stroke = f"stroke='{WRONG}' stroke-width='3'" if missed else "stroke='#999'"
            out.append(f"<rect x='{x0 + t * CELL}' y='{y}' width='{CELL - 2}' height='20' "
                       f"fill='{fill}' {stroke}/>")
        y += 28
    out.append(text(x0, y + 12, "grey: free slots past length, never read (their contents are stale "
                    "after reset)", 11, fill="#444"))
    return out, y + 24


def main():
    parts = ["<defs><marker id='arrow' viewBox='0 0 10 10' refX='9' refY='5' markerWidth='7' "
             "markerHeight='7' orient='auto'><path d='M0 0 L10 5 L0 10 z' fill='#222'/></marker></defs>"]
    y = 24
    for draw in (top, middle, bottom):
        part, y = draw(y)
        parts += part
        y += 26
    height = y
    svg = (f"<svg xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' height='{height}' "
           f"viewBox='0 0 {WIDTH} {height}'>\n"
           f"<rect width='{WIDTH}' height='{height}' fill='white'/>\n" + "\n".join(parts) + "\n</svg>\n")
    out = Path(__file__).with_suffix(".svg")
    out.write_text(svg)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
