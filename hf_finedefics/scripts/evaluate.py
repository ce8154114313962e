"""`finedefics evaluate`: the paper's multiple-choice FGVR evaluation (Table 2) of a model or adapter.

    finedefics evaluate --model HuggingFaceM4/idefics2-8b --adapter outputs/stage2 \\
        --datasets bird-200,car-196 --data-dir /data/fgvr --output-dir outputs/eval

Each dataset is read in its native layout from ``--data-dir/<dataset>`` (or ``--dataset-dirs
name=path,...``). Results are cached per item under ``--output-dir``: rerunning resumes, and evaluating
several models into one output directory gives one report (report.md, report.json) with a row per model
and scorer. A YAML ``--config`` sets the same fields; flags override it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import AutoModelForImageTextToText, AutoProcessor
from trl import TrlParser

from hf_finedefics.evaluation import (
    SCORER_NAMES,
    build_option_file,
    evaluate_model,
    load_mc_items,
    scan_imagefolder,
)

logger = logging.getLogger(__name__)

TABLE2_DATASETS = "dog-120,bird-200,aircraft-102,flower-102,pet-37,car-196"


@dataclass
class EvaluateArguments:
    model: str = field(metadata={"help": "Model folder or Hub id loadable with AutoModelForImageTextToText."})
    adapter: str | None = field(default=None, metadata={"help": "Optional PEFT adapter (folder or Hub id)."})
    datasets: str = field(
        default=TABLE2_DATASETS,
        metadata={"help": "Comma-separated dataset names (see hf_finedefics.evaluation.DATASETS) or 'imagefolder'."},
    )
    data_dir: str | None = field(
        default=None, metadata={"help": "Folder holding each dataset, in its native layout, as <data_dir>/<name>."}
    )
    dataset_dirs: str | None = field(
        default=None, metadata={"help": "Per-dataset folders as 'name=path,...'; override --data-dir."}
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
    scorers: str = field(
        default=",".join(SCORER_NAMES),
        metadata={"help": "Comma-separated subset of: generation,likelihood,name_likelihood."},
    )
    batch_size: int = field(default=8, metadata={"help": "Questions per forward pass or generate call."})
    max_new_tokens: int = field(default=32, metadata={"help": "Generation length cap for the generation scorer."})
    seed: int = field(default=0, metadata={"help": "Seed of the per-image option shuffle."})
    dtype: str = field(default="auto", metadata={"help": "Model dtype: auto, bfloat16, float16 or float32."})
    device: str | None = field(default=None, metadata={"help": "Device; default: cuda when available, else cpu."})


def _pairs(text: str | None) -> dict[str, str]:
    """'a=1,b=2' -> {'a': '1', 'b': '2'}."""
    if not text:
        return {}
    pairs = [entry.split("=", 1) for entry in text.split(",") if entry.strip()]
    if any(len(pair) != 2 for pair in pairs):
        raise ValueError(f"Expected 'name=path,...', got {text!r}.")
    return {name.strip(): value.strip() for name, value in pairs}


def _default_model_name(args: EvaluateArguments) -> str:
    name = Path(args.model.rstrip("/")).name
    if args.adapter:
        name += "+" + Path(args.adapter.rstrip("/")).name
    return name


def load_model(args: EvaluateArguments):
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = args.dtype if args.dtype == "auto" else getattr(torch, args.dtype)
    model = AutoModelForImageTextToText.from_pretrained(args.model, dtype=dtype).to(device)
    # Adapters train LoRA weights only (no new tokens), so the base model's processor is the right one.
    processor = AutoProcessor.from_pretrained(args.model)
    if args.adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, args.adapter)
    return model.eval(), processor


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    (args,) = TrlParser((EvaluateArguments,)).parse_args_and_config(argv)
    names = [name.strip() for name in args.datasets.split(",") if name.strip()]
    scorers = tuple(name.strip() for name in args.scorers.split(",") if name.strip())
    if unknown := set(scorers) - set(SCORER_NAMES):
        raise ValueError(f"Unknown scorers {sorted(unknown)}; choose from {', '.join(SCORER_NAMES)}.")
    dataset_dirs, options_files = _pairs(args.dataset_dirs), _pairs(args.options_files)
    # Read every dataset (and fail on missing images) before the model is loaded and anything is scored.
    datasets = {}
    for name in names:
        if name not in dataset_dirs and args.data_dir is None:
            raise ValueError(f"No folder for {name}: pass --data-dir or --dataset-dirs {name}=PATH.")
        data_dir = Path(dataset_dirs.get(name) or Path(args.data_dir) / name)
        if name == "imagefolder" and name not in options_files:
            if args.clip_model is None:
                raise ValueError("'imagefolder' needs --options-files imagefolder=PATH or --clip-model to build one.")
            options_files[name] = str(Path(args.output_dir) / "options" / f"{name}.json")
            logger.info("Building %s options with %s", options_files[name], args.clip_model)
            build_option_file(scan_imagefolder(data_dir), data_dir, args.clip_model, options_files[name])
        datasets[name] = load_mc_items(name, data_dir, options_files.get(name))
        logger.info("%s: %d test images under %s", name, len(datasets[name]), data_dir)
    model, processor = load_model(args)
    summaries = evaluate_model(
        model,
        processor,
        datasets,
        args.output_dir,
        model_name=args.model_name or _default_model_name(args),
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
    main()
