"""A tiny raster canvas written as PNG with the standard library only (zlib + struct): filled
rectangles, lines and a 5x7 pixel font. Enough for labelled bar charts, nothing more."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

Color = tuple[int, int, int]

WHITE: Color = (255, 255, 255)
BLACK: Color = (0, 0, 0)
GREY: Color = (200, 200, 200)
DARK: Color = (90, 90, 90)
RED: Color = (200, 40, 40)

# 5x7 glyphs, drawn: each block names its characters, then 7 rows of 5-pixel cells.
_GLYPH_BLOCKS = [
    (
        "ABCDEFGHIJKLMNOP",
        """
.###. ####. .###. ####. ##### ##### .###. #...# .###. ..### #...# #.... #...# #...# .###. ####.
#...# #...# #...# #...# #.... #.... #...# #...# ..#.. ...#. #..#. #.... ##.## ##..# #...# #...#
#...# #...# #.... #...# #.... #.... #.... #...# ..#.. ...#. #.#.. #.... #.#.# #.#.# #...# #...#
##### ####. #.... #...# ####. ####. #.### ##### ..#.. ...#. ##... #.... #...# #..## #...# ####.
#...# #...# #.... #...# #.... #.... #...# #...# ..#.. ...#. #.#.. #.... #...# #...# #...# #....
#...# #...# #...# #...# #.... #.... #...# #...# ..#.. #..#. #..#. #.... #...# #...# #...# #....
#...# ####. .###. ####. ##### #.... .###. #...# .###. .##.. #...# ##### #...# #...# .###. #....
""",
    ),
    (
        "QRSTUVWXYZ012345",
        """
.###. ####. .#### ##### #...# #...# #...# #...# #...# ##### .###. ..#.. .###. .###. ...#. #####
#...# #...# #.... ..#.. #...# #...# #...# #...# #...# ....# #..## .##.. #...# #...# ..##. #....
#...# #...# #.... ..#.. #...# #...# #...# .#.#. .#.#. ...#. #.#.# ..#.. ....# ....# .#.#. ####.
#...# ####. .###. ..#.. #...# #...# #.#.# ..#.. ..#.. ..#.. ##..# ..#.. ..##. ..##. #..#. ....#
#.#.# #.#.. ....# ..#.. #...# #...# #.#.# .#.#. ..#.. .#... #...# ..#.. .#... ....# ##### ....#
#..#. #..#. ....# ..#.. #...# .#.#. ##.## #...# ..#.. #.... #...# ..#.. #.... #...# ...#. #...#
.##.# #...# ####. ..#.. .###. ..#.. #...# #...# ..#.. ##### .###. .###. ##### .###. ...#. .###.
""",
    ),
    (
        "6789.,:/-()%=<>+",
        """
..##. ##### .###. .###. ..... ..... ..... ....# ..... ...#. .#... ##..# ..... ...#. .#... .....
.#... ....# #...# #...# ..... ..... ..#.. ...#. ..... ..#.. ..#.. ##..# ..... ..#.. ..#.. ..#..
#.... ...#. #...# #...# ..... ..... ..... ..#.. ..... .#... ...#. ...#. ##### .#... ...#. ..#..
####. ..#.. .###. .#### ..... ..... ..... ..#.. ##### .#... ...#. ..#.. ..... #.... ....# #####
#...# .#... #...# ....# ..... ..... ..... ..#.. ..... .#... ...#. .#... ##### .#... ...#. ..#..
#...# .#... #...# ...#. ..##. ..#.. ..#.. .#... ..... ..#.. ..#.. #..## ..... ..#.. ..#.. ..#..
.###. .#... .###. .##.. ..##. .#... ..... #.... ..... ...#. .#... #..## ..... ...#. .#... .....
""",
    ),
    (
        "_*;'",
        """
..... ..... ..... ..#..
..... ..#.. ..... ..#..
..... #.#.# ..#.. .....
..... .###. ..... .....
..... #.#.# ..... .....
..... ..#.. ..#.. .....
##### ..... .#... .....
""",
    ),
]


def _glyphs() -> dict[str, list[str]]:
    glyphs: dict[str, list[str]] = {" ": ["....."] * 7}
    for chars, block in _GLYPH_BLOCKS:
        rows = [line.split() for line in block.strip("\n").splitlines()]
        for index, char in enumerate(chars):
            glyphs[char] = [row[index][:5] for row in rows]
    return glyphs


GLYPHS = _glyphs()


class Canvas:
    def __init__(self, width: int, height: int, background: Color = WHITE) -> None:
        self.width = width
        self.height = height
        self.pixels = bytearray(bytes(background) * (width * height))

    def point(self, x: int, y: int, color: Color) -> None:
        if 0 <= x < self.width and 0 <= y < self.height:
            offset = 3 * (y * self.width + x)
            self.pixels[offset : offset + 3] = bytes(color)

    def rect(self, x0: int, y0: int, x1: int, y1: int, color: Color) -> None:
        """Filled, corners included, clipped to the canvas."""
        x0, x1 = sorted((max(0, x0), min(self.width - 1, x1)))
        y0, y1 = sorted((max(0, y0), min(self.height - 1, y1)))
        row = bytes(color) * (x1 - x0 + 1)
        for y in range(y0, y1 + 1):
            offset = 3 * (y * self.width + x0)
            self.pixels[offset : offset + len(row)] = row

    def hline(self, x0: int, x1: int, y: int, color: Color, dash: int = 0) -> None:
        for x in range(min(x0, x1), max(x0, x1) + 1):
            if not dash or (x // dash) % 2 == 0:
                self.point(x, y, color)

    def vline(self, x: int, y0: int, y1: int, color: Color) -> None:
        self.rect(x, y0, x, y1, color)

    def text(self, x: int, y: int, text: str, color: Color = BLACK, scale: int = 2) -> None:
        """Upper-case text from (x, y), the top left; unknown characters are drawn as '*'."""
        for char in text.upper():
            glyph = GLYPHS.get(char, GLYPHS["*"])
            for row, bits in enumerate(glyph):
                for col, bit in enumerate(bits):
                    if bit == "#":
                        self.rect(
                            x + col * scale,
                            y + row * scale,
                            x + (col + 1) * scale - 1,
                            y + (row + 1) * scale - 1,
                            color,
                        )
            x += 6 * scale

    @staticmethod
    def text_width(text: str, scale: int = 2) -> int:
        return max(0, len(text) * 6 * scale - scale)

    def png(self) -> bytes:
        raw = b"".join(
            b"\x00" + bytes(self.pixels[3 * y * self.width : 3 * (y + 1) * self.width])
            for y in range(self.height)
        )

        def chunk(kind: bytes, data: bytes) -> bytes:
            body = kind + data
            return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b"")
        )

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.png())
        return path
