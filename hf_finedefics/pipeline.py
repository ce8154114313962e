"""`finedefics run`: build -> stage I -> stage II -> evaluate -> analyze, for the paper's Table 3 variants.

A run recipe is one YAML file whose sections are the configs of the individual commands:

    output_dir: finedefics-default
    base_model: HuggingFaceM4/idefics2-8b   # or `world`: the small pretrained MLLM of the synthetic world
    variants: [zero_shot, instruction_tuning, contrastive_object_category, finedefics]
    data: {synthetic: {...}}  or  {dataset: folder built by `finedefics build-dataset`, build: {...}}
    model: {...}        # FinedeficsModelConfig
    stage1: {...}       # ContrastiveAlignmentConfig
    stage2: {...}       # InstructionTuningConfig
    evaluation: {...}   # EvaluationSettings
    analysis: {...}     # AnalysisSettings
    world: {...}        # WorldPretrainingConfig, for base_model: world

Every step writes into `output_dir` and is skipped when its output is complete, so an interrupted run picks
up where it stopped (training resumes from its last checkpoint).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml
from datasets import Dataset, load_dataset

from dataset_builders import BuildConfig, build_dataset
from dataset_builders.build import build_synthetic_dataset
from dataset_builders.sources.synthetic import SyntheticFGVRConfig

from .analysis.names import ANALYSES
from .collators import ATTRIBUTE_COLUMNS
from .evaluation.names import DEFAULT_SIMILARITY_MODEL, MULTIPLE_CHOICE, OPEN_SET, SCORER_NAMES, TASKS
from .evaluation.report import comparison_table, mean_accuracies
from .recipe_sections import parse_section, require_at_least_one
from .run_config import VARIANTS, WORLD_BASE, RunConfig, embedded_recipe_path
from .trainer.checkpoints import is_finished_save
from .trainer.contrastive_alignment_config import ContrastiveAlignmentConfig
from .trainer.contrastive_alignment_trainer import train_stage1
from .trainer.instruction_tuning_config import InstructionTuningConfig
from .trainer.instruction_tuning_trainer import train_stage2
from .trainer.model_config import FinedeficsModelConfig
from .world import WorldPretrainingConfig, ensure_world_base

VARIANT_TITLES = {
    "zero_shot": "Zero-shot (base model)",
    "open_set_only": "Fine-tune on open-set data only (3a)",
    "instruction_tuning": "Instruction tuning only",
    "contrastive_object_category": "+ contrastive object-category (no attributes)",
    "finedefics": "+ attribute augmented alignment (Finedefics)",
    "one_stage": "One stage: alignment and instruction losses together (3c)",
    "stage1_only": "Stage I only, no instruction tuning (6b)",
}
# Variants trained with stage I, and the stage I run they use: stage I only is Finedefics' own stage I.
STAGE1_OF = {
    "contrastive_object_category": "contrastive_object_category",
    "finedefics": "finedefics",
    "stage1_only": "finedefics",
}
TESTING_PREFIX = "testing:"

Progress = Callable[[float, str], None]

logger = logging.getLogger(__name__)


@dataclass
class EvaluationSettings:
    tasks: list[str] = field(
        default_factory=lambda: list(TASKS),
        metadata={"help": "multiple_choice (the paper's protocol) and/or open_set (the category without options)."},
    )
    scorers: list[str] = field(
        default_factory=lambda: ["likelihood", "generation"],
        metadata={"help": "Multiple-choice scorers: likelihood, generation, name_likelihood."},
    )
    similarity_model: str = field(
        default=DEFAULT_SIMILARITY_MODEL,
        metadata={"help": "sentence-transformers model matching open-set answers to class names (folder or Hub id)."},
    )
    batch_size: int = field(default=16, metadata={"help": "Items per forward."})
    max_new_tokens: int = field(
        default=16, metadata={"help": "Generation budget of the generation scorer and of open-set answers."}
    )
    datasets: list[str] = field(
        default_factory=list,
        metadata={"help": "Evaluation datasets for built (non-synthetic) data, e.g. [bird-200, car-196]."},
    )
    data_dir: str | None = field(default=None, metadata={"help": "Root holding <name>/ for each evaluation dataset."})

    def __post_init__(self):
        if unknown := set(self.tasks) - set(TASKS):
            raise ValueError(f"Unknown evaluation.tasks {sorted(unknown)}; choose from {', '.join(TASKS)}.")
        if unknown := set(self.scorers) - set(SCORER_NAMES):
            raise ValueError(f"Unknown scorers {sorted(unknown)}; choose from {', '.join(SCORER_NAMES)}.")
        require_at_least_one(self, "batch_size", "max_new_tokens")


@dataclass
class AnalysisSettings:
    analyses: list[str] = field(
        default_factory=lambda: ["object_probe", "alignment", "discriminability", "tsne", "confusion"],
        metadata={"help": "Analyses to run on the test split (see `finedefics analyze`)."},
    )
    variants: list[str] = field(
        default_factory=lambda: ["zero_shot", "finedefics"], metadata={"help": "Variants whose models are analysed."}
    )
    tsne_max_per_class: int = field(default=40, metadata={"help": "Objects per class in the t-SNE maps."})

    def __post_init__(self):
        if unknown := set(self.analyses) - set(ANALYSES):
            raise ValueError(f"Unknown analyses {sorted(unknown)}; choose from {', '.join(ANALYSES)}.")
        if unknown := set(self.variants) - set(VARIANTS):
            raise ValueError(f"Unknown variants {sorted(unknown)}; choose from {', '.join(VARIANTS)}.")
        require_at_least_one(self, "tsne_max_per_class")


def load_run_config(recipe: str | os.PathLike | None = None, **overrides: Any) -> RunConfig:
    """Read a run recipe (default: the embedded one shipped in the package); `overrides` replace top-level keys."""
    values = yaml.safe_load(Path(recipe or embedded_recipe_path()).read_text()) or {}
    values.update({key: value for key, value in overrides.items() if value is not None})
    return parse_section(RunConfig, values, "")


def resolve_base_model(base_model: str) -> str:
    if base_model.startswith(TESTING_PREFIX):
        from .testing import create_tiny_checkpoint

        return str(create_tiny_checkpoint(base_model.removeprefix(TESTING_PREFIX)))
    return base_model


class FinedeficsRun:
    """The steps of one run; each `step_*` is idempotent."""

    def __init__(self, config: RunConfig, progress: Progress | None = None):
        self.config = config
        self.output_dir = Path(config.output_dir)
        self.progress = progress or (lambda fraction, message: print(f"[finedefics run {fraction:4.0%}] {message}"))
        # Every section is checked here, before any work: a typo in stage2 must not surface after the data build and
        # stage I, nor hide behind a stage a finished earlier run lets this one skip.
        self.evaluation = parse_section(EvaluationSettings, config.evaluation, "evaluation")
        self.analysis = parse_section(AnalysisSettings, config.analysis, "analysis")
        self.world = parse_section(WorldPretrainingConfig, config.world, "world")
        self._data_config()
        self._model_args(config.base_model)
        for variant in config.variants:
            for stage in ("stage1", "stage2"):
                if self.trains(variant, stage):
                    self.stage_args(variant, stage)

    @cached_property
    def base_model(self) -> str:
        """The model every variant starts from, built (world pretraining) or fetched on first use."""
        if self.config.base_model == WORLD_BASE:
            return str(ensure_world_base(self.synthetic, self.world, rebuild=self.config.rebuild_world))
        return resolve_base_model(self.config.base_model)

    # Paths
    @property
    def data_dir(self) -> Path:
        return Path(self.config.data["dataset"]) if "dataset" in self.config.data else self.output_dir / "data"

    def stage_dir(self, variant: str, stage: str) -> Path:
        return self.output_dir / variant / stage

    def model_dir(self, variant: str) -> str:
        """What `load_finedefics_model` loads for a variant: the base for zero-shot, the stage I adapter for stage I
        only, else the stage II adapter."""
        if variant == "zero_shot":
            return self.base_model
        if variant == "stage1_only":
            return str(self.stage_dir(STAGE1_OF[variant], "stage1"))
        return str(self.stage_dir(variant, "stage2"))

    # Data
    def _data_config(self) -> SyntheticFGVRConfig | BuildConfig | None:
        """The data section's config: synthetic generation, a build, or None for an already built folder."""
        data = self.config.data
        if "synthetic" in data:
            return parse_section(
                SyntheticFGVRConfig, {"seed": self.config.seed, **data["synthetic"]}, "data.synthetic"
            )
        if "build" in data:
            return parse_section(BuildConfig, {**data["build"], "output_dir": str(self.data_dir)}, "data.build")
        if not isinstance(data["dataset"], str):
            raise ValueError(f"Recipe field `data.dataset` must be a folder (str), got {data['dataset']!r}.")
        return None

    @property
    def synthetic(self) -> SyntheticFGVRConfig | None:
        config = self._data_config()
        return config if isinstance(config, SyntheticFGVRConfig) else None

    def step_build(self) -> None:
        if (self.data_dir / "README.md").is_file():
            return
        if "dataset" in self.config.data:
            raise FileNotFoundError(f"data.dataset {self.data_dir} is not a dataset folder built by build-dataset.")
        config = self._data_config()
        if isinstance(config, SyntheticFGVRConfig):
            build_synthetic_dataset(config, self.data_dir, self.output_dir / "source")
        else:
            build_dataset(config)

    def triples(self, without_attributes: bool) -> Dataset:
        triples = load_dataset(str(self.data_dir), "triples", split="train")
        # The object-category ablation reads no attribute text: drop it, so none can reach the model.
        return triples.remove_columns(list(ATTRIBUTE_COLUMNS)) if without_attributes else triples

    # Training
    def _model_args(self, base_model: str | None = None) -> FinedeficsModelConfig:
        values = {**self.config.model, "model_name_or_path": base_model or self.base_model}
        return parse_section(FinedeficsModelConfig, values, "model")

    @staticmethod
    def trains(variant: str, stage: str) -> bool:
        """Whether `variant` needs `stage` trained (stage I only needs Finedefics' own stage I, trained once)."""
        if stage == "stage1":
            return variant in STAGE1_OF
        return variant not in ("zero_shot", "stage1_only")

    def stage_args(self, variant: str, stage: str) -> ContrastiveAlignmentConfig | InstructionTuningConfig:
        """The training config of one stage of a variant: the recipe's section, the run's seed and folders. A rerun
        resumes from the last complete checkpoint in its folder (`trainer.checkpoints.resume_checkpoint`)."""
        values = {"report_to": "none", **getattr(self.config, stage)}
        values |= {"output_dir": str(self.stage_dir(variant, stage)), "seed": self.config.seed}
        if stage == "stage1":
            if variant == "contrastive_object_category":  # Table 3b: object<->category, no attribute text
                values["objective"] = "object_category"
            return parse_section(ContrastiveAlignmentConfig, values, "stage1")
        stage1 = str(self.stage_dir(variant, "stage1")) if variant in STAGE1_OF else None
        # What the variant itself changes; everything else is the recipe's stage2 section, shared by all.
        values |= {
            "open_set_only": {"instruction_types": ["open_set"]},
            "one_stage": {"paradigm": "one_stage"},
        }.get(variant, {})
        return parse_section(InstructionTuningConfig, {**values, "stage1_adapter": stage1}, "stage2")

    def _finished(self, variant: str, stage: str) -> bool:
        output_dir = self.stage_dir(variant, stage)
        if is_finished_save(output_dir):
            return True
        if (output_dir / "adapter_config.json").is_file():
            logger.warning("%s holds an unfinished save (interrupted): training %s again.", output_dir, stage)
        return False

    def step_stage1(self, variant: str) -> None:
        variant = STAGE1_OF[variant]
        if self._finished(variant, "stage1"):
            return
        triples = self.triples(without_attributes=variant == "contrastive_object_category")
        train_stage1(self._model_args(), self.stage_args(variant, "stage1"), triples)

    def step_stage2(self, variant: str) -> None:
        if self._finished(variant, "stage2"):
            return
        instructions = load_dataset(str(self.data_dir), "instructions", split="train")
        auxiliary = self.triples(without_attributes=False) if variant == "one_stage" else None
        train_stage2(self._model_args(), self.stage_args(variant, "stage2"), instructions, auxiliary)

    # Evaluation and analysis
    def evaluation_items(self) -> tuple[dict[str, list], dict[str, str]]:
        from .evaluation import load_mc_items

        if self.synthetic is not None:
            source = self.output_dir / "source"
            items = load_mc_items("imagefolder", source, source / "options_test.json")
            return {"imagefolder": items}, {"imagefolder": self.synthetic.superclass}
        if not self.evaluation.datasets or self.evaluation.data_dir is None:
            raise ValueError("Set evaluation.datasets and evaluation.data_dir for built (non-synthetic) data.")
        root = Path(self.evaluation.data_dir)
        return {name: load_mc_items(name, root / name) for name in self.evaluation.datasets}, {}

    def step_evaluate(self, variant: str) -> dict[str, dict[str, Any]]:
        """{scorer: {dataset: summary}}, the open-set summaries under ``open_set``."""
        from .evaluation import evaluate_model, evaluate_open_set

        items, superclasses = self.evaluation_items()
        model, processor = self._model_args().load(model_name_or_path=self.model_dir(variant))
        common = {
            "model_name": variant,
            "batch_size": self.evaluation.batch_size,
            "max_new_tokens": self.evaluation.max_new_tokens,
            "superclasses": superclasses,
        }
        output_dir = self.output_dir / "evaluation"
        results = {}
        if MULTIPLE_CHOICE in self.evaluation.tasks:
            scorers = tuple(self.evaluation.scorers)
            results = evaluate_model(
                model.eval(), processor, items, output_dir, scorers=scorers, seed=self.config.seed, **common
            )
        if OPEN_SET in self.evaluation.tasks:
            results[OPEN_SET] = evaluate_open_set(
                model.eval(), processor, items, output_dir, similarity_model=self.evaluation.similarity_model, **common
            )
        return results

    def analysis_splits(self) -> dict[str, tuple[Dataset, Dataset]]:
        """{evaluation dataset: (test split, train split)} with ClassLabel labels, for the analyses."""
        from dataset_builders import load_source

        if self.synthetic is not None:
            source, superclass = str(self.output_dir / "source"), self.synthetic.superclass
            return {
                "imagefolder": tuple(
                    load_source("imagefolder", source, split, superclass) for split in ("test", "train")
                )
            }
        root = Path(self.evaluation.data_dir)
        return {
            name: (load_source(name, str(root / name), "test"), load_source(name, str(root / name), "train"))
            for name in self.evaluation.datasets
        }

    def step_analyze(self, variant: str) -> None:
        from .analysis import run_analysis
        from .evaluation.runner import predictions_path

        splits = self.analysis_splits()
        if all((self.output_dir / "analysis" / variant / name / "report.json").is_file() for name in splits):
            return
        model, processor = self._model_args().load(model_name_or_path=self.model_dir(variant))
        for name, (test, train) in splits.items():
            predictions = predictions_path(self.output_dir / "evaluation", variant, name, self.evaluation.scorers[0])
            run_analysis(
                model.eval(),
                processor,
                test,
                self.output_dir / "analysis" / variant / name,
                analyses=self.analysis.analyses,
                probe_train_dataset=train,
                predictions=predictions if predictions.is_file() else None,
                tsne_max_per_class=self.analysis.tsne_max_per_class,
                seed=self.config.seed,
                title=f"{VARIANT_TITLES[variant]}, {name}",
            )

    def run(self) -> dict[str, Any]:
        variants = self.config.variants
        steps: list[tuple[str, Callable[[], Any]]] = [("build the training data", self.step_build)]
        if self.config.base_model == WORLD_BASE:
            steps.append(("world pretraining of the base model (cached)", lambda: self.base_model))
        for variant in variants:
            if self.trains(variant, "stage1"):
                steps.append((f"{variant}: stage I", lambda v=variant: self.step_stage1(v)))
            if self.trains(variant, "stage2"):
                steps.append((f"{variant}: stage II", lambda v=variant: self.step_stage2(v)))
        results: dict[str, Any] = {}
        for variant in variants:
            steps.append((f"{variant}: evaluate", lambda v=variant: results.__setitem__(v, self.step_evaluate(v))))
        for variant in self.analysis.variants:
            if variant in variants:
                steps.append((f"{variant}: analyze", lambda v=variant: self.step_analyze(v)))
        for index, (message, step) in enumerate(steps):
            self.progress(index / len(steps), message)
            step()
        self.progress(1.0, "done")
        table = comparison_table(results, VARIANT_TITLES) + "\n\n" + resolution_note(results)
        (self.output_dir / "table3.md").write_text(table + "\n")
        (self.output_dir / "table3.json").write_text(json.dumps(mean_accuracies(results), indent=2) + "\n")
        return results


def resolution_note(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    """How large a gap between two rows the test split can resolve: the standard error of a difference of two
    accuracies on n items, at most sqrt(2 * 0.25 / n) (unpaired, accuracy 50 %); pairing on the same items only
    shrinks it. Gaps under about twice this are noise."""
    sizes = {
        summary["num_items"]
        for by_scorer in results.values()
        for by_dataset in by_scorer.values()
        for summary in by_dataset.values()
    }
    n = min(sizes) if sizes else 0
    if not n:
        return ""
    return (
        f"Test split: {n} items per dataset; standard error of a difference between two rows <= "
        f"{100 * (0.5 / n) ** 0.5:.1f} points (gaps under ~{200 * (0.5 / n) ** 0.5:.0f} points are noise)."
    )


def run_pipeline(
    recipe: str | os.PathLike | None = None, progress: Progress | None = None, **overrides: Any
) -> dict[str, Any]:
    """Run a recipe (default: the embedded one) and return {variant: {scorer: {dataset: summary}}}."""
    return FinedeficsRun(load_run_config(recipe, **overrides), progress).run()
