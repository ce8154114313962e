"""Build Finedefics training data (paper section 3.1): attribute triples, hard negatives and instructions.

    from dataset_builders import BuildConfig, build_dataset, load_source, load_sources

Sources read the six FGVR datasets from their native layouts (or any image folder); `attributes` turns
images into attribute descriptions with an LLM and a VQA model; `hard_negatives` mines CLIP negatives;
`publish` writes and uploads a Hub-ready dataset folder.
"""

from __future__ import annotations

from .attributes import (
    AttributeDescriber,
    AttributePrompts,
    GenerationBackend,
    GenerationRequest,
    LocalBackend,
    OpenAICompatibleBackend,
    cub_ground_truth_descriptions,
)
from .build import BuildConfig, build_dataset
from .cache import AnswerCache
from .hard_negatives import ClipEncoder, HardNegatives, mine_hard_negatives
from .publish import (
    DatasetCardInfo,
    build_hard_negative_index,
    build_instructions,
    build_triples,
    push_dataset_folder,
    write_dataset_folder,
)
from .registry import FGVR_BENCHMARKS, REGISTRY, SOURCES, DatasetSpec, get_spec
from .sources import SourceFormatError, load_cub_attributes, load_source, load_sources

__all__ = [
    "SOURCES",
    "REGISTRY",
    "FGVR_BENCHMARKS",
    "DatasetSpec",
    "get_spec",
    "AnswerCache",
    "AttributeDescriber",
    "AttributePrompts",
    "BuildConfig",
    "ClipEncoder",
    "DatasetCardInfo",
    "GenerationBackend",
    "GenerationRequest",
    "HardNegatives",
    "LocalBackend",
    "OpenAICompatibleBackend",
    "SourceFormatError",
    "build_dataset",
    "build_hard_negative_index",
    "build_instructions",
    "build_triples",
    "cub_ground_truth_descriptions",
    "load_cub_attributes",
    "load_source",
    "load_sources",
    "mine_hard_negatives",
    "push_dataset_folder",
    "write_dataset_folder",
]
