"""`finedefics evaluate`: the paper's multiple-choice FGVR evaluation (Table 2) of a model or adapter, and
the open-set one (`--tasks open_set`: the category asked for without options, answers scored by exact match,
containment and nearest class name).

    finedefics evaluate --model_name_or_path HuggingFaceM4/idefics2-8b --adapter outputs/stage2 \\
        --sources bird-200 car-196 --data_dir /data/fgvr --output_dir outputs/eval \\
        --tasks multiple_choice open_set [--protocol foci]

Each dataset is read in its native layout from ``--data_dir/<source>`` (or ``--source_dirs
name=path,...``). Results are cached per item under ``--output_dir``, by the model's fingerprint (weights and
processor) and the scoring settings, not its name: rerunning resumes, and evaluating several models into one output
directory gives one report (report.md, report.json) with a row per model name and scorer. A YAML ``--config`` sets the same fields; flags override it.

Any image-text-to-text model scores zero-shot (its own processor and chat template; no backbone adapter needed).
Launched on several processes, each scores a share of the items and one merged report is written:

    accelerate launch --num_processes 8 -m hf_finedefics.scripts.evaluate --model_name_or_path ... \\
        --sources bird-200 car-196 --data_dir /data/fgvr --output_dir outputs/eval   # the flags as above

A model served behind an OpenAI-compatible endpoint (vLLM, TGI) is scored by generation, its key read from
$OPENAI_API_KEY (``--api_key_env``):

    finedefics evaluate --api_base http://localhost:8000/v1 --api_model Qwen/Qwen2.5-VL-3B-Instruct \\
        --scorers generation --sources bird-200 --data_dir /data/fgvr --tasks multiple_choice open_set
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from hf_finedefics.evaluation.config import EvaluateArguments
from hf_finedefics.scripts import CommandParser, run
from hf_finedefics.tracking import log_metrics, trackers
from hf_finedefics.trainer.model_config import LOADING_KEYS, FinedeficsModelConfig, unused_model_keys

# accelerate loads with torch, when a model is scored: --help parses these arguments without it.
if TYPE_CHECKING:
    from accelerate import PartialState

logger = logging.getLogger(__name__)


def model_label(model: str) -> str:
    """A model's name in reports: its folder's name, or for a stage folder of `finedefics run`
    (`<run>/<variant>/stage2`) its variant's ("<variant>-stage1" for a stage I adapter); the cached world base
    (a folder named by its hash) is "world-base"."""
    from hf_finedefics.world.pretraining import MARKER as WORLD_MARKER

    path = Path(model.rstrip("/"))
    if (path / WORLD_MARKER).is_file():
        return "world-base"
    if path.name in ("stage1", "stage2") and path.parent.name:
        return path.parent.name + ("-stage1" if path.name == "stage1" else "")
    return path.name


def _default_model_name(args: EvaluateArguments, model_args: FinedeficsModelConfig) -> str:
    name = model_label(args.api_model or model_args.model_name_or_path)
    if args.adapter:
        name += "+" + model_label(args.adapter)
    return name


def _load_model(model_args: FinedeficsModelConfig, adapter: str | None, state: PartialState):
    """The model and processor this process scores with: on its own device when several processes share the work."""
    if state.num_processes > 1:
        if model_args.device_map is not None:
            raise ValueError(
                f"--device_map {model_args.device_map} spreads one model over devices; with {state.num_processes} "
                "processes each holds its own copy on its own device: leave --device_map unset."
            )
        model_args.device_map = str(state.device)
    # Zero-shot scoring needs only the processor, logits and `generate`: any image-text-to-text model will do.
    return model_args.load(adapter, require_backbone=False)


def make_parser() -> CommandParser:
    return CommandParser(
        (EvaluateArguments, FinedeficsModelConfig), unused=unused_model_keys(LOADING_KEYS), prog="finedefics evaluate"
    )


def main(args: EvaluateArguments, model_args: FinedeficsModelConfig) -> None:
    from hf_finedefics.evaluation import ApiModel
    from hf_finedefics.evaluation.report import evaluation_metrics
    from hf_finedefics.evaluation.runner import load_test_sets, process_state, run_evaluation

    state = process_state()
    # Under `accelerate launch` every process logs its warnings, the main one alone its progress.
    logging.basicConfig(
        level=logging.INFO if state.is_main_process else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    test_sets = load_test_sets(args)
    if args.api_base is not None:
        api_key = os.environ.get(args.api_key_env)
        model, processor = ApiModel(args.api_base, args.api_model, api_key, args.api_concurrency), None
    else:
        model, processor = _load_model(model_args, args.adapter, state)
    model_name = args.model_name or _default_model_name(args, model_args)
    summaries = run_evaluation(args, model, processor, test_sets, model_name)
    if state.is_main_process:
        runs = Path(args.output_dir) / "runs" / model_name
        log_metrics(
            trackers(args.report_to), evaluation_metrics(summaries), runs, args.project, f"{model_name}-evaluation"
        )
    logger.info("Report: %s", Path(args.output_dir) / "report.md")


if __name__ == "__main__":
    run(make_parser, main)
