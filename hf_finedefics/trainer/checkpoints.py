"""What a (re)run of a stage starts from: a finished output, the last complete checkpoint, or nothing.

A kill can stop a save half-way. The Trainer writes `trainer_state.json` last into a checkpoint, and the Finedefics
trainers write their training summary (`training_summary.TRAINING_SUMMARY_NAME`) last into every save, so a folder
without them (or with them cut short) is an interrupted save: it is skipped with a warning, never resumed from
or taken for a finished stage (`training_summary.is_finished_save`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transformers import Trainer, TrainingArguments
from transformers.trainer import TRAINER_STATE_NAME

from ..folder_lock import folder_lock
from ..training_summary import TRAINING_SUMMARY_NAME, load_training_summary, settings_changes, training_summary

if TYPE_CHECKING:
    from torch import nn

logger = logging.getLogger(__name__)

# What the checkpoints of `output_dir` were trained from (`training_identity`), beside them.
RESUME_NAME = "_finedefics_resume.json"  # "_": left out of the Trainer's Hub uploads

_CHECKPOINT = re.compile(r"checkpoint-(\d+)")


def _read_json(path: Path) -> Any:
    """The JSON in `path`, or None when it is missing or unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _readable_json(path: Path) -> bool:
    return _read_json(path) is not None


def last_complete_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    """The highest-numbered `checkpoint-N` of `output_dir` whose save finished; interrupted ones are skipped with a
    warning (the Trainer saves over them when it gets there again)."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return None
    checkpoints = [path for path in folder.iterdir() if path.is_dir() and _CHECKPOINT.fullmatch(path.name)]
    for checkpoint in sorted(checkpoints, key=lambda path: int(path.name.split("-")[1]), reverse=True):
        if _readable_json(checkpoint / TRAINER_STATE_NAME):
            return checkpoint
        logger.warning(
            "%s is incomplete (no readable %s: its save was interrupted); it is skipped.",
            checkpoint,
            TRAINER_STATE_NAME,
        )
    return None


def stage_lock(args: TrainingArguments) -> contextlib.AbstractContextManager:
    """The lock of a stage's output folder, held by the process that saves (`folder_lock.folder_lock`): a second
    command training into the folder would resume from, or save over, the first's checkpoints while it trains."""
    return folder_lock(Path(args.output_dir)) if args.should_save else contextlib.nullcontext()


def training_identity(model: nn.Module, train_dataset: Any) -> dict[str, Any]:
    """What a checkpoint's weights and optimizer state depend on beyond the training arguments: the base model, the
    LoRA shape (another rank cannot even be loaded) and the training data (`datasets`' fingerprint)."""
    peft_config = next(
        (
            next(iter(module.peft_config.values()))
            for module in model.modules()
            if getattr(module, "peft_config", None)
        ),
        None,
    )
    if peft_config is not None:
        base = peft_config.base_model_name_or_path
        targets = peft_config.target_modules
        lora = {
            "r": peft_config.r,
            "alpha": peft_config.lora_alpha,
            "target modules": sorted(targets) if isinstance(targets, set | list | tuple) else targets,
        }
    else:
        base = next(module.config.name_or_path for module in model.modules() if hasattr(module, "config"))
        lora = None
    base = str(Path(base).resolve()) if base and Path(base).is_dir() else base
    return {"base model": base, "LoRA": lora, "dataset": getattr(train_dataset, "_fingerprint", None)}


def resume_checkpoint(args: TrainingArguments, model: nn.Module, train_dataset: Any) -> str | None:
    """The checkpoint `Trainer.train` resumes from: `args.resume_from_checkpoint` when set, else the last complete
    checkpoint in `args.output_dir` saved with the same training settings, base model, LoRA shape and data, so that
    rerunning a stopped command continues it instead of training from step 0 over its checkpoints. A checkpoint of
    anything else is refused, saying how to go on. What the run is made of is recorded in `RESUME_NAME`."""
    identity = json.loads(json.dumps(training_identity(model, train_dataset)))
    checkpoint = None if args.resume_from_checkpoint else last_complete_checkpoint(args.output_dir)
    if checkpoint is not None:
        _refuse_other_runs(args, checkpoint, identity)
        logger.warning(
            "Resuming from %s, the last complete checkpoint of this run in %s.", checkpoint, args.output_dir
        )
    if args.should_save:
        Path(args.output_dir).mkdir(parents=True, exist_ok=True)
        (Path(args.output_dir) / RESUME_NAME).write_text(json.dumps(identity, indent=2) + "\n", encoding="utf-8")
    return args.resume_from_checkpoint or (str(checkpoint) if checkpoint is not None else None)


def _refuse_other_runs(args: TrainingArguments, checkpoint: Path, identity: dict[str, Any]) -> None:
    try:
        saved = load_training_summary(checkpoint)
    except ValueError:
        saved = None
    if saved is None:
        why = f"its settings are unknown (it has no readable {TRAINING_SUMMARY_NAME})"
    else:
        current = json.loads(json.dumps(training_summary(args)))
        # Checkpoints of versions before `RESUME_NAME` are compared on their training settings only.
        before = {**saved["hyperparameters"], **(_read_json(Path(args.output_dir) / RESUME_NAME) or identity)}
        now = {**current["hyperparameters"], **identity}
        changed = settings_changes({"stage": saved["stage"]}, {"stage": current["stage"]})
        changed += settings_changes(before, now)
        if not changed:
            return
        why = f"it was trained with other settings ({'; '.join(changed)})"
    raise ValueError(
        f"{args.output_dir} holds {checkpoint.name}, but {why}. To continue that run anyway, pass "
        f"--resume_from_checkpoint {checkpoint}; to start over, choose another --output_dir or delete its "
        "checkpoint-* folders."
    )


def train_and_save(
    build_trainer: Callable[[], Trainer], args: TrainingArguments, train_dataset: Any, dataset_name: str | None = None
) -> Path:
    """What every stage command does once its trainer is defined: hold the output folder's lock, build the trainer,
    train (resuming this run's last checkpoint), then save the adapter with its processor to `output_dir`, or push
    it to the Hub when `push_to_hub` is set (which saves, writes the card and uploads once); returns `output_dir`."""
    with stage_lock(args):
        trainer = build_trainer()
        trainer.train(resume_from_checkpoint=resume_checkpoint(args, trainer.model, train_dataset))
        if args.push_to_hub:
            trainer.push_to_hub(dataset_name=dataset_name)
        else:
            trainer.save_model(args.output_dir)
    return Path(os.fspath(args.output_dir))
