"""The demo's real camera-trap photos through MegadetectorLite: one line per photo and a picture with its boxes.

The photos (assets/photos, attribution in ATTRIBUTION.md there) run through the same `Detector` the service and
the batch jobs use; each annotated copy is written to the output directory as <photo>.jpg, and all of them on one
picture (all-photos.jpg, what docs/megadetector_demo.jpg shows).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from model_store.core.records import ImageDetections
from model_store.demo.megadetector import NAME
from model_store.store.store import ModelStore

PHOTOS = Path(__file__).resolve().parent / "assets" / "photos"
BOX_RGB = (255, 64, 32)
SHEET = "all-photos.jpg"  # every boxed photo on one picture, beside the photos in the output directory


def draw(rgb: np.ndarray, record: ImageDetections) -> Image.Image:
    """The photo with each kept detection boxed and labelled "animal 0.69"."""
    image = Image.fromarray(rgb)
    pen = ImageDraw.Draw(image)
    width = max(2, round(min(image.size) / 200))
    for d in record.detections:
        x1, y1, x2, y2 = d.box_px
        pen.rectangle((x1, y1, x2, y2), outline=BOX_RGB, width=width)
        text = f"{d.label} {d.score:.2f}"
        left, top, right, bottom = pen.textbbox((x1, y1), text)
        top_y = max(0.0, y1 - (bottom - top) - 2 * width)
        pen.rectangle((x1, top_y, x1 + right - left + 2 * width, top_y + bottom - top + 2 * width), fill=BOX_RGB)
        pen.text((x1 + width, top_y + width - (top - y1)), text, fill=(255, 255, 255))
    return image


def contact_sheet(images: list[Image.Image], height: int = 300, per_row: int = 2) -> Image.Image:
    """The boxed photos side by side, `per_row` to a row, each scaled to `height` (the README's picture)."""
    scaled = [im.resize((round(im.width * height / im.height), height), Image.Resampling.LANCZOS) for im in images]
    rows = [scaled[i:i + per_row] for i in range(0, len(scaled), per_row)]
    sheet = Image.new("RGB", (max(sum(im.width for im in row) for row in rows), height * len(rows)), "white")
    for y, row in enumerate(rows):
        x = 0
        for im in row:
            sheet.paste(im, (x, y * height))
            x += im.width
    return sheet


def run_photos(store: ModelStore, out: Path, photos: Path = PHOTOS) -> list[str]:
    """Detect on every photo with megadetector-lite@production; returns one printable line per photo."""
    detector = store.load_detector(f"{NAME}@production")
    out.mkdir(parents=True, exist_ok=True)
    lines, boxed = [], []
    for path in sorted(photos.glob("*.jpg")):
        rgb = np.asarray(Image.open(path).convert("RGB"))
        [record] = detector.predict_batch([rgb])
        boxed.append(draw(rgb, record))
        boxed[-1].save(out / path.name, quality=90)
        found = ", ".join(f"{d.label} {d.score:.2f} at {[round(v) for v in d.box_px]}" for d in record.detections)
        lines.append(f"{path.name}: {found or 'nothing'}")
    if boxed:
        contact_sheet(boxed).save(out / SHEET, quality=80)
    return lines
