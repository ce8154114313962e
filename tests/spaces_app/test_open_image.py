"""The demo reads an upload as the image it shows: a 16-bit PNG is not clipped to white."""

import numpy as np
from PIL import Image

from hf_finedefics.demo import open_image


def test_a_16bit_png_upload_keeps_its_range(tmp_path):
    gradient = np.tile(np.arange(256, dtype=np.uint8), (8, 1))
    Image.fromarray(gradient.astype(np.uint16) * 257).save(tmp_path / "16bit.png")
    Image.fromarray(gradient).save(tmp_path / "8bit.png")
    image = np.asarray(open_image({"path": str(tmp_path / "16bit.png")}))
    assert (image < 128).mean() > 0.4
    np.testing.assert_allclose(image, np.asarray(open_image({"path": str(tmp_path / "8bit.png")})), atol=1)
