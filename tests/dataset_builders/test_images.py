"""Every image mode reaches the models as the 8-bit RGB image it shows: high bit depths scaled by their range (not
clipped to white), transparency on white."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from dataset_builders.images import open_rgb, to_rgb

# A horizontal grey ramp over the whole 8-bit range.
GRADIENT = np.tile(np.arange(256, dtype=np.uint8), (8, 1))


def _saved(image: Image.Image, format: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format)
    return buffer.getvalue()


def _rgb(values: np.ndarray) -> np.ndarray:
    return np.repeat(values[..., None], 3, axis=-1)


@pytest.mark.parametrize(
    ("image", "format", "mode"),
    [
        (Image.fromarray(GRADIENT.astype(np.uint16) * 257), "PNG", "I;16"),
        (Image.fromarray(GRADIENT.astype(np.int32) * 257), "TIFF", "I"),
        (Image.fromarray(GRADIENT.astype(np.float32) / 255), "TIFF", "F"),
    ],
)
def test_high_bit_depth_images_keep_their_range(image, format, mode, tmp_path):
    path = tmp_path / f"gradient.{format.lower()}"
    path.write_bytes(_saved(image, format))
    with Image.open(path) as opened:
        assert opened.mode == mode
    for loaded in (open_rgb(path), open_rgb(path.read_bytes())):
        pixels = np.asarray(loaded)
        assert loaded.mode == "RGB" and (pixels < 128).mean() > 0.4  # not the white Pillow's convert gives
        np.testing.assert_allclose(pixels, _rgb(GRADIENT), atol=1)  # the 8-bit version, within rounding


@pytest.mark.parametrize(
    "image",
    [
        Image.fromarray(np.dstack([_rgb(GRADIENT), np.where(GRADIENT < 128, 0, 255).astype(np.uint8)]), "RGBA"),
        Image.fromarray(np.dstack([GRADIENT, np.where(GRADIENT < 128, 0, 255).astype(np.uint8)]), "LA"),
    ],
)
def test_transparent_pixels_are_white(image):
    pixels = np.asarray(open_rgb(_saved(image, "PNG")))
    assert (pixels[:, :128] == 255).all()  # Pillow's convert shows the hidden grey
    np.testing.assert_array_equal(pixels[:, 128:], _rgb(GRADIENT)[:, 128:])


def test_palette_transparency_and_cmyk():
    palette = Image.fromarray(np.where(GRADIENT < 128, 0, 1).astype(np.uint8), "P")
    palette.putpalette([10, 20, 30, 200, 100, 50])
    palette.info["transparency"] = 0
    pixels = np.asarray(open_rgb(_saved(palette, "PNG")))
    assert (pixels[:, :128] == 255).all() and (pixels[:, 128:] == (200, 100, 50)).all()
    cmyk = Image.new("CMYK", (4, 4), (0, 255, 255, 0))  # pure red in ink
    assert to_rgb(cmyk).getpixel((0, 0)) == (255, 0, 0)


def test_rgb_is_a_loaded_copy(tmp_path):
    path = tmp_path / "rgb.png"
    Image.fromarray(_rgb(GRADIENT)).save(path)
    image = open_rgb(path)  # the file is closed: the pixels must already be read
    np.testing.assert_array_equal(np.asarray(image), _rgb(GRADIENT))
