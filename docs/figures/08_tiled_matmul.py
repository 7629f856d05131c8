#!/usr/bin/env python3
"""Draws docs/figures/08_tiled_matmul.svg: the tiled matrix product of lesson 08.

C = A B is covered by a grid of blocks (4 x 2 here); each block of T x T threads
computes one T x T square of C (T = 16 in the lesson, drawn as 3 cells). The
highlighted block, blockIdx = (2, 1), walks along K one tile at a time: tile t of
its strip of A and tile t of its strip of B are copied to shared memory, every
thread of the block copying one element of each, then each thread multiplies its
row of the A tile with its column of the B tile. Two barriers per tile.

Run: python3 docs/figures/08_tiled_matmul.py   (standard library only)
"""
from pathlib import Path

CELL = 18                      # side of one matrix entry, in pixels
T = 3                          # tile side, in cells
M, K, N = 2 * T, 3 * T, 4 * T  # 2 block rows, 3 tiles along K, 4 block columns
BX, BY = 2, 1                  # the highlighted block
FONT = "font-family='DejaVu Sans, Helvetica, Arial, sans-serif'"
A_COLOR, B_COLOR, C_COLOR = "#4c78a8", "#f58518", "#b279a2"
TILE_OPACITY = [0.95, 0.6, 0.3]  # tile t = 0, 1, 2


def text(x, y, s, size=12, anchor="middle", weight="normal", fill="#222"):
    return (f"<text x='{x}' y='{y}' {FONT} font-size='{size}' text-anchor='{anchor}' "
            f"font-weight='{weight}' fill='{fill}'>{s}</text>")


def rect(x, y, w, h, fill="none", opacity=1.0, stroke="#555", width=0.8):
    return (f"<rect x='{x}' y='{y}' width='{w}' height='{h}' fill='{fill}' "
            f"fill-opacity='{opacity:.2f}' stroke='{stroke}' stroke-width='{width}'/>")


def matrix(x0, y0, rows, cols, shade):
    """A rows x cols matrix; shade(r, c) gives (color, opacity) or None for a blank cell."""
    out = []
    for r in range(rows):
        for c in range(cols):
            s = shade(r, c)
            color, opacity = s if s else ("#ffffff", 1.0)
            out.append(rect(x0 + c * CELL, y0 + r * CELL, CELL, CELL, color, opacity))
    return out


def block_lines(x0, y0, rows, cols):
    """Thick lines every T cells: the blocks of the grid."""
    out = []
    for r in range(0, rows + 1, T):
        out.append(f"<line x1='{x0}' y1='{y0 + r * CELL}' x2='{x0 + cols * CELL}' "
                   f"y2='{y0 + r * CELL}' stroke='#222' stroke-width='2'/>")
    for c in range(0, cols + 1, T):
        out.append(f"<line x1='{x0 + c * CELL}' y1='{y0}' x2='{x0 + c * CELL}' "
                   f"y2='{y0 + rows * CELL}' stroke='#222' stroke-width='2'/>")
    return out


def main():
    ax, bx = 70, 70 + K * CELL + 50        # A on the left, B and C to its right
    by, ay = 50, 50 + K * CELL + 40        # B on top, A and C below it
    cx, cy = bx, ay
    out = []

    # A: the block row BY of the highlighted block, cut into tiles along K.
    def a_shade(r, c):
        return (A_COLOR, TILE_OPACITY[c // T]) if r // T == BY else None
    out += matrix(ax, ay, M, K, a_shade)
    out.append(text(ax + K * CELL / 2, ay - 10, "A  (M, K)", 13, weight="bold"))
    for t in range(K // T):
        out.append(text(ax + (t * T + T / 2) * CELL, ay + M * CELL + 18, f"tile t = {t}", 10))

    # B: the block column BX, cut into tiles along K.
    def b_shade(r, c):
        return (B_COLOR, TILE_OPACITY[r // T]) if c // T == BX else None
    out += matrix(bx, by, K, N, b_shade)
    out.append(text(bx + N * CELL / 2, by - 10, "B  (K, N)", 13, weight="bold"))
    for t in range(K // T):
        out.append(text(bx - 8, by + (t * T + T / 2) * CELL + 4, f"t = {t}", 10, anchor="end"))

    # C: the grid of blocks; the highlighted block is the one whose strips are shaded.
    def c_shade(r, c):
        return (C_COLOR, 0.9) if r // T == BY and c // T == BX else None
    out += matrix(cx, cy, M, N, c_shade)
    out += block_lines(cx, cy, M, N)
    out.append(text(cx + N * CELL / 2, cy + M * CELL + 18,
                    f"C  (M, N): a grid of {N // T} x {M // T} blocks", 12, weight="bold"))
    out.append(text(cx + N * CELL / 2, cy + M * CELL + 34,
                    f"block ({BX}, {BY}): T x T threads, one per element of its square", 11, fill="#444"))

    # The loop each block runs.
    lx, ly = cx + N * CELL + 40, by + 20
    steps = [
        ("for each tile t along K:", "bold"),
        ("  1. each thread copies one element", "normal"),
        ("     of tile t of A and one of B", "normal"),
        ("     into shared memory", "normal"),
        ("  2. __syncthreads()   the tiles are complete", "bold"),
        ("  3. each thread adds T products:", "normal"),
        ("     its row of the A tile times", "normal"),
        ("     its column of the B tile", "normal"),
        ("  4. __syncthreads()   no one still reads them", "bold"),
        ("each element of A and B is read from", "normal"),
        ("global memory once per block, not once", "normal"),
        ("per thread: T times fewer reads", "normal"),
    ]
    for i, (s, weight) in enumerate(steps):
        gap = 14 if i >= 9 else 0
        indent = (len(s) - len(s.lstrip())) * 7
        out.append(text(lx + indent, ly + i * 19 + gap, s.strip(), 12, anchor="start", weight=weight))

    width, height = lx + 350, cy + M * CELL + 60
    svg = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
           f"viewBox='0 0 {width} {height}'>", rect(0, 0, width, height, "#ffffff", 1.0, "none", 0)]
    svg += out
    svg.append("</svg>")
    path = Path(__file__).with_suffix(".svg")
    path.write_text("\n".join(svg) + "\n", encoding="utf-8")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
