"""The settings of the representation analyses: `finedefics analyze`'s arguments and a run recipe's `analysis:`
section (the same class, with the same defaults). Nothing here imports torch: `--help` reads it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..recipe_sections import require_at_least_one
from .names import ANALYSES

if TYPE_CHECKING:
    from datasets import Dataset


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

    def __post_init__(self):
        if unknown := set(self.analyses) - set(ANALYSES):
            raise ValueError(f"Unknown analyses {sorted(unknown)}; choose from {', '.join(ANALYSES)}.")
        limits = ["num_descriptions", "max_new_tokens", "tsne_max_per_class", "batch_size"]
        require_at_least_one(self, *limits, *(["max_samples"] if self.max_samples is not None else []))

    def analyses_to_run(self, with_predictions: bool) -> list[str]:
        """`analyses`, with the confusion matrix added when there are predictions to draw it from."""
        analyses = list(self.analyses)
        if with_predictions and "confusion" not in analyses:
            analyses.append("confusion")
        return analyses

    def analysis_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of `run_analysis` that these settings give (the caller passes the model, the data,
        the analyses, the predictions and the output folder)."""
        names = (
            "num_descriptions",
            "max_new_tokens",
            "tsne_classes",
            "tsne_max_per_class",
            "batch_size",
            "seed",
            "title",
            "object_eos",
        )
        return {name: getattr(self, name) for name in names}

    def first_samples(self, dataset: Dataset) -> Dataset:
        """`dataset`, cut to `max_samples` images when set."""
        if self.max_samples is None:
            return dataset
        return dataset.select(range(min(self.max_samples, len(dataset))))
