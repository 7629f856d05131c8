#!/usr/bin/env python3
"""Draws docs/figures/09_flash_tiles.svg: the score matrix as the fused kernel of lesson 09 sees it.

Two panels of the same (Tq, Tk) score matrix, cut into query tiles (rows, one block
each) and key tiles (columns, one pass of the loop each). Left: no mask; every block
walks every key tile. Right: causal with the bottom-right alignment of lesson 02
(query row i at position q_offset + i); tiles right of the diagonal are never
loaded, tiles the diagonal crosses are loaded and masked element by element. One
block's row of tiles is outlined, with the running (m, l, o) it carries from tile
to tile. The scores themselves are never stored.

Run: python3 docs/figures/09_flash_tiles.py   (standard library only)
"""
from pathlib import Path

CELL = 9                    # one score, in pixels
BR, BC = 4, 6               # query rows per block, keys per key tile (drawn small)
TQ, TK = 19, 34             # odd sizes: partial tiles on both edges
Q_OFFSET = TK - TQ          # bottom-right alignment
HIGHLIGHT = 2               # the outlined block (query tile index)
FONT = "font-family='DejaVu Sans, Helvetica, Arial, sans-serif'"
FULL, PARTIAL, SKIPPED, HIDDEN = "#4c78a8", "#9ecae9", "#f2f2f2", "#d9d9d9"


def text(x, y, s, size=12, anchor="middle", weight="normal", fill="#222"):
    return (f"<text x='{x}' y='{y}' {FONT} font-size='{size}' text-anchor='{anchor}' "
            f"font-weight='{weight}' fill='{fill}'>{s}</text>")


def rect(x, y, w, h, fill="none", stroke="none", width=0.0, dash=None):
    d = f" stroke-dasharray='{dash}'" if dash else ""
    return (f"<rect x='{x}' y='{y}' width='{w}' height='{h}' fill='{fill}' "
            f"stroke='{stroke}' stroke-width='{width}'{d}/>")


def panel(x0, y0, causal):
    """The score matrix with its tiles; returns SVG elements."""
    out = []
    n_qt, n_kt = -(-TQ // BR), -(-TK // BC)
    for qt in range(n_qt):
        last_row = min(qt * BR + BR, TQ) - 1
        kv_end = min(TK, Q_OFFSET + last_row + 1) if causal else TK
        for kt in range(n_kt):
            loaded = kt * BC < kv_end
            for i in range(qt * BR, min(qt * BR + BR, TQ)):
                for j in range(kt * BC, min(kt * BC + BC, TK)):
                    visible = not causal or j <= Q_OFFSET + i
                    if not loaded:
                        color = SKIPPED
                    elif visible:
                        full_tile = not causal or kt * BC + BC <= Q_OFFSET + qt * BR + 1
                        color = FULL if full_tile else PARTIAL
                    else:
                        color = HIDDEN
                    out.append(rect(x0 + j * CELL, y0 + i * CELL, CELL, CELL, color, "#ffffff", 0.4))
    for qt in range(n_qt + 1):  # tile borders
        y = y0 + min(qt * BR, TQ) * CELL
        out.append(f"<line x1='{x0}' y1='{y}' x2='{x0 + TK * CELL}' y2='{y}' stroke='#333' stroke-width='1.2'/>")
    for kt in range(n_kt + 1):
        x = x0 + min(kt * BC, TK) * CELL
        out.append(f"<line x1='{x}' y1='{y0}' x2='{x}' y2='{y0 + TQ * CELL}' stroke='#333' stroke-width='1.2'/>")
    # The highlighted block and the direction of its walk.
    yb = y0 + HIGHLIGHT * BR * CELL
    last_row = min(HIGHLIGHT * BR + BR, TQ) - 1
    kv_end = min(TK, Q_OFFSET + last_row + 1) if causal else TK
    walked = -(-kv_end // BC) * BC
    out.append(rect(x0 - 2, yb - 2, min(walked, TK) * CELL + 4, BR * CELL + 4, "none", "#e45756", 2.2))
    out.append(text(x0 - 8, yb + BR * CELL / 2 + 4, "block", 10, anchor="end", fill="#e45756"))
    ya = y0 + TQ * CELL + 16
    out.append(f"<line x1='{x0}' y1='{ya}' x2='{x0 + min(walked, TK) * CELL}' y2='{ya}' stroke='#e45756' "
               f"stroke-width='1.5' marker-end='url(#arrow)'/>")
    out.append(text(x0 + min(walked, TK) * CELL / 2, ya + 14,
                    "key tiles, left to right: (m, l, o) rescaled each step", 10, fill="#e45756"))
    title = "causal, q_offset = Tk - Tq" if causal else "no mask"
    out.append(text(x0 + TK * CELL / 2, y0 - 12, title, 13, weight="bold"))
    out.append(f"<text x='{x0 - 40}' y='{y0 + TQ * CELL / 2}' {FONT} font-size='11' text-anchor='middle' "
               f"fill='#222' transform='rotate(-90 {x0 - 40} {y0 + TQ * CELL / 2})'>queries</text>")
    out.append(text(x0 + TK * CELL / 2, y0 - 28, "keys", 11))
    return out


def main():
    width_panel = TK * CELL
    x1, x2, y0 = 90, 90 + width_panel + 100, 60
    out = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{x2 + width_panel + 30}' height='{y0 + TQ * CELL + 125}'>",
           "<defs><marker id='arrow' markerWidth='8' markerHeight='8' refX='7' refY='4' orient='auto'>"
           "<path d='M0,0 L8,4 L0,8 z' fill='#e45756'/></marker></defs>",
           rect(0, 0, x2 + width_panel + 30, y0 + TQ * CELL + 125, "#ffffff")]
    out += panel(x1, y0, causal=False)
    out += panel(x2, y0, causal=True)
    ly = y0 + TQ * CELL + 52
    for n, (color, label) in enumerate([(FULL, "tile loaded, every score used"),
                                        (PARTIAL, "tile loaded, masked element by element"),
                                        (HIDDEN, "hidden score in a loaded tile (exp = 0)"),
                                        (SKIPPED, "tile never loaded")]):
        lx, row_y = x1 + (n % 2) * 300, ly + (n // 2) * 20
        out.append(rect(lx, row_y, 12, 12, color, "#555", 0.6))
        out.append(text(lx + 18, row_y + 10, label, 10, anchor="start"))
    out.append("</svg>")
    path = Path(__file__).with_suffix(".svg")
    path.write_text("\n".join(out) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
