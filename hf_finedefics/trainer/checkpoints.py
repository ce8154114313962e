"""What a (re)run of a stage starts from: a finished output, the last complete checkpoint, or nothing.

A kill can stop a save half-way. The Trainer writes `trainer_state.json` last into a checkpoint, and the Finedefics
trainers write `finedefics_training.json` last into every save (`hub.FinedeficsModelCardMixin`), so a folder
without them (or with them cut short) is an interrupted save: it is skipped with a warning, never resumed from
or taken for a finished stage.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

from transformers import TrainingArguments
from transformers.trainer import TRAINER_STATE_NAME

from ..hub import TRAINING_SUMMARY_NAME, load_training_summary, training_summary

logger = logging.getLogger(__name__)

_CHECKPOINT = re.compile(r"checkpoint-(\d+)")


def _readable_json(path: Path) -> bool:
    try:
        json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return True


def is_finished_save(folder: str | os.PathLike) -> bool:
    """Whether `folder` holds a finished save of a Finedefics trainer (its training summary, written last)."""
    return _readable_json(Path(folder) / TRAINING_SUMMARY_NAME)


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


def resume_checkpoint(args: TrainingArguments) -> str | None:
    """The checkpoint `Trainer.train` resumes from: `args.resume_from_checkpoint` when set, else the last complete
    checkpoint in `args.output_dir` saved with the same training settings, so that rerunning a stopped command
    continues it instead of training from step 0 over its checkpoints. A checkpoint of other settings is refused,
    saying how to go on."""
    if args.resume_from_checkpoint:
        return args.resume_from_checkpoint
    checkpoint = last_complete_checkpoint(args.output_dir)
    if checkpoint is None:
        return None
    try:
        saved = load_training_summary(checkpoint)
    except ValueError:
        saved = None
    current = json.loads(json.dumps(training_summary(args)))
    if saved != current:
        if saved is None:
            why = f"its settings are unknown (it has no readable {TRAINING_SUMMARY_NAME})"
        else:
            before, now = saved["hyperparameters"], current["hyperparameters"]
            changed = [
                f"{name}: {before.get(name)} -> {now.get(name)}"
                for name in dict.fromkeys([*before, *now])
                if before.get(name) != now.get(name)
            ]
            if saved["stage"] != current["stage"]:
                changed.insert(0, f"stage: {saved['stage']} -> {current['stage']}")
            why = f"it was trained with other settings ({'; '.join(changed)})"
        raise ValueError(
            f"{args.output_dir} holds {checkpoint.name}, but {why}. To continue that run anyway, pass "
            f"--resume_from_checkpoint {checkpoint}; to start over, choose another --output_dir or delete its "
            "checkpoint-* folders."
        )
    logger.warning("Resuming from %s, the last complete checkpoint of this run in %s.", checkpoint, args.output_dir)
    return str(checkpoint)
