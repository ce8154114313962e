"""What a base model of the synthetic world perceives and knows, measured on held-out images.

- attribute perception: per attribute type, the share of images whose true value is the most likely answer to the
  attribute question (values ranked by `answer_log_likelihoods`, letter-free), and the share answered right when
  the values are lettered options (`LikelihoodScorer`: does the model point at the right letter?);
- knowledge: the share of categories whose attributes (text only) and whose name (from its attributes) are
  ranked first;
- embedding spread: how far apart the last-token embeddings stage I starts from are (`embedding_spread`): texts of
  one class against texts of other classes. At a temperature of 0.07 a contrastive loss sees little of embeddings
  that are all at cosine 0.9 of each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from dataset_builders.prompts import multiple_choice_prompt
from dataset_builders.sources.synthetic import ATTRIBUTE_TYPES, SyntheticCategory

from ..chat import question_chat
from ..evaluation.scoring import LikelihoodScorer, answer_log_likelihoods
from .data import attribute_phrase, attribute_question


def embedding_spread(embeddings: np.ndarray, labels: Sequence[int]) -> dict[str, float]:
    """Mean cosine between embeddings of different classes (`across`) and between distinct embeddings of the same
    class (`within`, NaN when every class has one member)."""
    normalized = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True).clip(1e-12)
    cosine = normalized @ normalized.T
    labels = np.asarray(labels)
    same = labels[:, None] == labels[None, :]
    distinct = ~np.eye(len(labels), dtype=bool)
    within = cosine[same & distinct]
    return {
        "across": float(cosine[~same].mean()),
        "within": float(within.mean()) if within.size else float("nan"),
    }


def _top1(scores: list[list[float]], truths: list[int]) -> float:
    return float(np.mean([int(np.argmax(row)) == truth for row, truth in zip(scores, truths)]))


def perception_report(
    model: Any,
    processor: Any,
    images: list[Image.Image],
    attributes: list[dict[str, str]],
    values: dict[str, list[str]],
    categories: list[SyntheticCategory],
    superclass: str,
    batch_size: int = 32,
) -> dict[str, Any]:
    """Accuracies (%) of attribute perception (by value likelihood and by letter) and of text knowledge."""
    report: dict[str, Any] = {"by_value": {}, "by_letter": {}, "knowledge": {}}
    letters = LikelihoodScorer(model, processor)
    subject = f"the {superclass} in this image"
    for attribute_type in ATTRIBUTE_TYPES:
        options = list(values[attribute_type])
        question = attribute_question(attribute_type, subject)
        truths = [options.index(a[attribute_type]) for a in attributes]
        by_value, by_letter = [], []
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size]
            by_value += answer_log_likelihoods(
                model, processor, batch, [question] * len(batch), [options] * len(batch)
            )
            chat = question_chat(processor, multiple_choice_prompt(options, question=question))
            by_letter += [r["prediction"] for r in letters.score(batch, [chat] * len(batch), [options] * len(batch))]
        report["by_value"][attribute_type] = 100 * _top1(by_value, truths)
        report["by_letter"][attribute_type] = 100 * float(np.mean([p == t for p, t in zip(by_letter, truths)]))
    names = [category.name for category in categories]
    for attribute_type in ATTRIBUTE_TYPES:
        options = list(values[attribute_type])
        scores = answer_log_likelihoods(
            model,
            processor,
            [None] * len(categories),
            [attribute_question(attribute_type, f"the {c.name}") for c in categories],
            [options] * len(categories),
        )
        report["knowledge"][f"{attribute_type} of a name"] = 100 * _top1(
            scores, [options.index(c.attributes[attribute_type]) for c in categories]
        )
    scores = answer_log_likelihoods(
        model,
        processor,
        [None] * len(categories),
        [f"Which {superclass} is a {attribute_phrase(c.attributes, superclass)}?" for c in categories],
        [names] * len(categories),
    )
    report["knowledge"]["name of attributes (of all)"] = 100 * _top1(scores, list(range(len(categories))))
    return report
