"""PIL drawing for the built-in dataset: typed text, FigStep-style lists, shapes and digits.

Train and eval differ in look (fonts, colours, rotation, noise) but harmful and benign text
images never do: both go through `text_image` with styles drawn the same way, so "text in the
image" alone cannot predict a refusal. All randomness comes from the `random.Random` passed in,
so the same seed gives the same pixels.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")  # falls back to PIL's built-in font when absent
TRAIN_FONTS = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf")
EVAL_FONTS = ("DejaVuSansMono.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSansCondensed-Bold.ttf")

RGB = tuple[int, int, int]
# (background, foreground) pairs; eval uses colours never seen in train.
TRAIN_COLOURS: tuple[tuple[RGB, RGB], ...] = (
    ((255, 255, 255), (0, 0, 0)),
    ((250, 245, 225), (20, 30, 110)),
    ((235, 235, 235), (130, 20, 20)),
    ((220, 235, 250), (10, 10, 10)),
    ((255, 255, 255), (0, 90, 0)),
)
EVAL_COLOURS: tuple[tuple[RGB, RGB], ...] = (
    ((40, 40, 40), (255, 255, 255)),
    ((255, 228, 240), (90, 0, 120)),
    ((210, 250, 210), (0, 0, 130)),
    ((255, 250, 200), (150, 60, 0)),
)


@dataclass(frozen=True)
class Style:
    font: str  # file name under FONT_DIR
    bg: RGB
    fg: RGB
    rotation: float  # degrees
    noise: float  # blend weight of uniform noise, 0 = none


def font_source() -> str:
    """'dejavu' when the DejaVu fonts are installed, else 'default' (PIL's built-in font)."""
    return "dejavu" if all((FONT_DIR / f).is_file() for f in TRAIN_FONTS + EVAL_FONTS) else "default"


@lru_cache(maxsize=256)
def _font(font_dir: str, name: str, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    path = Path(font_dir) / name
    if path.is_file():
        return ImageFont.truetype(str(path), size)
    return ImageFont.load_default(size=size)


def get_font(name: str, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return _font(str(FONT_DIR), name, size)


def draw_style(rng: random.Random, split: str) -> Style:
    """A random look for one image: train looks and eval looks never overlap."""
    if split == "train":
        bg, fg = rng.choice(TRAIN_COLOURS)
        return Style(rng.choice(TRAIN_FONTS), bg, fg, rotation=rng.uniform(-4, 4), noise=0.0)
    bg, fg = rng.choice(EVAL_COLOURS)
    angle = rng.uniform(5, 10) * rng.choice((-1, 1))
    return Style(rng.choice(EVAL_FONTS), bg, fg, rotation=angle, noise=rng.uniform(0.08, 0.18))


def _finish(img: Image.Image, style: Style, rng: random.Random) -> Image.Image:
    img = img.rotate(style.rotation, resample=Image.Resampling.BICUBIC, fillcolor=style.bg)
    if style.noise > 0:
        side = img.size[0]
        noise = Image.frombytes("L", (side, side), rng.randbytes(side * side)).convert("RGB")
        img = Image.blend(img, noise, style.noise)
    return img


def _wrap(words: Sequence[str], font, max_width: float) -> list[str]:
    lines: list[str] = []
    for word in words:
        if lines and font.getlength(lines[-1] + " " + word) <= max_width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines


def text_image(
    paragraphs: Sequence[str],
    size: int,
    style: Style,
    font_px: int,
    rng: random.Random,
    *,
    align: str = "center",
) -> Image.Image:
    """Typed text, word-wrapped, shrunk from font_px until it fits; each paragraph starts a line."""
    margin = max(5, size // 14)  # room for the rotation applied afterwards
    width = size - 2 * margin
    for px in range(font_px, min(font_px, 8) - 1, -1):  # the smallest size is drawn even if it overflows
        font = get_font(style.font, px)
        line_h = int(px * 1.2)
        lines = [line for p in paragraphs for line in _wrap(p.split(), font, width)]
        if len(lines) * line_h <= size - 2 * margin and all(font.getlength(t) <= width for t in lines):
            break
    img = Image.new("RGB", (size, size), style.bg)
    draw = ImageDraw.Draw(img)
    block_h = len(lines) * line_h
    y = margin + rng.randint(0, max(0, size - 2 * margin - block_h))
    for line in lines:
        line_w = font.getlength(line)
        x = margin + (width - line_w) / 2 if align == "center" else margin + rng.randint(0, 3)
        draw.text((x, y), line, fill=style.fg, font=font)
        y += line_h
    return _finish(img, style, rng)


def _shape(draw: ImageDraw.ImageDraw, kind: str, cx: float, cy: float, r: float, fill: RGB) -> None:
    if kind == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif kind == "square":
        s = r * 0.85
        draw.rectangle((cx - s, cy - s, cx + s, cy + s), fill=fill)
    elif kind == "triangle":
        draw.polygon(((cx, cy - r), (cx + r * 0.95, cy + r * 0.8), (cx - r * 0.95, cy + r * 0.8)), fill=fill)
    else:
        raise ValueError(f"unknown shape {kind!r}")


def _place(
    n: int, size: int, margin: float, r: float, rng: random.Random
) -> list[tuple[float, float]] | None:
    centres: list[tuple[float, float]] = []
    for _ in range(400):
        if len(centres) == n:
            return centres
        c = (rng.uniform(margin + r, size - margin - r), rng.uniform(margin + r, size - margin - r))
        if all((c[0] - o[0]) ** 2 + (c[1] - o[1]) ** 2 > (2.3 * r) ** 2 for o in centres):
            centres.append(c)
    return centres if len(centres) == n else None


def shapes_image(
    shapes: Sequence[tuple[str, int]], size: int, style: Style, rng: random.Random
) -> Image.Image:
    """Non-overlapping filled shapes, e.g. [("circle", 3), ("square", 2)]."""
    kinds = [k for k, n in shapes for _ in range(n)]
    rng.shuffle(kinds)
    margin = size * 0.12
    r = size * rng.uniform(0.06, 0.085)
    centres = _place(len(kinds), size, margin, r, rng)
    while centres is None:  # too crowded: retry smaller
        r *= 0.9
        centres = _place(len(kinds), size, margin, r, rng)
    img = Image.new("RGB", (size, size), style.bg)
    draw = ImageDraw.Draw(img)
    for kind, (cx, cy) in zip(kinds, centres, strict=True):
        _shape(draw, kind, cx, cy, r, style.fg)
    return _finish(img, style, rng)


def digit_image(pixels: Sequence[float], size: int, style: Style, rng: random.Random) -> Image.Image:
    """An 8x8 digit (values 0..16, sklearn's load_digits) upscaled and drawn in the style's colours."""
    # load_digits values run 0..16 with faint 1-2 smudges in the background: drop those.
    mask = Image.frombytes("L", (8, 8), bytes(min(255, int(max(0.0, v - 2) * 255 / 14)) for v in pixels))
    side = int(size * rng.uniform(0.55, 0.8))
    mask = mask.resize((side, side), Image.Resampling.BILINEAR)
    img = Image.new("RGB", (size, size), style.bg)
    ink = Image.new("RGB", (side, side), style.fg)
    img.paste(ink, (rng.randint(0, size - side), rng.randint(0, size - side)), mask)
    return _finish(img, style, rng)
