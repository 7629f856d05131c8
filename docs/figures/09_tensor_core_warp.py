#!/usr/bin/env python3
"""Draws docs/figures/09_tensor_core_warp.svg: one warp's work on one K/V tile in the
tensor-core kernel of lesson 09 (section 14), drawn at D = 64.

Left: S_w = Q_w K^T as 16 x 16 tiles, the way a matrix product is usually laid out
(K^T above the result, Q_w to its left); one output tile is highlighted with the row
of Q fragments and the column of K^T fragments whose mma_sync calls sum into it.
Middle: the online softmax on S_w; row r belongs to lanes 2r and 2r + 1, each with
half of the 64 keys. Right: O_w += P_w V, the same picture for the second product.

Run: python3 docs/figures/09_tensor_core_warp.py   (standard library only)
"""
from pathlib import Path

T = 26                      # one 16 x 16 tile, in pixels
D_TILES, K_TILES = 4, 4     # D = 64 and 64 keys, in tiles of 16
FONT = "font-family='DejaVu Sans, Helvetica, Arial, sans-serif'"
Q_COLOR, K_COLOR, S_COLOR, P_COLOR = "#9ecae9", "#f2cf8c", "#c7e9c0", "#d4b9da"
HIGHLIGHT = "#d62728"


def text(x, y, s, size=12, anchor="middle", weight="normal", fill="#222"):
    return (f"<text x='{x}' y='{y}' {FONT} font-size='{size}' text-anchor='{anchor}' "
            f"font-weight='{weight}' fill='{fill}'>{s}</text>")


def rect(x, y, w, h, fill="none", stroke="#555", width=1.0):
    return (f"<rect x='{x}' y='{y}' width='{w}' height='{h}' fill='{fill}' "
            f"stroke='{stroke}' stroke-width='{width}'/>")


def tiles(x0, y0, rows, cols, fill, label, highlight=None, label_below=False):
    """A matrix of rows x cols tiles; `highlight`: a set of (row, col) tiles outlined in red."""
    out = []
    for r in range(rows):
        for c in range(cols):
            out.append(rect(x0 + c * T, y0 + r * T, T, T, fill))
    for (r, c) in sorted(highlight or ()):
        out.append(rect(x0 + c * T + 1.5, y0 + r * T + 1.5, T - 3, T - 3, "none", HIGHLIGHT, 2.5))
    ly = y0 + rows * T + 15 if label_below else y0 - 6
    out.append(text(x0 + cols * T / 2, ly, label, 12))
    return out


def product(x0, y0, a_fill, b_fill, c_fill, a_label, b_label, c_label, n_hi, title, note):
    """C (1 x n) = A (1 x k) B (k x n), B above C, A left of C; output tile n_hi highlighted."""
    ax, bx = x0, x0 + K_TILES * T + 14  # A left of C, B above C
    out = [text(x0 + (2 * K_TILES * T + 14) / 2, y0, title, 14, weight="bold")]
    by = y0 + 28
    cy = by + K_TILES * T + 14
    out += tiles(bx, by, K_TILES, K_TILES, b_fill, b_label, {(k, n_hi) for k in range(K_TILES)})
    out += tiles(bx, cy, 1, K_TILES, c_fill, c_label, {(0, n_hi)}, label_below=True)
    out += tiles(ax, cy, 1, K_TILES, a_fill, a_label, {(0, k) for k in range(K_TILES)}, label_below=True)
    for i, line in enumerate(note):
        out.append(text(ax, cy + T + 40 + 16 * i, line, 11.5, anchor="start", fill="#333"))
    return out


def softmax_panel(x0, y0):
    out = [text(x0 + 2 * T * K_TILES / 2, y0, "online softmax on S_w (float32)", 14, weight="bold")]
    w, h = 2 * T * K_TILES, 2 * 16 * 9  # 64 keys across, 16 rows of 9 px
    top = y0 + 28
    row_h = 9
    out.append(rect(x0, top, w, 16 * row_h, S_COLOR))
    for r in range(1, 16):
        out.append(f"<line x1='{x0}' y1='{top + r * row_h}' x2='{x0 + w}' y2='{top + r * row_h}' "
                   f"stroke='#888' stroke-width='0.5'/>")
    out.append(f"<line x1='{x0 + w / 2}' y1='{top}' x2='{x0 + w / 2}' y2='{top + 16 * row_h}' "
               f"stroke='#555' stroke-width='1.2' stroke-dasharray='4 3'/>")
    r_hi = 5
    out.append(rect(x0 + 1.5, top + r_hi * row_h + 0.5, w / 2 - 3, row_h - 1, "none", HIGHLIGHT, 2))
    out.append(rect(x0 + w / 2 + 1.5, top + r_hi * row_h + 0.5, w / 2 - 3, row_h - 1, "none", "#1f77b4", 2))
    out.append(text(x0 + w / 4, top - 6, "keys 0..31", 11))
    out.append(text(x0 + 3 * w / 4, top - 6, "keys 32..63", 11))
    out.append(text(x0 - 6, top + r_hi * row_h + 8, "row r", 11, anchor="end"))
    out.append(text(x0 + w / 4, top + 16 * row_h + 15, "lane 2r", 11.5, fill=HIGHLIGHT))
    out.append(text(x0 + 3 * w / 4, top + 16 * row_h + 15, "lane 2r + 1", 11.5, fill="#1f77b4"))
    note = ["each lane: the max of its 32 scores x scale;",
            "__shfl_xor_sync(.., 1) joins the two halves:",
            "m_new, alpha = exp(m - m_new);",
            "p = exp(s x scale - m_new) as __half into P_w,",
            "l = l alpha + sum of the rounded p,",
            "o_w[r][:] *= alpha (shared memory)"]
    for i, line in enumerate(note):
        out.append(text(x0, top + 16 * row_h + 40 + 16 * i, line, 11.5, anchor="start", fill="#333"))
    return out


def main():
    width, height = 960, 360
    body = [f"<rect x='0' y='0' width='{width}' height='{height}' fill='white'/>"]
    body += product(20, 22, Q_COLOR, K_COLOR, S_COLOR, "Q_w (16 x D)", "K^T (D x 64)", "S_w (16 x 64)", 2,
                    "09.4  S_w = Q_w K^T",
                    ["red tile: 4 mma_sync calls, one per",
                     "16 columns of D (Q fragments stay in",
                     "registers; K^T is k_s read column-major)"])
    body += softmax_panel(340, 22)
    body += product(672, 22, P_COLOR, K_COLOR, Q_COLOR, "P_w (16 x 64)", "V (64 x D)", "O_w (16 x D)", 1,
                    "09.5  O_w += P_w V",
                    ["red tile: load from o_w, 4 mma_sync",
                     "calls, one per 16 keys, store back",
                     "(wmma's layout is unspecified: no row",
                     "of a fragment can be rescaled in place)"])
    svg = (f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
           f"viewBox='0 0 {width} {height}'>\n" + "\n".join(body) + "\n</svg>\n")
    target = Path(__file__).with_suffix(".svg")
    target.write_text(svg)
    print(target)


if __name__ == "__main__":
    main()
