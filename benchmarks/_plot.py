"""The ``--plot`` figure of ``mobstore bench``: a PNG drawn in pure Python (no dependency).

One row per workload, two panels per row: throughput (ops/s, linear y) and p99 latency
(ms, log y) against the number of workers (log2 x), one coloured line per system, a shared
legend on top. The pieces: :class:`_Canvas` (an RGB pixel buffer with lines, rectangles and
a built-in 5x7 bitmap font, upper case, digits and some punctuation) and :func:`encode_png`
(signature, IHDR, IDAT, IEND, each chunk with its CRC; zlib does the deflate).
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Mapping, Sequence

RGB = tuple[int, int, int]
#: (workers, ops per second, p99 ms) of one system at one sweep point.
Point = tuple[int, float, float]

BACKGROUND: RGB = (255, 255, 255)
COLOURS: tuple[RGB, ...] = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
                            (140, 86, 75))
_INK, _GRID, _AXIS = (0, 0, 0), (225, 225, 225), (90, 90, 90)

# 5x7 glyphs: a character, then its 7 rows ('#' = ink). Lower case is drawn as upper case.
_GLYPHS = """
0 .###. #...# #..## #.#.# ##..# #...# .###.
1 ..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###.
2 .###. #...# ....# ...#. ..#.. .#... #####
3 ##### ...#. ..#.. ...#. ....# #...# .###.
4 ...#. ..##. .#.#. #..#. ##### ...#. ...#.
5 ##### #.... ####. ....# ....# #...# .###.
6 ..##. .#... #.... ####. #...# #...# .###.
7 ##### ....# ...#. ..#.. .#... .#... .#...
8 .###. #...# #...# .###. #...# #...# .###.
9 .###. #...# #...# .#### ....# ...#. .##..
A .###. #...# #...# ##### #...# #...# #...#
B ####. #...# #...# ####. #...# #...# ####.
C .###. #...# #.... #.... #.... #...# .###.
D ####. #...# #...# #...# #...# #...# ####.
E ##### #.... #.... ####. #.... #.... #####
F ##### #.... #.... ####. #.... #.... #....
G .###. #...# #.... #.### #...# #...# .####
H #...# #...# #...# ##### #...# #...# #...#
I .###. ..#.. ..#.. ..#.. ..#.. ..#.. .###.
J ..### ...#. ...#. ...#. ...#. #..#. .##..
K #...# #..#. #.#.. ##... #.#.. #..#. #...#
L #.... #.... #.... #.... #.... #.... #####
M #...# ##.## #.#.# #.#.# #...# #...# #...#
N #...# #...# ##..# #.#.# #..## #...# #...#
O .###. #...# #...# #...# #...# #...# .###.
P ####. #...# #...# ####. #.... #.... #....
Q .###. #...# #...# #...# #.#.# #..#. .##.#
R ####. #...# #...# ####. #.#.. #..#. #...#
S .#### #.... #.... .###. ....# ....# ####.
T ##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#..
U #...# #...# #...# #...# #...# #...# .###.
V #...# #...# #...# #...# #...# .#.#. ..#..
W #...# #...# #...# #.#.# #.#.# #.#.# .#.#.
X #...# #...# .#.#. ..#.. .#.#. #...# #...#
Y #...# #...# .#.#. ..#.. ..#.. ..#.. ..#..
Z ##### ....# ...#. ..#.. .#... #.... #####
. ..... ..... ..... ..... ..... .##.. .##..
, ..... ..... ..... ..... .##.. ..#.. .#...
- ..... ..... ..... ##### ..... ..... .....
/ ..... ....# ...#. ..#.. .#... #.... .....
( ...#. ..#.. .#... .#... .#... ..#.. ...#.
) .#... ..#.. ...#. ...#. ...#. ..#.. .#...
: ..... .##.. .##.. ..... .##.. .##.. .....
% ##... ##..# ...#. ..#.. .#... #..## ...##
+ ..... ..#.. ..#.. ##### ..#.. ..#.. .....
= ..... ..... ##### ..... ##### ..... .....
_ ..... ..... ..... ..... ..... ..... #####
? .###. #...# ....# ...#. ..#.. ..... ..#..
"""
_FONT: dict[str, list[str]] = {line[0]: line[2:].split() for line in _GLYPHS.strip().splitlines()}
_FONT[" "] = ["....."] * 7


class _Canvas:
    """An RGB pixel buffer; (0, 0) is the top left corner; drawing outside is clipped."""

    def __init__(self, width: int, height: int, background: RGB = BACKGROUND) -> None:
        self.width, self.height = width, height
        self.pixels = bytearray(bytes(background) * (width * height))

    def dot(self, x: int, y: int, colour: RGB) -> None:
        if 0 <= x < self.width and 0 <= y < self.height:
            i = (y * self.width + x) * 3
            self.pixels[i:i + 3] = bytes(colour)

    def rect(self, x0: int, y0: int, x1: int, y1: int, colour: RGB) -> None:
        """Fill the rectangle with corners (x0, y0) and (x1, y1), both included."""
        x0, x1 = max(0, min(x0, x1)), min(self.width - 1, max(x0, x1))
        y0, y1 = max(0, min(y0, y1)), min(self.height - 1, max(y0, y1))
        if x0 > x1:
            return
        row = bytes(colour) * (x1 - x0 + 1)
        for y in range(y0, y1 + 1):
            i = (y * self.width + x0) * 3
            self.pixels[i:i + len(row)] = row

    def line(self, x0: int, y0: int, x1: int, y1: int, colour: RGB, width: int = 1) -> None:
        """A straight line (Bresenham), ``width`` pixels thick."""
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
        err = dx + dy
        while True:
            if width == 1:
                self.dot(x0, y0, colour)
            else:
                self.rect(x0, y0, x0 + width - 1, y0 + width - 1, colour)
            if x0 == x1 and y0 == y1:
                return
            e2 = 2 * err
            if e2 >= dy:
                err += dy
                x0 += sx
            if e2 <= dx:
                err += dx
                y0 += sy

    @staticmethod
    def text_width(text: str, scale: int = 1) -> int:
        return max(0, len(text) * 6 - 1) * scale

    def text(self, x: int, y: int, text: str, colour: RGB = _INK, scale: int = 1, align: str = "left") -> None:
        """Draw ``text`` with its top at ``y``; ``align`` ('left', 'center', 'right') is about ``x``."""
        w = self.text_width(text, scale)
        x -= {"left": 0, "center": w // 2, "right": w}[align]
        for ch in text.upper():
            for r, bits in enumerate(_FONT.get(ch, _FONT["?"])):
                for c, bit in enumerate(bits):
                    if bit == "#":
                        self.rect(x + c * scale, y + r * scale, x + (c + 1) * scale - 1, y + (r + 1) * scale - 1, colour)
            x += 6 * scale

    def png(self) -> bytes:
        return encode_png(self.width, self.height, bytes(self.pixels))


def encode_png(width: int, height: int, rgb: bytes) -> bytes:
    """A PNG file (8-bit RGB, no interlace) of ``rgb``: ``height`` rows of ``width * 3`` bytes."""
    if len(rgb) != width * height * 3:
        raise ValueError("pixel buffer size does not match the dimensions")

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    stride = width * 3
    raw = b"".join(b"\x00" + rgb[y * stride:(y + 1) * stride] for y in range(height))  # filter 0 per row
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def _short(v: float) -> str:
    """A compact tick label: 40000 -> 40K, 1500 -> 1.5K, 0.25 -> 0.25."""
    for div, suffix in ((1e6, "M"), (1e3, "K")):
        if abs(v) >= div:
            return f"{v / div:.3g}{suffix}"
    return f"{v:.3g}"


def _linear_ticks(hi: float) -> list[float]:
    """0 and nice steps (1, 2, 5 x 10^k) up to at least ``hi``."""
    if hi <= 0:
        return [0.0, 1.0]
    raw = hi / 5
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    return [k * step for k in range(int(math.ceil(hi / step - 1e-9)) + 1)]


def _log_ticks(lo: float, hi: float) -> list[float]:
    """Decades covering [lo, hi] (at least two)."""
    a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    if b <= a:
        b = a + 1
    return [10.0 ** k for k in range(a, b + 1)]


class _Panel:
    """One chart: a plot area at (x, y) of size (w, h) inside the canvas, with its scales."""

    def __init__(self, canvas: _Canvas, x: int, y: int, w: int, h: int, xs: Sequence[int],
                 yticks: Sequence[float], log_y: bool) -> None:
        self.c, self.x, self.y, self.w, self.h = canvas, x, y, w, h
        self.xlo, self.xhi = math.log2(min(xs)), math.log2(max(xs))
        if self.xhi == self.xlo:
            self.xlo, self.xhi = self.xlo - 1, self.xhi + 1
        self.log_y, self.yticks = log_y, list(yticks)
        f = math.log10 if log_y else float
        self.ylo, self.yhi = f(yticks[0]), f(yticks[-1])

    def px(self, wx: float) -> int:
        return self.x + round((math.log2(wx) - self.xlo) / (self.xhi - self.xlo) * (self.w - 1))

    def py(self, v: float) -> int:
        f = math.log10(v) if self.log_y else v
        return self.y + self.h - 1 - round((f - self.ylo) / (self.yhi - self.ylo) * (self.h - 1))

    def frame(self, title: str, xs: Sequence[int], xlabel: str) -> None:
        c = self.c
        for t in self.yticks:
            yy = self.py(t)
            c.line(self.x, yy, self.x + self.w - 1, yy, _GRID)
            c.line(self.x - 4, yy, self.x - 1, yy, _AXIS)
            c.text(self.x - 7, yy - 3, _short(t), _INK, align="right")
        for wx in xs:
            xx = self.px(wx)
            c.line(xx, self.y + self.h, xx, self.y + self.h + 3, _AXIS)
            c.text(xx, self.y + self.h + 7, str(wx), _INK, align="center")
        c.line(self.x, self.y, self.x, self.y + self.h - 1, _AXIS)
        c.line(self.x, self.y + self.h - 1, self.x + self.w - 1, self.y + self.h - 1, _AXIS)
        c.text(self.x + self.w // 2, self.y - 14, title, _INK, align="center")
        c.text(self.x + self.w // 2, self.y + self.h + 20, xlabel, _AXIS, align="center")

    def series(self, points: Sequence[tuple[float, float]], colour: RGB) -> None:
        pts = [(self.px(wx), self.py(v)) for wx, v in points]
        for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
            self.c.line(x0, y0, x1, y1, colour, width=2)
        for xx, yy in pts:
            self.c.rect(xx - 2, yy - 2, xx + 2, yy + 2, colour)


_PW, _PH = 420, 230  # plot area of one panel
_ML, _MR, _MT, _MB = 70, 30, 44, 44  # panel margins: left (y labels), right, top (title), bottom (x labels)


def render(rows: Sequence[tuple[str, Mapping[str, Sequence[Point]]]], title: str = "") -> _Canvas:
    """Draw the figure: ``rows`` is a list of (workload label, {system: [(workers, ops/s, p99 ms)]})."""
    systems: list[str] = []
    for _, series in rows:
        systems += [s for s in series if s not in systems]
    colour = {s: COLOURS[i % len(COLOURS)] for i, s in enumerate(systems)}
    cell_w, cell_h = _ML + _PW + _MR, _MT + _PH + _MB
    legend_h = 18 * len(systems)
    top = 16 + (20 if title else 0) + legend_h + 10
    canvas = _Canvas(2 * cell_w, top + len(rows) * (cell_h + 16))
    y = 12
    if title:
        canvas.text(canvas.width // 2, y, title, _INK, scale=2, align="center")
        y += 28
    for s in systems:
        canvas.rect(_ML, y + 1, _ML + 24, y + 4, colour[s])
        canvas.text(_ML + 32, y, s, _INK)
        y += 18
    for r, (label, series) in enumerate(rows):
        y0 = top + r * (cell_h + 16)
        canvas.text(8, y0, label, _INK, scale=2)
        xs = sorted({p[0] for pts in series.values() for p in pts}) or [1]
        tput = [p[1] for pts in series.values() for p in pts]
        p99 = [p[2] for pts in series.values() for p in pts if p[2] > 0]
        left = _Panel(canvas, _ML, y0 + _MT, _PW, _PH, xs, _linear_ticks(max(tput, default=0.0)), log_y=False)
        left.frame("THROUGHPUT, OPS/S", xs, "WORKERS")
        right = _Panel(canvas, cell_w + _ML, y0 + _MT, _PW, _PH, xs,
                       _log_ticks(min(p99, default=1.0), max(p99, default=10.0)), log_y=True)
        right.frame("P99 LATENCY, MS (LOG)", xs, "WORKERS")
        for s, pts in series.items():
            pts = sorted(pts)
            left.series([(p[0], p[1]) for p in pts], colour[s])
            right.series([(p[0], p[2]) for p in pts if p[2] > 0], colour[s])
    return canvas


def write_plot(path: str, rows: Sequence[tuple[str, Mapping[str, Sequence[Point]]]], title: str = "") -> None:
    """Render the figure and write it to ``path`` as a PNG file."""
    data = render(rows, title).png()
    with open(path, "wb") as f:
        f.write(data)
