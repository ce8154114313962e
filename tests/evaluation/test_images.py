"""The evaluation shows the model each test image as it looks: a 16-bit PNG is not clipped to white."""

import numpy as np
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

from hf_finedefics.evaluation import LikelihoodScorer, load_mc_items, score_items
from hf_finedefics.testing import create_tiny_checkpoint


class ImageRecorder:
    """A real scorer that keeps the images it is shown."""

    def __init__(self, scorer):
        self.scorer, self.processor, self.chat = scorer, scorer.processor, scorer.chat
        self.images = []

    def score(self, images, chats, options):
        self.images += images
        return self.scorer.score(images, chats, options)


def test_a_16bit_test_image_is_scored_with_its_range(native_dataset, tmp_path):
    root, options_file = native_dataset("pet-37", images_per_class=1)
    items = load_mc_items("pet-37", root, options_file)
    gradient = np.tile(np.arange(256, dtype=np.uint8), (8, 1))
    Image.fromarray(gradient.astype(np.uint16) * 257).save(items[0].image, format="PNG")  # a 16-bit file
    path = create_tiny_checkpoint("llava")
    recorder = ImageRecorder(
        LikelihoodScorer(AutoModelForImageTextToText.from_pretrained(path).eval(), AutoProcessor.from_pretrained(path))
    )
    score_items(recorder, items[:1], tmp_path / "results.jsonl", superclass="pet")
    shown = np.asarray(recorder.images[0])
    assert (shown < 128).mean() > 0.4
    np.testing.assert_allclose(shown, np.repeat(gradient[..., None], 3, axis=-1), atol=1)
