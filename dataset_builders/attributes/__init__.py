"""Attribute description construction: prompts, backends, the three-step pipeline and ablation variants."""

from __future__ import annotations

from .ablations import cub_ground_truth_descriptions, ground_truth_description
from .backends import GenerationBackend, GenerationRequest, LocalBackend, OpenAICompatibleBackend
from .pipeline import (
    ATTRIBUTE_TYPE_KEYWORDS,
    AttributeDescriber,
    ImageAnswers,
    parse_attribute_list,
    remove_attribute_types,
)
from .prompts import AttributePrompts

__all__ = [
    "ATTRIBUTE_TYPE_KEYWORDS",
    "AttributeDescriber",
    "AttributePrompts",
    "GenerationBackend",
    "GenerationRequest",
    "ImageAnswers",
    "LocalBackend",
    "OpenAICompatibleBackend",
    "cub_ground_truth_descriptions",
    "ground_truth_description",
    "parse_attribute_list",
    "remove_attribute_types",
]
