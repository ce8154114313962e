"""Descriptions for the paper's ablations that do not come from the VQA + LLM pipeline.

- Ground-truth attributes (Table 6e upper bound): CUB's human per-image attribute annotations, written out
  as text. The tag-based baseline and attribute-type removal live in `AttributeDescriber`
  (`describe_by_class`, `removed_attribute_types`).
"""

from __future__ import annotations

from pathlib import Path

import datasets

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
