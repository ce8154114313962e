"""Requests served at once share one model and processor: each gets the answer it would get alone, and the
category-embedding cache keeps only right entries (the tokenizer, used from two threads, raised or returned wrong
ids)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from PIL import Image

from hf_finedefics.modeling import load_finedefics_model
from hf_finedefics.recognizer import FinedeficsRecognizer

THREADS = 8
REQUESTS = 32


def _requests() -> list[tuple[Image.Image, tuple[str, ...]]]:
    """Distinct images and category sets of different sizes, so the concurrent texts tokenize and pad differently."""
    rng = np.random.default_rng(0)
    requests = []
    for index in range(REQUESTS):
        image = Image.fromarray(rng.integers(0, 256, (24 + index % 5, 32, 3), dtype=np.uint8))
        words = 5 + index % 7
        categories = tuple(f"{'spotted ' * (k % 3)}species {index} number {k}" for k in range(words))
        requests.append((image, categories))
    return requests


@pytest.fixture(scope="module")
def model_and_processor(demo_checkpoint):
    return load_finedefics_model(demo_checkpoint)


def _recognizer(model_and_processor) -> FinedeficsRecognizer:
    return FinedeficsRecognizer(*model_and_processor, description_max_new_tokens=6, cache_sets=REQUESTS)


def test_concurrent_requests_get_their_sequential_answers(model_and_processor):
    requests = _requests()
    alone = _recognizer(model_and_processor)
    expected = [alone.recognize(image, categories, superclass="critter") for image, categories in requests]

    shared = _recognizer(model_and_processor)
    with ThreadPoolExecutor(THREADS) as pool:
        futures = [pool.submit(shared.recognize, image, categories, "critter") for image, categories in requests]
        results = [future.result() for future in futures]  # re-raises what a thread raised
    assert results == expected
    for _, categories in requests:  # every cached embedding is the one computed alone
        torch.testing.assert_close(shared.category_embeddings(categories), alone.category_embeddings(categories))
    assert shared.category_embeddings.cache_info().misses == REQUESTS
