"""`finedefics analyze`: the paper's representation analyses on a labelled dataset.

    finedefics analyze --model_name_or_path HuggingFaceM4/idefics2-8b --dataset_name data/pets --dataset_split test \\
        --output_dir outputs/analysis/idefics2
    finedefics analyze --model_name_or_path outputs/stage2 --dataset_name data/pets --dataset_split test \\
        --predictions outputs/eval/predictions/finedefics/pet-37.generation.jsonl --output_dir outputs/analysis/finedefics
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hf_finedefics.analysis import ANALYSES
from hf_finedefics.scripts import CommandParser, run
from hf_finedefics.trainer.model_config import LOADING_KEYS, FinedeficsModelConfig, unused_model_keys


@dataclass
class AnalysisArguments:
    dataset_name: str = field(
        metadata={
            "help": "Labelled images: a Hub id or folder for `load_dataset` (e.g. an imagefolder, or a run's "
            "source/ folder) or a `save_to_disk` folder, with an `image` column and a ClassLabel `label` column "
            "or a `category` column."
        }
    )
    output_dir: str = field(metadata={"help": "Where report.json, report.md and the PNG figures go."})
    adapter: str | None = field(default=None, metadata={"help": "Adapter to put on the model."})
    dataset_config: str | None = field(default=None, metadata={"help": "Dataset config (subset)."})
    dataset_split: str = field(default="test", metadata={"help": "Split analysed (and the probes' test split)."})
    probe_train_split: str | None = field(
        default=None,
        metadata={"help": "Split to train the object probe on; without it, a stratified half of `split`."},
    )
    analyses: list[str] = field(
        default_factory=lambda: [name for name in ANALYSES if name not in ("confusion", "attribute_probe")],
        metadata={
            "help": f"Which analyses to run, among {ANALYSES}; 'confusion' is added with --predictions; "
            "'attribute_probe' needs an `attribute` column (a build's `triples`)."
        },
    )
    object_eos: bool = field(
        default=False,
        metadata={
            "help": "Object probe's last-token feature after an appended EOS (stage I's representation); default: "
            "the last visual token, as section 2 defines it."
        },
    )
    predictions: str | None = field(
        default=None,
        metadata={
            "help": "Per-item predictions (jsonl: `groundtruth` class name and `prediction` class name, index into "
            "`options`, or null), e.g. the evaluation's predictions file; draws the confusion matrix."
        },
    )
    num_descriptions: int = field(
        default=200, metadata={"help": "Descriptions sampled per class for the description probe (the paper: 200)."}
    )
    max_new_tokens: int = field(default=96, metadata={"help": "Length limit of each generated description."})
    tsne_classes: list[str] | None = field(
        default=None, metadata={"help": "Classes in the t-SNE maps (default: the first ten)."}
    )
    tsne_max_per_class: int = field(default=100, metadata={"help": "Objects per class in the t-SNE maps."})
    max_samples: int | None = field(default=None, metadata={"help": "Analyse only the first N images (quick runs)."})
    batch_size: int = field(default=16, metadata={"help": "Images per forward."})
    seed: int = field(default=0, metadata={"help": "Seed of the probe splits, sampling and t-SNE."})
    title: str = field(default="", metadata={"help": "Title of the figures and the report."})


def make_parser() -> CommandParser:
    return CommandParser(
        (AnalysisArguments, FinedeficsModelConfig), unused=unused_model_keys(LOADING_KEYS), prog="finedefics analyze"
    )


def main(args: AnalysisArguments, model_args: FinedeficsModelConfig) -> None:
    from hf_finedefics.analysis import run_analysis
    from hf_finedefics.data.loading import load_dataset_split, with_class_labels

    if args.predictions is not None and not Path(args.predictions).is_file():
        raise FileNotFoundError(
            f"--predictions {args.predictions} does not exist: `finedefics evaluate` writes "
            "<output_dir>/predictions/<model_name>/<dataset>.<scorer>.jsonl."
        )
    dataset = load_dataset_split(args.dataset_name, args.dataset_config, args.dataset_split)
    if args.max_samples is not None:
        dataset = dataset.select(range(min(args.max_samples, len(dataset))))
    probe_train = None
    if args.probe_train_split is not None:
        probe_train = load_dataset_split(args.dataset_name, args.dataset_config, args.probe_train_split)
    if probe_train is None:
        (dataset,) = with_class_labels(args.dataset_name, dataset)
    else:
        dataset, probe_train = with_class_labels(args.dataset_name, dataset, probe_train)
    model, processor = model_args.load(args.adapter)
    analyses = list(args.analyses)
    if args.predictions is not None and "confusion" not in analyses:
        analyses.append("confusion")
    report = run_analysis(
        model,
        processor,
        dataset,
        args.output_dir,
        analyses=analyses,
        probe_train_dataset=probe_train,
        predictions=args.predictions,
        num_descriptions=args.num_descriptions,
        max_new_tokens=args.max_new_tokens,
        tsne_classes=args.tsne_classes,
        tsne_max_per_class=args.tsne_max_per_class,
        batch_size=args.batch_size,
        seed=args.seed,
        title=args.title,
        object_eos=args.object_eos,
    )
    print(f"Analyses written to {args.output_dir}: {', '.join(k for k in report if k not in ('figures',))}")


if __name__ == "__main__":
    run(make_parser, main)
