"""Images as the models see them: 8-bit RGB, whatever mode the file was in. The one place that decides it, for the
dataset builders' generation backends, the evaluation and the demo (``hf_finedefics`` imports it from here, since
``dataset_builders`` imports nothing from ``hf_finedefics``).

Pillow's own ``convert("RGB")`` clips a 16-bit or 32-bit image to 0-255, so all but its darkest pixels turn white,
and drops transparency, so transparent pixels show whatever colour they hide (often black).
"""

from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image

# The largest value of each high-bit-depth mode's range; "F" (float) images hold 0-1 by convention.
_INTEGER_RANGES = {"I;16": 65535, "I;16L": 65535, "I;16B": 65535, "I;16N": 65535, "I": 65535}
_ALPHA_MODES = ("RGBA", "LA", "PA", "La", "RGBa")
# What transparent pixels become: the white of the page a browser shows them on.
BACKGROUND = (255, 255, 255)


def _to_8bit(image: Image.Image) -> Image.Image:
    """A 16-bit ("I;16*"), 32-bit integer ("I") or float ("F") image as 8-bit "L", its range scaled to 0-255.

    "I" is what Pillow opens 16-bit PNG and TIFF files as, so it is read as 16-bit; "F" as 0-1, unless it holds
    larger values, then as 0-255 (Pillow's convention)."""
    values = np.asarray(image, dtype=np.float64)
    if image.mode == "F":
        top = 1.0 if values.size and np.nanmax(values) <= 1.0 else 255.0
    else:
        top = _INTEGER_RANGES[image.mode]
    scaled = np.nan_to_num(values * (255.0 / top)).clip(0, 255).round()
    return Image.fromarray(scaled.astype(np.uint8))  # 2-D uint8: mode "L"


def to_rgb(image: Image.Image) -> Image.Image:
    """`image` as a new 8-bit RGB image with its pixel data loaded (usable after its file is closed): high bit
    depths scaled by their range, transparency composited onto white, palette, grey, CMYK and other modes converted
    by Pillow."""
    if image.mode in _INTEGER_RANGES or image.mode == "F":
        image = _to_8bit(image)
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, (*BACKGROUND, 255)), rgba).convert("RGB")
    return image.convert("RGB")


def open_rgb(source: str | os.PathLike | bytes) -> Image.Image:
    """The image in a file (a path or its bytes) as `to_rgb` gives it; its first frame for an animation."""
    with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
        return to_rgb(image)
