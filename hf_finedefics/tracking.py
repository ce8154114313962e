"""Experiment trackers, named by `report_to` as the Trainer reads it: each is checked to be installed before any
model loads (the Trainer raises only once it is built, after the model has loaded), and the evaluation's results are
logged to the same trackers as the training. TensorBoard and Trackio are the package's optional extras
(`pip install "hf-finedefics[tensorboard]"`, `"hf-finedefics[trackio]"`)."""

from __future__ import annotations

import importlib.util
import os

# The trackers evaluation results go to, each with the modules that make it available (as transformers checks it).
TRACKERS = {"tensorboard": ("tensorboard", "tensorboardX"), "trackio": ("trackio",)}


def trackers(report_to: str | list[str] | None) -> list[str]:
    """`report_to` resolved as `TrainingArguments` resolves it: "none" is none, "all" every tracker installed."""
    if report_to is None or report_to in ("none", ["none"]):
        return []
    if report_to in ("all", ["all"]):
        from transformers.integrations import get_available_reporting_integrations

        return get_available_reporting_integrations()
    return [report_to] if isinstance(report_to, str) else list(report_to)


def check_trackers(report_to: str | list[str] | None) -> list[str]:
    """The trackers of `report_to`; one of ours that is not installed is refused with one line naming its extra."""
    names = trackers(report_to)
    for name in names:
        if name in TRACKERS and not any(importlib.util.find_spec(module) for module in TRACKERS[name]):
            raise ValueError(
                f'report_to {name}: {name} is not installed; install it with pip install "hf-finedefics[{name}]".'
            )
    return names


def log_metrics(
    report_to: list[str], metrics: dict[str, float], logging_dir: str | os.PathLike, project: str, run_name: str
) -> None:
    """Log `metrics` once to each of our trackers in `report_to` (resolved): TensorBoard event files under
    `logging_dir`, a Trackio run `run_name` of `project`."""
    if not metrics:
        return
    if "tensorboard" in report_to:
        try:  # the writer the Trainer's TensorBoard callback uses
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            from tensorboardX import SummaryWriter

        writer = SummaryWriter(log_dir=str(logging_dir))
        for name, value in metrics.items():
            writer.add_scalar(name, value, global_step=0)
        writer.close()
    if "trackio" in report_to:
        import trackio

        trackio.init(project=project, name=run_name, resume="allow")
        trackio.log(metrics)
        trackio.finish()
