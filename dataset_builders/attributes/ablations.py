"""Descriptions for the paper's ablations that do not come from the VQA + LLM pipeline.

- Ground-truth attributes (Table 6e upper bound): CUB's human per-image attribute annotations, written out
  as text. The tag-based baseline and attribute-type removal live in `AttributeDescriber`
  (`describe_by_class`, `removed_attribute_types`).
- Noisy descriptions (Table 6c): a set fraction of all attribute sentences replaced by sentences of other
  categories' descriptions (`noisy_descriptions`).
- Short descriptions (Table 6d): each description cut to its first sentence (`short_descriptions`).
"""

from __future__ import annotations

import re
from pathlib import Path

import datasets
import numpy as np

from ..sources import load_cub_attributes


def ground_truth_description(annotations: list[tuple[str, str]], superclass: str = "bird") -> str:
    """[("wing color", "blue"), ("wing color", "white"), ("bill shape", "cone")] ->
    "Wing color: blue, white. Bill shape: cone." (attributes in order of first mention)."""
    values: dict[str, list[str]] = {}
    for attribute, value in annotations:
        values.setdefault(attribute, []).append(value)
    if not values:
        return f"No attributes of this {superclass} are annotated as clearly visible."
    return " ".join(
        f"{attribute[:1].upper()}{attribute[1:]}: {', '.join(vals)}." for attribute, vals in values.items()
    )


def cub_ground_truth_descriptions(
    dataset: datasets.Dataset, data_dir: str | Path, min_certainty: int = 3
) -> list[str]:
    """The ground-truth description of every row of a `bird-200` source dataset (needs its `cub_image_id`)."""
    if "cub_image_id" not in dataset.column_names:
        raise ValueError("Ground-truth attributes need a bird-200 source (its rows carry `cub_image_id`).")
    annotations = load_cub_attributes(data_dir, min_certainty=min_certainty)
    missing = [image_id for image_id in dataset["cub_image_id"] if image_id not in annotations]
    if missing:
        raise ValueError(f"image_attribute_labels.txt has no annotations for CUB image id(s) {missing[:5]}.")
    return [ground_truth_description(annotations[image_id]) for image_id in dataset["cub_image_id"]]


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def sentences(description: str) -> list[str]:
    """A description split after each ".", "!" or "?" followed by white space."""
    return [sentence for sentence in _SENTENCE_END.split(description.strip()) if sentence]


def short_descriptions(descriptions: list[str]) -> list[str]:
    """Table 6d: every description cut to its first sentence."""
    return [(sentences(description) or [description])[0] for description in descriptions]


def noisy_descriptions(descriptions: list[str], labels: list[int], fraction: float, seed: int = 0) -> list[str]:
    """Table 6c: `round(fraction * number of sentences)` sentences, chosen at random over all descriptions, each
    replaced by a random sentence of a description of another category (`labels[i]` is row i's category)."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"The noisy fraction must be in [0, 1], got {fraction}.")
    if len(descriptions) != len(labels):
        raise ValueError(f"{len(descriptions)} descriptions but {len(labels)} labels.")
    split = [sentences(description) or [description] for description in descriptions]
    positions = [(row, index) for row, parts in enumerate(split) for index in range(len(parts))]
    if fraction > 0 and len(set(labels)) < 2:
        raise ValueError("Noisy descriptions need at least two categories (noise comes from another category).")
    generator = np.random.default_rng(seed)
    chosen = generator.choice(len(positions), size=round(fraction * len(positions)), replace=False)
    noisy = [list(parts) for parts in split]
    for position in sorted(chosen.tolist()):
        row, index = positions[position]
        donor = row
        while labels[donor] == labels[row]:  # rejection sampling: cheap when there are many categories
            donor = int(generator.integers(len(descriptions)))
        noisy[row][index] = split[donor][int(generator.integers(len(split[donor])))]
    return [" ".join(parts) for parts in noisy]
