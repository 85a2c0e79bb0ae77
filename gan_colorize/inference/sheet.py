"""A contact sheet of what ``colorize`` did: one row per photograph, its input (as the network saw
it, in grey) beside the colorized output, each scaled to the same height. ``gan-colorize colorize
... --sheet sheet.png`` writes it after the batch, from the files it wrote, so the sheet shows
exactly what is on disk."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageOps

from gan_colorize.data.decode import open_image
from gan_colorize.rundir import atomic_write

ROW_HEIGHT = 256
MAX_PANEL_WIDTH = 1024  # a panorama's panels shrink to this width (lower rows), so the sheet stays viewable
GAP = 8
LABEL = 18  # pixels of caption above each row


def pair_row(source: Path, output: Path, height: int = ROW_HEIGHT) -> Image.Image:
    """[grey input | colorized output] at ``height`` pixels (lower for a panorama wider than
    ``MAX_PANEL_WIDTH`` at that height), captioned with the file name."""
    before = ImageOps.grayscale(open_image(source).convert("RGB")).convert("RGB")
    after = open_image(output).convert("RGB")
    scale = min(height / before.height, MAX_PANEL_WIDTH / before.width)
    size = (max(1, round(before.width * scale)), max(1, round(before.height * scale)))
    before, after = before.resize(size, Image.BICUBIC), after.resize(size, Image.BICUBIC)
    row = Image.new("RGB", (2 * size[0] + GAP, size[1] + LABEL), "white")
    row.paste(before, (0, LABEL))
    row.paste(after, (size[0] + GAP, LABEL))
    ImageDraw.Draw(row).text((2, 2), f"{source.name}: input | colorized", fill="black")
    return row


def write_sheet(pairs: list[tuple[Path, Path]], path: str | Path, height: int = ROW_HEIGHT) -> Path:
    """Stack the rows of ``pairs`` (source, colorized output) into one PNG at ``path``."""
    if not pairs:
        raise ValueError("no colorized image to put on the sheet")
    rows = [pair_row(src, out, height) for src, out in pairs]
    width = max(r.width for r in rows)
    sheet = Image.new("RGB", (width, sum(r.height for r in rows) + GAP * (len(rows) - 1)), "white")
    y = 0
    for row in rows:
        sheet.paste(row, (0, y))
        y += row.height + GAP
    return atomic_write(path, lambda tmp: sheet.save(tmp, format="PNG"))
