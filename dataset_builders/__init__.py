"""Build Finedefics training data (paper section 3.1): attribute triples, hard negatives and instructions.

    from dataset_builders import BuildConfig, build_dataset, load_source, load_sources

Sources read the six FGVR datasets from their native layouts (or any image folder); `attributes` turns
images into attribute descriptions with an LLM and a VQA model; `hard_negatives` mines CLIP negatives;
`publish` writes and uploads a Hub-ready dataset folder. Names are imported on first use, so the registry and the
command line's --help load without `datasets` and torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "AttributeDescriber": "attributes",
    "AttributePrompts": "attributes",
    "GenerationBackend": "attributes",
    "GenerationRequest": "attributes",
    "LocalBackend": "attributes",
    "OpenAICompatibleBackend": "attributes",
    "cub_ground_truth_descriptions": "attributes",
    "BuildConfig": "build",
    "build_dataset": "build",
    "AnswerCache": "cache",
    "ClipEncoder": "hard_negatives",
    "HardNegatives": "hard_negatives",
    "mine_hard_negatives": "hard_negatives",
    "DatasetCardInfo": "publish",
    "build_hard_negative_index": "publish",
    "build_instructions": "publish",
    "build_triples": "publish",
    "push_dataset_folder": "publish",
    "write_dataset_folder": "publish",
    "FGVR_BENCHMARKS": "registry",
    "REGISTRY": "registry",
    "SOURCES": "registry",
    "DatasetSpec": "registry",
    "get_spec": "registry",
    "SourceFormatError": "sources",
    "load_cub_attributes": "sources",
    "load_source": "sources",
    "load_sources": "sources",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'dataset_builders' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
