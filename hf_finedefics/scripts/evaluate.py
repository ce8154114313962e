"""`finedefics evaluate`: the paper's multiple-choice FGVR evaluation (Table 2) of a model or adapter.

    finedefics evaluate --model_name_or_path HuggingFaceM4/idefics2-8b --adapter outputs/stage2 \\
        --sources bird-200 car-196 --data_dir /data/fgvr --output_dir outputs/eval

Each dataset is read in its native layout from ``--data_dir/<source>`` (or ``--source_dirs
name=path,...``). Results are cached per item under ``--output_dir``: rerunning resumes, and evaluating
several models into one output directory gives one report (report.md, report.json) with a row per model
and scorer. A YAML ``--config`` sets the same fields; flags override it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from trl import TrlParser

from dataset_builders.registry import FGVR_BENCHMARKS
from hf_finedefics.evaluation import (
    SCORER_NAMES,
    build_option_file,
    evaluate_model,
    load_mc_items,
    scan_imagefolder,
)
from hf_finedefics.scripts import run
from hf_finedefics.trainer.model_config import FinedeficsModelConfig

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
        metadata={"help": "Option files as 'name=path,...'; default: the shipped file (required for imagefolder)."},
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
        default=None, metadata={"help": "Row label in the report; default: the model (and adapter) folder name."}
    )
    scorers: list[str] = field(
        default_factory=lambda: list(SCORER_NAMES), metadata={"help": f"Scorers, among {', '.join(SCORER_NAMES)}."}
    )
    batch_size: int = field(default=8, metadata={"help": "Questions per forward pass or generate call."})
    max_new_tokens: int = field(default=32, metadata={"help": "Generation length cap for the generation scorer."})
    seed: int = field(default=0, metadata={"help": "Seed of the per-image option shuffle."})


def _pairs(text: str | None) -> dict[str, str]:
    """'a=1,b=2' -> {'a': '1', 'b': '2'}."""
    if not text:
        return {}
    pairs = [entry.split("=", 1) for entry in text.split(",") if entry.strip()]
    if any(len(pair) != 2 for pair in pairs):
        raise ValueError(f"Expected 'name=path,...', got {text!r}.")
    return {name.strip(): value.strip() for name, value in pairs}


def _default_model_name(args: EvaluateArguments, model_args: FinedeficsModelConfig) -> str:
    name = Path(model_args.model_name_or_path.rstrip("/")).name
    if args.adapter:
        name += "+" + Path(args.adapter.rstrip("/")).name
    return name


def make_parser() -> TrlParser:
    return TrlParser((EvaluateArguments, FinedeficsModelConfig), prog="finedefics evaluate")


def main(args: EvaluateArguments, model_args: FinedeficsModelConfig) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    names, scorers = args.sources, tuple(args.scorers)
    if unknown := set(scorers) - set(SCORER_NAMES):
        raise ValueError(f"Unknown scorers {sorted(unknown)}; choose from {', '.join(SCORER_NAMES)}.")
    source_dirs, options_files = _pairs(args.source_dirs), _pairs(args.options_files)
    # Read every dataset (and fail on missing images) before the model is loaded and anything is scored.
    datasets = {}
    for name in names:
        if name not in source_dirs and args.data_dir is None:
            raise ValueError(f"No folder for {name}: pass --data_dir or --source_dirs {name}=PATH.")
        data_dir = Path(source_dirs.get(name) or Path(args.data_dir) / name)
        if name == "imagefolder" and name not in options_files:
            if args.clip_model is None:
                raise ValueError("'imagefolder' needs --options_files imagefolder=PATH or --clip_model to build one.")
            options_files[name] = str(Path(args.output_dir) / "options" / f"{name}.json")
            logger.info("Building %s options with %s", options_files[name], args.clip_model)
            build_option_file(scan_imagefolder(data_dir), data_dir, args.clip_model, options_files[name])
        datasets[name] = load_mc_items(name, data_dir, options_files.get(name))
        logger.info("%s: %d test images under %s", name, len(datasets[name]), data_dir)
    model, processor = model_args.load(args.adapter)
    summaries = evaluate_model(
        model,
        processor,
        datasets,
        args.output_dir,
        model_name=args.model_name or _default_model_name(args, model_args),
        scorers=scorers,
        seed=args.seed,
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        superclasses={"imagefolder": args.superclass} if args.superclass else None,
    )
    for scorer, by_dataset in summaries.items():
        for name, summary in by_dataset.items():
            logger.info(
                "%s %s: accuracy %.2f%%, failure rate %.2f%%",
                name,
                scorer,
                summary["accuracy"],
                summary["failure_rate"],
            )
    logger.info("Report: %s", Path(args.output_dir) / "report.md")


if __name__ == "__main__":
    run(make_parser, main)
