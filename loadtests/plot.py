"""Requests-per-region plot of a load-test run, as a PNG drawn in pure Python (zlib only).

matplotlib is not a dependency of gridshift, and a line chart needs little: a raster, lines, a 5x7 bitmap font
and the PNG container. So the report always has its picture, with nothing more to install.
"""

from __future__ import annotations

import itertools
import math
import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

Color = tuple[int, int, int]

PALETTE: tuple[Color, ...] = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
)
WHITE: Color = (255, 255, 255)
BLACK: Color = (0, 0, 0)
GRID: Color = (225, 225, 225)
MARKER: Color = (110, 110, 110)

# 5x7 glyphs, one 5-bit row per entry (bit 4 = leftmost pixel); lower case is drawn as upper case.
_FONT: dict[str, tuple[int, ...]] = {
    " ": (0, 0, 0, 0, 0, 0, 0),
    "0": (0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E),
    "1": (0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E),
    "2": (0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F),
    "3": (0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E),
    "4": (0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02),
    "5": (0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E),
    "6": (0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E),
    "7": (0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08),
    "8": (0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E),
    "9": (0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C),
    "A": (0x0E, 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11),
    "B": (0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E),
    "C": (0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E),
    "D": (0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C),
    "E": (0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F),
    "F": (0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10),
    "G": (0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F),
    "H": (0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11),
    "I": (0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E),
    "J": (0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C),
    "K": (0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11),
    "L": (0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F),
    "M": (0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11),
    "N": (0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11),
    "O": (0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E),
    "P": (0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10),
    "Q": (0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D),
    "R": (0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11),
    "S": (0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E),
    "T": (0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04),
    "U": (0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E),
    "V": (0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04),
    "W": (0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A),
    "X": (0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11),
    "Y": (0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04),
    "Z": (0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F),
    "-": (0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00),
    ".": (0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C),
    ",": (0x00, 0x00, 0x00, 0x00, 0x0C, 0x04, 0x08),
    ":": (0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00),
    "/": (0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00),
    "(": (0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02),
    ")": (0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08),
    "+": (0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00),
    "_": (0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F),
    "=": (0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00),
    "%": (0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03),
}
_UNKNOWN = (0x1F, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1F)


class Canvas:
    """An RGB raster with the few drawing operations a line chart needs."""

    def __init__(self, width: int, height: int, background: Color = WHITE) -> None:
        self.width = width
        self.height = height
        self.pixels = bytearray(bytes(background) * (width * height))

    def set(self, x: int, y: int, color: Color) -> None:
        if 0 <= x < self.width and 0 <= y < self.height:
            offset = (y * self.width + x) * 3
            self.pixels[offset : offset + 3] = bytes(color)

    def rect(self, x0: int, y0: int, x1: int, y1: int, color: Color) -> None:
        for y in range(max(0, y0), min(self.height, y1 + 1)):
            for x in range(max(0, x0), min(self.width, x1 + 1)):
                self.set(x, y, color)

    def line(self, x0: int, y0: int, x1: int, y1: int, color: Color, width: int = 1, dash: int = 0) -> None:
        """Bresenham, `width` pixels thick; `dash` > 0 draws dash-long segments with gaps as long."""
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
        error, step = dx + dy, 0
        while True:
            if not dash or (step // dash) % 2 == 0:
                self.rect(x0, y0, x0 + width - 1, y0 + width - 1, color)
            if x0 == x1 and y0 == y1:
                return
            step += 1
            doubled = 2 * error
            if doubled >= dy:
                error += dy
                x0 += sx
            if doubled <= dx:
                error += dx
                y0 += sy

    def text(self, x: int, y: int, text: str, color: Color = BLACK, scale: int = 2) -> int:
        """Draw `text` with its top-left at (x, y); returns the x after it."""
        for char in text:
            glyph = _FONT.get(char.upper(), _UNKNOWN)
            for row, bits in enumerate(glyph):
                for column in range(5):
                    if bits & (0x10 >> column):
                        self.rect(x + column * scale, y + row * scale, x + (column + 1) * scale - 1,
                                  y + (row + 1) * scale - 1, color)  # fmt: skip
            x += 6 * scale
        return x

    def png(self) -> bytes:
        def chunk(kind: bytes, data: bytes) -> bytes:
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

        stride = self.width * 3
        raw = b"".join(b"\x00" + bytes(self.pixels[y * stride : (y + 1) * stride]) for y in range(self.height))
        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
        return (
            b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")
        )


@dataclass(frozen=True, slots=True)
class Marker:
    """A vertical line at `t_s` labelled `label` (a grid action)."""

    t_s: float
    label: str


def nice_step(span: float, ticks: int = 5) -> float:
    """A round tick step (1, 2 or 5 times a power of ten) giving about `ticks` ticks over `span`."""
    if span <= 0:
        return 1.0
    raw = span / ticks
    power = 10.0 ** math.floor(math.log10(raw))
    return next(m * power for m in (1.0, 2.0, 5.0, 10.0) if m * power >= raw)


def requests_per_region_png(
    title: str,
    t_s: Sequence[float],
    panels: Mapping[str, Mapping[str, Sequence[float]]],
    markers: Sequence[Marker] = (),
    *,
    width: int = 1000,
    panel_height: int = 230,
) -> bytes:
    """One panel per workload class: requests per second served by each region over the run."""
    regions = sorted({region for series in panels.values() for region in series})
    colors = {region: PALETTE[i % len(PALETTE)] for i, region in enumerate(regions)}
    left, right, top, gap = 70, 190, 40, 50
    height = top + len(panels) * (panel_height + gap) + 10
    canvas = Canvas(width, max(height, 120))
    canvas.text(left, 10, title)
    end_t = max(t_s[-1] if t_s else 1.0, 1.0)
    plot_w = width - left - right
    for index, (name, series) in enumerate(panels.items()):
        y0 = top + index * (panel_height + gap) + 20
        y1 = y0 + panel_height - 20
        peak = max((max(values, default=0.0) for values in series.values()), default=0.0)
        y_step = nice_step(max(peak, 1.0), 4)
        y_max = max(y_step * math.ceil(max(peak, 1.0) / y_step), y_step)

        def px(t: float) -> int:
            return left + round(t / end_t * plot_w)

        def py(value: float, y0: int = y0, y1: int = y1, y_max: float = y_max) -> int:
            return y1 - round(value / y_max * (y1 - y0))

        canvas.text(left, y0 - 18, f"{name} requests/s by serving region")
        tick = 0.0
        while tick <= y_max + 1e-9:
            canvas.line(left, py(tick), left + plot_w, py(tick), GRID)
            canvas.text(left - 8 - 12 * len(f"{tick:g}"), py(tick) - 7, f"{tick:g}")
            tick += y_step
        x_step = nice_step(end_t, 8)
        tick = 0.0
        while tick <= end_t + 1e-9:
            canvas.line(px(tick), y1, px(tick), y1 + 4, BLACK)
            label = f"{tick:g}"
            canvas.text(px(tick) - 6 * len(label), y1 + 8, label)
            tick += x_step
        canvas.line(left, y0, left, y1, BLACK)
        canvas.line(left, y1, left + plot_w, y1, BLACK)
        for marker in markers:
            x = px(marker.t_s)
            canvas.line(x, y0, x, y1, MARKER, dash=4)
            canvas.text(x + 4, y0 + 2, marker.label, MARKER)
        for region in regions:
            values = series.get(region)
            if not values:
                continue
            points = [(px(t), py(v)) for t, v in zip(t_s, values, strict=False)]
            for (xa, ya), (xb, yb) in itertools.pairwise(points):
                canvas.line(xa, ya, xb, yb, colors[region], width=2)
        if index == len(panels) - 1:
            canvas.text(left + plot_w // 2 - 12 * 4, y1 + 28, "seconds")
    for row, region in enumerate(regions):
        y = top + 30 + row * 24
        canvas.rect(width - right + 20, y, width - right + 40, y + 12, colors[region])
        canvas.text(width - right + 48, y, region)
    return canvas.png()
