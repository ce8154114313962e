"""The embedded default's Finedefics model, as the demo and a Space use it when no model is given: the one a
finished `finedefics run` left in its default folder, else one built (once, then cached) by the embedded recipe's
steps for the `finedefics` variant alone."""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

from dataset_builders.cache import finedefics_cache_dir

from ..training_summary import is_finished_save
from .config import DEFAULT_OUTPUT_DIR
from .steps import Progress
from .variants import STAGES, VARIANT_TABLE, stage_dir

DEFAULT_VARIANT = "finedefics"


def _model_dir(run_dir: str | os.PathLike) -> Path:
    """Where a run in `run_dir` writes the default variant's evaluated model."""
    return stage_dir(run_dir, DEFAULT_VARIANT, VARIANT_TABLE[DEFAULT_VARIANT].evaluated_stage)


def default_run_model(run_dir: str | os.PathLike = DEFAULT_OUTPUT_DIR) -> Path | None:
    """The Finedefics model (stage II adapter) of a finished `finedefics run` in `run_dir`, or None."""
    model_dir = _model_dir(run_dir)
    return model_dir if is_finished_save(model_dir) else None


def default_run_dir() -> Path:
    """Where the embedded default model is built when no run has left one."""
    return finedefics_cache_dir() / "default-run"


def ensure_default_model(progress: Progress | None = None) -> Path:
    """The embedded default Finedefics model (its stage II adapter folder), built on first use."""
    # Imported here: the training pipeline is only needed when the default must be built.
    from .pipeline import FinedeficsRun
    from .recipe import load_run_config

    run = FinedeficsRun(load_run_config(output_dir=str(default_run_dir()), variants=[DEFAULT_VARIANT]), progress)
    model_dir = _model_dir(default_run_dir())
    if not is_finished_save(model_dir):
        stages = VARIANT_TABLE[DEFAULT_VARIANT].stages
        steps = [("building the synthetic training data", run.step_build)]
        steps += [(STAGES[stage].title, partial(run.step_train, DEFAULT_VARIANT, stage)) for stage in stages]
        for index, (message, step) in enumerate(steps):
            run.progress(index / len(steps), f"Building the default model: {message}")
            step()
        run.progress(1.0, "Default model ready")
    return model_dir
