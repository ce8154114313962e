"""The training summary: what a Finedefics save records about its run, read by resuming, the run steps and the Hub.

Every save of a Finedefics trainer ends with `TRAINING_SUMMARY_NAME` (`hub.FinedeficsModelCardMixin` writes it
last), plain JSON with the stage, the training settings and the library versions. Resuming compares it with the
settings of the new run, the model card lists it, and its presence marks a save as finished (`is_finished_save`).
This module sits below the trainers, the run steps and the Hub code, so none of them imports the others for it;
it imports neither torch nor transformers at import time (the run steps and the command line stay light).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import TrainingArguments

logger = logging.getLogger(__name__)

# What the model card needs from a training run, written beside every save (the pickled training_args.bin is not
# safe to load from a folder someone else made).
TRAINING_SUMMARY_NAME = "finedefics_training.json"
STAGE_TAGS = {
    "stage1": "contrastive-alignment",
    "stage2": "instruction-tuning",
    "stage3": "reinforcement-fine-tuning",
}
FRAMEWORKS = {
    "hf-finedefics": "hf-finedefics",
    "PEFT": "peft",
    "TRL": "trl",
    "Transformers": "transformers",
    "PyTorch": "torch",
    "Datasets": "datasets",
    "Tokenizers": "tokenizers",
}


def settings_changes(before: Mapping[str, Any], now: Mapping[str, Any], show: Callable[[Any], str] = str) -> list[str]:
    """What differs between two sets of settings, as 'key: before -> now' in the order the keys first appear (a
    key missing on one side shows as None). `show` writes a value: `repr` keeps '1' and 1 apart."""
    return [
        f"{key}: {show(before.get(key))} -> {show(now.get(key))}"
        for key in dict.fromkeys([*before, *now])
        if before.get(key) != now.get(key)
    ]


def training_stage(training_args: TrainingArguments | None) -> str | None:
    """'stage1', 'stage2' or 'stage3' as the stage config says, None for other training arguments."""
    return getattr(training_args, "finedefics_stage", None)


def training_hyperparameters(training_args: TrainingArguments) -> dict[str, Any]:
    """The training settings a reader needs to reproduce the run, in the order the card lists them."""
    table: dict[str, Any] = {
        "learning rate": training_args.learning_rate,
        "scheduler": str(getattr(training_args.lr_scheduler_type, "value", training_args.lr_scheduler_type)),
        "warm-up steps": training_args.warmup_steps,
        "weight decay": training_args.weight_decay,
        "epochs": training_args.num_train_epochs,
        "per-device batch size": training_args.per_device_train_batch_size,
        "gradient accumulation steps": training_args.gradient_accumulation_steps,
        "global batch size": training_args.per_device_train_batch_size
        * training_args.gradient_accumulation_steps
        * training_args.world_size,
        "precision": "bf16" if training_args.bf16 else "fp16" if training_args.fp16 else "fp32",
        "seed": training_args.seed,
    }
    # Each stage config lists what is its own (the objective, the instruction data); the card never branches on it.
    card_rows = getattr(training_args, "card_rows", None)
    return table | (card_rows() if card_rows is not None else {})


def framework_versions() -> dict[str, str]:
    """The versions of the libraries that train and load a Finedefics model (the card's "Framework versions")."""
    return {name: version(package) for name, package in FRAMEWORKS.items()}


def training_summary(training_args: TrainingArguments) -> dict[str, Any]:
    """What the model card says about a run, as plain JSON written beside the adapter (`TRAINING_SUMMARY_NAME`)."""
    return {
        "stage": training_stage(training_args),
        "hyperparameters": training_hyperparameters(training_args),
        "framework_versions": framework_versions(),
    }


def load_training_summary(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The `training_summary` saved in `folder`, or None when the folder has none (the card then lists no training
    hyper-parameters). `training_args.bin` is never read: unpickling a file from someone else's folder can run
    their code."""
    path = Path(folder) / TRAINING_SUMMARY_NAME
    if not path.is_file():
        from transformers.trainer import TRAINING_ARGS_NAME  # here: importing transformers' Trainer loads torch

        if (Path(folder) / TRAINING_ARGS_NAME).is_file():
            logger.warning(
                "%s has no %s (written by hf-finedefics trainers since the fix of pickle loading); %s is not read "
                "because unpickling it could run code: the model card will list no training hyper-parameters.",
                folder,
                TRAINING_SUMMARY_NAME,
                TRAINING_ARGS_NAME,
            )
        return None
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from error
    if (
        not isinstance(summary, dict)
        or summary.get("stage") not in (*STAGE_TAGS, None)
        or not isinstance(summary.get("hyperparameters"), dict)
    ):
        raise ValueError(
            f"{path} must be an object with 'stage' ({', '.join(STAGE_TAGS)} or null) and 'hyperparameters' "
            f"(an object); got {str(summary)[:200]}"
        )
    return summary


def is_finished_save(folder: str | os.PathLike) -> bool:
    """Whether `folder` holds a finished save of a Finedefics trainer (its training summary, written last)."""
    try:
        return json.loads((Path(folder) / TRAINING_SUMMARY_NAME).read_text(encoding="utf-8")) is not None
    except (OSError, ValueError):
        return False
