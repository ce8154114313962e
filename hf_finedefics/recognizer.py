"""Recognise one image against candidate categories: rank by embedding similarity, answer the paper's
multiple-choice question, describe the distinguishing attributes. Library code behind the demo (`demo.py`).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from PIL import Image
from transformers import ProcessorMixin

from dataset_builders.prompts import GENERIC_SUPERCLASS, attribute_generation_prompt

from .chat import multiple_choice_chat, question_chat
from .embeddings import encode_images, encode_texts
from .evaluation.scoring import GenerationScorer, LikelihoodScorer

MULTIPLE_CHOICE_OPTIONS = 4  # the paper's 4-way protocol


@dataclass
class Recognition:
    """The outcome for one image."""

    options: list[str]  # the multiple-choice options, in the order shown to the model
    prediction: str
    reply: str  # the model's generated answer to the multiple-choice question
    answered_by: str  # "generation" or "likelihood" (when the reply names no option)
    top_k: list[tuple[str, float]]
    description: str


class FinedeficsRecognizer:
    """A loaded model and processor, with category-name embeddings cached per category set (`cache_sets` sets).

    Safe to call from several threads (the demo serves requests at once): one call at a time uses the model and the
    processor, whose tokenizer raises or returns wrong ids when two threads use it together.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        processor: ProcessorMixin,
        description_max_new_tokens: int = 96,
        cache_sets: int = 16,
    ):
        self.model, self.processor = model, processor
        self.generation = GenerationScorer(model, processor, description_max_new_tokens)
        self.likelihood = LikelihoodScorer(model, processor)
        # Reentrant: `recognize` holds it while `rank` and the embedding cache take it again.
        self._lock = threading.RLock()
        # Keyed by the category tuple on this instance, i.e. by model + category set; an entry is computed under
        # the lock, so no concurrent call can make it wrong.
        self.category_embeddings = functools.lru_cache(maxsize=cache_sets)(self._embed_categories)

    def _embed_categories(self, categories: tuple[str, ...]) -> torch.Tensor:
        with self._lock:
            return encode_texts(self.model, self.processor, list(categories))

    def rank(self, image: Image.Image, categories: Sequence[str]) -> list[tuple[str, float]]:
        """Every category with its cosine similarity to the object, most similar first (stage I's space)."""
        categories = tuple(categories)
        with self._lock:
            # Both sides are L2-normalised: the dot product is the cosine similarity.
            object_embedding = encode_images(self.model, self.processor, [image])[0]
            similarities = self.category_embeddings(categories) @ object_embedding
        return [(categories[index], similarities[index].item()) for index in similarities.argsort(descending=True)]

    def recognize(
        self, image: Image.Image, categories: Sequence[str], superclass: str | None = None, top_k: int = 5
    ) -> Recognition:
        """Rank `categories`, ask the 4-way question over the most similar four and describe the object."""
        with self._lock:
            ranking = self.rank(image, categories)
            # Alphabetical order, so the option letter does not give away the similarity rank.
            options = sorted((name for name, _ in ranking[:MULTIPLE_CHOICE_OPTIONS]), key=str.lower)
            question = multiple_choice_chat(self.processor, options, superclass)
            description_chat = question_chat(
                self.processor, attribute_generation_prompt(superclass or GENERIC_SUPERCLASS)
            )
            # One batched greedy generate call answers the question and writes the description (which has no
            # options to read back).
            answer, description = self.generation.score([image, image], [question, description_chat], [options, []])
            answered_by, chosen = "generation", answer["prediction"]
            if chosen is None:
                # The paper counts such a reply as wrong; show the model's pick by letter likelihood instead.
                chosen = self.likelihood.score([image], [question], [options])[0]["prediction"]
                answered_by = "likelihood"
            return Recognition(
                options, options[chosen], answer["response"], answered_by, ranking[:top_k], description["response"]
            )
