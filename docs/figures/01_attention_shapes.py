#!/usr/bin/env python3
"""Draws docs/figures/01_attention_shapes.svg: the shapes of lesson 01.

Top: scaled dot-product attention for one (batch, head) pair, Tq = 4 queries,
Tk = 5 keys, D = 3, Dv = 2: Q K^T / sqrt(D) gives the (Tq, Tk) scores, softmax
normalizes each row, and the weights times V give the (Tq, Dv) output.
Bottom: split_heads for H = 2, D = 3: channel h*D + d of token t becomes
column d of row t of head h; merge_heads is the arrow read backwards.

Run: python3 docs/figures/01_attention_shapes.py   (standard library only)
"""
from pathlib import Path

CELL = 22  # side of one matrix entry, in pixels
FONT = "font-family='DejaVu Sans, Helvetica, Arial, sans-serif'"
Q_COLOR, K_COLOR, V_COLOR = "#4c78a8", "#f58518", "#54a24b"
SCORE_COLOR, OUT_COLOR = "#b279a2", "#72b7b2"
HEAD_COLORS = ["#4c78a8", "#f58518"]


def text(x, y, s, size=12, anchor="middle", weight="normal", fill="#222"):
    return (f"<text x='{x}' y='{y}' {FONT} font-size='{size}' text-anchor='{anchor}' "
            f"font-weight='{weight}' fill='{fill}'>{s}</text>")


def grid(x0, y0, rows, cols, fill, labels=None, opacity=None):
    """A rows x cols matrix of cells; `labels[r][c]` is drawn in a cell if given;
    `opacity[r][c]` shades a cell (for softmax weights)."""
    out = []
    for r in range(rows):
        for c in range(cols):
            o = 1.0 if opacity is None else opacity[r][c]
            out.append(f"<rect x='{x0 + c * CELL}' y='{y0 + r * CELL}' width='{CELL}' "
                       f"height='{CELL}' fill='{fill}' fill-opacity='{o:.2f}' "
                       f"stroke='#555' stroke-width='0.8'/>")
            if labels is not None:
                out.append(text(x0 + c * CELL + CELL / 2, y0 + r * CELL + CELL / 2 + 4,
                                labels[r][c], size=9, fill="#fff"))
    return out


def matrix(x0, y0, rows, cols, fill, name, shape, name_y=None, shape_y=None, **kw):
    """A grid with its name above it and its shape below it (at name_y and shape_y
    when given, so that the labels of matrices of different heights line up)."""
    out = grid(x0, y0, rows, cols, fill, **kw)
    cx = x0 + cols * CELL / 2
    out.append(text(cx, y0 - 8 if name_y is None else name_y, name, size=13, weight="bold"))
    out.append(text(cx, y0 + rows * CELL + 16 if shape_y is None else shape_y, shape, size=11,
                    fill="#444"))
    return out


def operator(x, y, s):
    return [text(x, y, s, size=18, weight="bold")]


def softmax_weights(tq, tk):
    """Fixed, made-up weights for the picture: each row sums to 1."""
    rows = []
    for i in range(tq):
        raw = [1.0 + ((3 * i + 5 * j) % 7) for j in range(tk)]
        s = sum(raw)
        rows.append([w / s for w in raw])
    return rows


def attention_panel(y0):
    tq, tk, d, dv = 4, 5, 3, 2
    tallest = max(tq, tk, d)
    top = y0 + 44                             # top of the tallest matrix
    mid = top + tallest * CELL / 2            # every matrix is centred on this line
    labels = {"name_y": top - 10, "shape_y": top + tallest * CELL + 18}

    def at(rows):
        return mid - rows * CELL / 2

    out = [text(10, y0, "scaled dot-product attention, one (b, h): Tq = 4, Tk = 5, D = 3, Dv = 2",
                size=14, anchor="start", weight="bold")]
    x = 20
    out += matrix(x, at(tq), tq, d, Q_COLOR, "Q", "(Tq, D)", **labels)
    x += d * CELL + 30
    out += operator(x - 15, mid + 6, "·")
    out += matrix(x, at(d), d, tk, K_COLOR, "Kᵀ", "(D, Tk)", **labels)
    x += tk * CELL + 70
    out += operator(x - 35, mid + 6, "/ √D =")
    out += matrix(x, at(tq), tq, tk, SCORE_COLOR, "S", "(Tq, Tk)", **labels)
    x += tk * CELL + 90
    out.append(f"<line x1='{x - 78}' y1='{mid}' x2='{x - 12}' y2='{mid}' stroke='#333' "
               f"stroke-width='1.5' marker-end='url(#arrow)'/>")
    out.append(text(x - 45, mid - 8, "softmax", size=11))
    out.append(text(x - 45, mid + 18, "of each row", size=11))
    weights = softmax_weights(tq, tk)
    out += matrix(x, at(tq), tq, tk, SCORE_COLOR, "P", "(Tq, Tk)", **labels,
                  opacity=[[0.15 + 2.2 * w for w in row] for row in weights])
    out.append(text(x + tk * CELL / 2, labels["shape_y"] + 15, "rows sum to 1", size=11,
                    fill="#444"))
    x += tk * CELL + 30
    out += operator(x - 15, mid + 6, "·")
    out += matrix(x, at(tk), tk, dv, V_COLOR, "V", "(Tk, Dv)", **labels)
    x += dv * CELL + 30
    out += operator(x - 15, mid + 6, "=")
    out += matrix(x, at(tq), tq, dv, OUT_COLOR, "O", "(Tq, Dv)", **labels)
    width = x + dv * CELL + 20
    return out, width, labels["shape_y"] + 20


def split_panel(y0):
    t, h, d = 3, 2, 3
    out = [text(10, y0, "split_heads, H = 2, D = 3: x(b, t, h·D + d) → y(b, h, t, d); merge_heads is the inverse",
                size=14, anchor="start", weight="bold")]
    top = y0 + 46
    x0 = 20
    labels = [[f"{ti}.{c}" for c in range(h * d)] for ti in range(t)]
    for c in range(h * d):
        out += grid(x0 + c * CELL, top, t, 1, HEAD_COLORS[c // d],
                    labels=[[labels[r][c]] for r in range(t)])
    out.append(text(x0 + h * d * CELL / 2, top - 24, "x[b]", size=13, weight="bold"))
    for c in range(h * d):
        out.append(text(x0 + c * CELL + CELL / 2, top - 6, str(c), size=9, fill="#444"))
    out.append(text(x0 + h * d * CELL / 2, top + t * CELL + 16, "(T, H·D): row t, channel c",
                    size=11, fill="#444"))
    ax = x0 + h * d * CELL + 30
    amid = top + t * CELL / 2
    out.append(f"<line x1='{ax}' y1='{amid - 6}' x2='{ax + 90}' y2='{amid - 6}' stroke='#333' "
               f"stroke-width='1.5' marker-end='url(#arrow)'/>")
    out.append(text(ax + 45, amid - 14, "split_heads", size=10))
    out.append(f"<line x1='{ax + 90}' y1='{amid + 8}' x2='{ax}' y2='{amid + 8}' stroke='#333' "
               f"stroke-width='1.5' marker-end='url(#arrow)'/>")
    out.append(text(ax + 45, amid + 24, "merge_heads", size=10))
    hx = ax + 110
    for hh in range(h):
        gx = hx + hh * (d * CELL + 30)
        out += grid(gx, top, t, d, HEAD_COLORS[hh],
                    labels=[[labels[r][hh * d + dd] for dd in range(d)] for r in range(t)])
        out.append(text(gx + d * CELL / 2, top - 8, f"y[b, {hh}]", size=13, weight="bold"))
    out.append(text(hx + (h * d * CELL + 30) / 2, top + t * CELL + 16,
                    "(H, T, D): head h, row t, column d", size=11, fill="#444"))
    lx = hx + h * (d * CELL + 30) + 10
    out.append(text(lx, top + 10, "a cell shows token.channel of x;", size=11, anchor="start", fill="#444"))
    out.append(text(lx, top + 28, "head h takes the D contiguous", size=11, anchor="start", fill="#444"))
    out.append(text(lx, top + 46, "channels h·D … h·D + D − 1", size=11, anchor="start", fill="#444"))
    return out, top + t * CELL + 30


def main():
    parts, width, bottom = attention_panel(24)
    split, height = split_panel(bottom + 30)
    parts += split
    width = max(width, 760)
    svg = (f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
           f"viewBox='0 0 {width} {height}'>\n"
           "<defs><marker id='arrow' viewBox='0 0 10 10' refX='9' refY='5' markerWidth='7' "
           "markerHeight='7' orient='auto'><path d='M0,0 L10,5 L0,10 z' fill='#333'/></marker></defs>\n"
           f"<rect width='{width}' height='{height}' fill='white'/>\n" + "\n".join(parts) + "\n</svg>\n")
    out = Path(__file__).with_suffix(".svg")
    out.write_text(svg, encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
