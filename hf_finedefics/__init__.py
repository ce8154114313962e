"""hf-finedefics: fine-grained visual recognition for multimodal LLMs (Finedefics, ICLR 2025).

Public entry points are imported lazily so `import hf_finedefics` and the `finedefics` command stay fast.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "ContrastiveAlignmentConfig": "trainer.contrastive_alignment_config",
    "ContrastiveAlignmentTrainer": "trainer.contrastive_alignment_trainer",
    "train_stage1": "trainer.contrastive_alignment_trainer",
    "InstructionTuningConfig": "trainer.instruction_tuning_config",
    "InstructionTuningTrainer": "trainer.instruction_tuning_trainer",
    "train_stage2": "trainer.instruction_tuning_trainer",
    "ReinforcementConfig": "trainer.reinforcement_config",
    "ReinforcementTrainer": "trainer.reinforcement_trainer",
    "train_stage3": "trainer.reinforcement_trainer",
    "FinedeficsModelConfig": "trainer.model_config",
    "ContrastiveAlignmentModel": "objectives",
    "stage1_objective": "objectives",
    "ContrastiveAlignmentCollator": "collators",
    "AttributeAugmentedContrastiveLoss": "losses",
    "AttributeAugmentedLossConfig": "losses",
    "attribute_augmented_losses": "losses",
    "merge_adapter": "modeling",
    "load_finedefics_model": "modeling",
    "encode_images": "embeddings",
    "encode_texts": "embeddings",
    "get_backbone": "backbones",
    "load_mc_items": "evaluation",
    "parse_choice": "evaluation",
    "evaluate_model": "evaluation",
    "run_analysis": "analysis",
    "run_pipeline": "run.pipeline",
}

__all__ = sorted(_EXPORTS)


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """A package's module `__getattr__` (PEP 562) importing each of `exports` ({name: submodule}) on first use, so
    importing the package (and the command line's --help) does not load torch."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f".{exports[name]}", package), name)

    return __getattr__


__getattr__ = lazy_exports(__name__, _EXPORTS)
