"""`finedefics run`: build -> stage I -> stage II -> evaluate -> analyze, for the paper's Table 3 variants.

A run recipe is one YAML file whose sections are the configs of the individual commands:

    output_dir: finedefics-default
    base_model: HuggingFaceM4/idefics2-8b   # or `world`: the small pretrained MLLM of the synthetic world
    variants: [zero_shot, instruction_tuning, contrastive_object_category, finedefics]
    report_to: tensorboard  # or trackio: every stage's tracker, and the evaluation results' (default: none)
    data: {synthetic: {...}}  or  {dataset: folder built by `finedefics build-dataset`, build: {...}}
    model: {...}        # FinedeficsModelConfig
    stage1: {...}       # ContrastiveAlignmentConfig
    stage2: {...}       # InstructionTuningConfig
    evaluation: {...}   # EvaluationSettings
    analysis: {...}     # AnalysisSettings
    world: {...}        # WorldPretrainingConfig, for base_model: world

Every step writes into `output_dir`, beside a fingerprint of what determines it (`run_steps`): a rerun skips the
steps whose settings are unchanged, redoes a changed one and everything downstream, and picks up an interrupted one
where it stopped (training resumes from its last checkpoint). The console gets one line per step; the libraries'
output goes to `<output_dir>/run.log`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property, partial
from pathlib import Path
from typing import Any

import yaml
from datasets import Dataset, load_dataset

from dataset_builders import BuildConfig, build_dataset
from dataset_builders.build import build_synthetic_dataset
from dataset_builders.sources import folder_fingerprint
from dataset_builders.sources.synthetic import SyntheticFGVRConfig

from . import __version__
from .analysis.names import ANALYSES
from .collators import ATTRIBUTE_COLUMNS
from .data.loading import check_parquet_files
from .evaluation.items import DATASETS
from .evaluation.names import DEFAULT_SIMILARITY_MODEL, MULTIPLE_CHOICE, OPEN_SET, SCORER_NAMES, TASKS
from .evaluation.report import comparison_table, mean_accuracies, read_summaries
from .recipe_sections import parse_section, require_at_least_one
from .run_config import ALL_VARIANTS, VARIANTS, WORLD_BASE, RunConfig, embedded_recipe_path  # noqa: F401 (re-exported)
from .run_steps import (
    FINGERPRINT_NAME,
    RUN_LOG_NAME,
    PlannedStep,
    StepRecord,
    fingerprint,
    folder_lock,
    recorded,
    run_log,
    run_steps,
)
from .tracking import check_trackers, evaluation_metrics, log_metrics
from .trainer.contrastive_alignment_config import ContrastiveAlignmentConfig
from .trainer.contrastive_alignment_trainer import train_stage1
from .trainer.instruction_tuning_config import InstructionTuningConfig
from .trainer.instruction_tuning_trainer import train_stage2
from .trainer.model_config import FinedeficsModelConfig, check_model_location
from .trainer.reinforcement_config import ReinforcementConfig
from .trainer.reinforcement_trainer import train_stage3
from .training_summary import is_finished_save
from .world import WorldPretrainingConfig, ensure_world_base, world_key
from .world.pretraining import MARKER as WORLD_MARKER
from .world.pretraining import default_cache_dir

VARIANT_TITLES = {
    "zero_shot": "Zero-shot (base model)",
    "open_set_only": "Fine-tune on open-set data only (3a)",
    "instruction_tuning": "Instruction tuning only",
    "contrastive_object_category": "+ contrastive object-category (no attributes)",
    "contrastive_object_category_naming": "+ contrastive object-category, stage I also trained to name (3b variant)",
    "finedefics": "+ attribute augmented alignment (Finedefics)",
    "finedefics_literal_ccc": "+ attribute augmented alignment, CCC as eq. 7 is printed",
    "one_stage": "One stage: alignment and instruction losses together (3c)",
    "stage1_only": "Stage I only, no instruction tuning (6b)",
    "finedefics_rl": "Finedefics + reinforcement fine-tuning (stage III)",
    "instruction_tuning_rl": "Instruction tuning + reinforcement fine-tuning (stage III)",
}
# Variants trained with stage I, and the stage I run they use: stage I only is Finedefics' own stage I.
STAGE1_OF = {
    "contrastive_object_category": "contrastive_object_category",
    "contrastive_object_category_naming": "contrastive_object_category_naming",
    "finedefics": "finedefics",
    "finedefics_literal_ccc": "finedefics_literal_ccc",
    "stage1_only": "finedefics",
    "finedefics_rl": "finedefics",
}
# Variants with a stage III, and the variant whose stage II they start from (trained once, shared).
STAGE2_OF = {"finedefics_rl": "finedefics", "instruction_tuning_rl": "instruction_tuning"}
STAGE_TITLES = {"stage1": "stage I", "stage2": "stage II", "stage3": "stage III"}
TRAINING_SETS = ("triples", "instructions", "rl")  # the configs of a built dataset folder that stages I-III read
TESTING_PREFIX = "testing:"
# The generated world's name in reports and folders (its registry entry: "Synthetic critters").
SYNTHETIC = "synthetic"
# Training settings that place, show, save or publish a run but do not change what it learns: left out of its
# fingerprint (the stage I adapter is in it as stage I's own fingerprint).
NOT_FINGERPRINTED = (
    "output_dir",
    "stage1_adapter",
    "stage2_adapter",
    "disable_tqdm",
    "report_to",
    "run_name",
    "project",
    "push_to_hub",
    "log_term_gradient_norms",
)
NOT_FINGERPRINTED_PREFIXES = ("logging_", "save_", "hub_", "trackio_")

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
        if not self.tasks:
            raise ValueError(f"tasks is empty: evaluate at least one of {', '.join(TASKS)}.")
        if MULTIPLE_CHOICE in self.tasks and not self.scorers:
            raise ValueError(f"scorers is empty: the {MULTIPLE_CHOICE} task needs one of {', '.join(SCORER_NAMES)}.")
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
        if unknown := set(self.variants) - set(ALL_VARIANTS):
            raise ValueError(f"Unknown variants {sorted(unknown)}; choose from {', '.join(ALL_VARIANTS)}.")
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
    """The steps of one run; each `step_*` is idempotent: skipped when its output was made with the same settings
    (see `run_steps`), redone when they changed."""

    def __init__(self, config: RunConfig, progress: Progress | None = None):
        self.config = config
        self.output_dir = Path(config.output_dir)
        self.progress = progress or self._print_progress
        self._console = sys.stdout
        # A tracker that is not installed fails here, not when a Trainer is built after its model has loaded.
        self.trackers = check_trackers(config.report_to)
        # Every section is checked here, before any work: a typo in stage2 must not surface after the data build and
        # stage I, nor hide behind a stage a finished earlier run lets this one skip.
        self.evaluation = parse_section(EvaluationSettings, config.evaluation, "evaluation")
        self.analysis = parse_section(AnalysisSettings, config.analysis, "analysis")
        self.world = parse_section(WorldPretrainingConfig, {"seed": config.world_seed, **config.world}, "world")
        if config.base_model != WORLD_BASE and not config.base_model.startswith(TESTING_PREFIX):
            check_model_location(config.base_model, "base_model")
        if "confusion" in self.analysis.analyses and self.analysed and MULTIPLE_CHOICE not in self.evaluation.tasks:
            raise ValueError(
                f"analysis.analyses has confusion, which reads the {MULTIPLE_CHOICE} predictions, but "
                f"evaluation.tasks is {self.evaluation.tasks}: add {MULTIPLE_CHOICE} or drop confusion."
            )
        self._data_config()
        if "dataset" in config.data and self.data_dir.is_dir():
            check_parquet_files(self.data_dir)
        self._model_args(config.base_model)
        for variant in config.variants:
            for stage in STAGE_TITLES:
                if self.trains(variant, stage):
                    self.stage_args(variant, stage)

    def _print_progress(self, fraction: float, message: str) -> None:
        print(f"[finedefics run {fraction:4.0%}] {message}", file=self._console, flush=True)

    def _redraw_progress(self, fraction: float, message: str) -> None:
        """The running step's line, brought up to date in place (a terminal's cursor-up and erase-line codes)."""
        print(f"\x1b[F\x1b[K[finedefics run {fraction:4.0%}] {message}", file=self._console, flush=True)

    @property
    def project(self) -> str:
        """The run's name in trackers (Trackio's project): its folder's name."""
        return self.output_dir.resolve().name

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
        only, the stage III adapter for the stage III variants, else the stage II adapter."""
        if variant == "zero_shot":
            return self.base_model
        if variant == "stage1_only":
            return str(self.stage_dir(STAGE1_OF[variant], "stage1"))
        return str(self.stage_dir(variant, "stage3" if variant in STAGE2_OF else "stage2"))

    # What determines each step (its fingerprint; see `run_steps`)
    def _settings(self, **sections: Any) -> dict[str, Any]:
        return {**sections, "seed": self.config.seed, "version": __version__}

    @cached_property
    def base_model_identity(self) -> str:
        """The base model as its fingerprints name it: the world's cache key, a folder's path or a Hub id."""
        if self.config.base_model == WORLD_BASE:
            return f"{WORLD_BASE}:{world_key(self.synthetic, self.world)}"
        folder = Path(self.config.base_model)
        return str(folder.resolve()) if folder.is_dir() else self.config.base_model

    @cached_property
    def data_record(self) -> StepRecord | None:
        config = self._data_config()
        if config is None:  # a folder built earlier, never written to
            return None
        values = {k: v for k, v in dataclasses.asdict(config).items() if k not in ("output_dir", "api_key")}
        if isinstance(config, BuildConfig):  # a build is redone when its source folders' files changed
            values["source files"] = {name: folder_fingerprint(path) for name, path in config.folders().items()}
        discard = (self.data_dir, self.output_dir / "source") if self.synthetic else (self.data_dir,)
        # The data is the world's (its own seed is among `values`), not the training seed's.
        settings = {"data": values, "version": __version__}
        return StepRecord("data", self.data_dir / FINGERPRINT_NAME, settings, discard)

    @cached_property
    def data_fingerprint(self) -> str:
        if self.data_record is not None:
            return self.data_record.fingerprint
        card = self.data_dir / "README.md"  # a folder built earlier: its path and its card (configs, sizes)
        digest = hashlib.sha256(card.read_bytes()).hexdigest() if card.is_file() else None
        return fingerprint({"folder": str(self.data_dir.resolve()), "card": digest})

    @cached_property
    def model_settings(self) -> dict[str, Any]:
        values = dataclasses.asdict(self._model_args(self.config.base_model))
        return {**values, "model_name_or_path": self.base_model_identity}

    def stage_record(self, variant: str, stage: str) -> StepRecord:
        variant = {"stage1": STAGE1_OF, "stage2": STAGE2_OF}.get(stage, {}).get(variant, variant)
        args = {
            key: value
            for key, value in self.stage_args(variant, stage).to_dict().items()
            if key not in NOT_FINGERPRINTED and not key.startswith(NOT_FINGERPRINTED_PREFIXES)
        }
        upstream = {"data": self.data_fingerprint}
        if stage == "stage2" and variant in STAGE1_OF:
            upstream["stage1"] = self.stage_record(variant, "stage1").fingerprint
        if stage == "stage3":
            upstream["stage2"] = self.stage_record(STAGE2_OF[variant], "stage2").fingerprint
        folder = self.stage_dir(variant, stage)
        merged = {"stage1": f"{folder}-stage1-merged", "stage2": f"{folder}-stage2-merged"}
        discard = (folder, *(Path(merged[name]) for name in upstream if name in merged))
        settings = self._settings(model=self.model_settings, **{stage: args}, upstream=upstream)
        title = STAGE_TITLES[stage]
        return StepRecord(f"{variant}: {title}", folder / FINGERPRINT_NAME, settings, discard)

    def model_fingerprint(self, variant: str) -> str:
        """What a variant's evaluated model is: the base, or the fingerprint of the stage that trained it last."""
        if variant == "zero_shot":
            return self.base_model_identity
        last = "stage1" if variant == "stage1_only" else "stage3" if variant in STAGE2_OF else "stage2"
        return self.stage_record(variant, last).fingerprint

    def evaluation_record(self, variant: str) -> StepRecord:
        evaluation = self.output_dir / "evaluation"
        settings = self._settings(
            evaluation=dataclasses.asdict(self.evaluation),
            model=self.model_settings,
            upstream={"model": self.model_fingerprint(variant), "data": self.data_fingerprint},
        )
        folders = (
            evaluation / "predictions" / variant,
            evaluation / "summaries" / variant,
            self.tensorboard_dir(variant),
        )
        return StepRecord(f"{variant}: evaluate", folders[0] / FINGERPRINT_NAME, settings, folders)

    def tensorboard_dir(self, variant: str) -> Path:
        """Where a variant's evaluation results go for TensorBoard (its stages log under `<stage>/runs/`)."""
        return self.output_dir / "evaluation" / "runs" / variant

    def analysis_record(self, variant: str) -> StepRecord:
        folder = self.output_dir / "analysis" / variant
        analysis = {k: v for k, v in dataclasses.asdict(self.analysis).items() if k != "variants"}
        upstream = {
            "model": self.model_fingerprint(variant),
            "evaluation": self.evaluation_record(variant).fingerprint,
        }
        settings = self._settings(analysis=analysis, model=self.model_settings, upstream=upstream)
        return StepRecord(f"{variant}: analyze", folder / FINGERPRINT_NAME, settings, (folder,))

    def tables_record(self) -> StepRecord:
        upstream = {variant: self.evaluation_record(variant).fingerprint for variant in self.config.variants}
        upstream |= {f"{variant}: analyze": self.analysis_record(variant).fingerprint for variant in self.analysed}
        return StepRecord("tables", self.output_dir / f"table3.{FINGERPRINT_NAME}", self._settings(upstream=upstream))

    @property
    def analysed(self) -> list[str]:
        return [variant for variant in self.analysis.variants if variant in self.config.variants]

    # Data
    def _data_config(self) -> SyntheticFGVRConfig | BuildConfig | None:
        """The data section's config: synthetic generation, a build, or None for an already built folder."""
        data = self.config.data
        if "synthetic" in data:
            return parse_section(
                SyntheticFGVRConfig, {"seed": self.config.world_seed, **data["synthetic"]}, "data.synthetic"
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

    def _data_done(self) -> bool:
        built = (self.data_dir / "README.md").is_file()
        return built and (self.data_record is None or self.data_record.is_complete())

    def step_build(self) -> None:
        if self._data_done():
            return
        if "dataset" in self.config.data:
            raise FileNotFoundError(f"data.dataset {self.data_dir} is not a dataset folder built by build-dataset.")
        with recorded(self.data_record):
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
        if stage == "stage3":
            return variant in STAGE2_OF
        return variant not in ("zero_shot", "stage1_only")

    def stage_args(
        self, variant: str, stage: str
    ) -> ContrastiveAlignmentConfig | InstructionTuningConfig | ReinforcementConfig:
        """The training config of one stage of a variant: the recipe's section, the run's seed and folders. A rerun
        resumes from the last complete checkpoint in its folder (`trainer.checkpoints.resume_checkpoint`)."""
        variant = STAGE2_OF.get(variant, variant) if stage == "stage2" else variant
        # Trackers see one project per run, one run per variant and stage (the evaluation's beside them).
        tracking = {"report_to": self.config.report_to, "project": self.project, "run_name": f"{variant}-{stage}"}
        values = {**tracking, **getattr(self.config, stage)}
        values |= {"output_dir": str(self.stage_dir(variant, stage)), "seed": self.config.seed}
        if stage == "stage1":
            # Table 3b changes one thing: what the contrastive terms compare (object<->category, no attribute text).
            # Without descriptions there is nothing to caption, so its generation loss is off; the `_naming` form
            # keeps a generation task that answers the open-set question with the name, which no other variant has.
            values |= {
                "contrastive_object_category": {"objective": "object_category", "generation_loss_weight": 0.0},
                "contrastive_object_category_naming": {"objective": "object_category"},
                "finedefics_literal_ccc": {"ccc_form": "literal"},
            }.get(variant, {})
            return parse_section(ContrastiveAlignmentConfig, values, "stage1")
        if stage == "stage3":
            stage2 = str(self.stage_dir(STAGE2_OF[variant], "stage2"))
            return parse_section(ReinforcementConfig, {**values, "stage2_adapter": stage2}, "stage3")
        stage1 = str(self.stage_dir(variant, "stage1")) if variant in STAGE1_OF else None
        # What the variant itself changes; everything else is the recipe's stage2 section, shared by all.
        values |= {
            "open_set_only": {"instruction_types": ["open_set"]},
            "one_stage": {"paradigm": "one_stage"},
        }.get(variant, {})
        return parse_section(InstructionTuningConfig, {**values, "stage1_adapter": stage1}, "stage2")

    def _finished(self, variant: str, stage: str) -> bool:
        output_dir = self.stage_dir(variant, stage)
        if is_finished_save(output_dir) and self.stage_record(variant, stage).is_complete():
            return True
        if (output_dir / "adapter_config.json").is_file() and not is_finished_save(output_dir):
            logger.warning("%s holds an unfinished save (interrupted): training %s again.", output_dir, stage)
        return False

    def step_stage1(self, variant: str) -> None:
        variant = STAGE1_OF[variant]
        if self._finished(variant, "stage1"):
            return
        with recorded(self.stage_record(variant, "stage1")):
            objective = self.stage_args(variant, "stage1").objective
            triples = self.triples(without_attributes=objective == "object_category")
            train_stage1(self._model_args(), self.stage_args(variant, "stage1"), triples)

    def step_stage2(self, variant: str) -> None:
        if self._finished(variant, "stage2"):
            return
        with recorded(self.stage_record(variant, "stage2")):
            instructions = load_dataset(str(self.data_dir), "instructions", split="train")
            auxiliary = self.triples(without_attributes=False) if variant == "one_stage" else None
            train_stage2(self._model_args(), self.stage_args(variant, "stage2"), instructions, auxiliary)

    def step_stage3(self, variant: str) -> None:
        if self._finished(variant, "stage3"):
            return
        with recorded(self.stage_record(variant, "stage3")):
            prompts = load_dataset(str(self.data_dir), "rl", split="train")
            train_stage3(self._model_args(), self.stage_args(variant, "stage3"), prompts)

    # Evaluation and analysis
    def evaluation_items(self) -> tuple[dict[str, list], dict[str, str]]:
        from .evaluation import load_mc_items

        if self.synthetic is not None:
            source = self.output_dir / "source"
            items = load_mc_items(SYNTHETIC, source, source / "options_test.json")
            return {SYNTHETIC: items}, {SYNTHETIC: self.synthetic.superclass}
        if not self.evaluation.datasets or self.evaluation.data_dir is None:
            raise ValueError("Set evaluation.datasets and evaluation.data_dir for built (non-synthetic) data.")
        root = Path(self.evaluation.data_dir)
        return {name: load_mc_items(name, root / name) for name in self.evaluation.datasets}, {}

    def step_evaluate(self, variant: str) -> dict[str, dict[str, Any]]:
        """{scorer: {dataset: summary}}, the open-set summaries under ``open_set``."""
        from .evaluation import evaluate_model, evaluate_open_set

        output_dir = self.output_dir / "evaluation"
        if self.evaluation_record(variant).is_complete():
            return read_summaries(output_dir).get(variant, {})
        with recorded(self.evaluation_record(variant)):
            items, superclasses = self.evaluation_items()
            model, processor = self._model_args().load(model_name_or_path=self.model_dir(variant))
            common = {
                "model_name": variant,
                "batch_size": self.evaluation.batch_size,
                "max_new_tokens": self.evaluation.max_new_tokens,
                "superclasses": superclasses,
            }
            results = {}
            if MULTIPLE_CHOICE in self.evaluation.tasks:
                scorers = tuple(self.evaluation.scorers)
                results = evaluate_model(
                    model.eval(), processor, items, output_dir, scorers=scorers, seed=self.config.seed, **common
                )
            if OPEN_SET in self.evaluation.tasks:
                results[OPEN_SET] = evaluate_open_set(
                    model.eval(),
                    processor,
                    items,
                    output_dir,
                    similarity_model=self.evaluation.similarity_model,
                    **common,
                )
            metrics = evaluation_metrics(results)
            log_metrics(self.trackers, metrics, self.tensorboard_dir(variant), self.project, f"{variant}-evaluation")
        return results

    def analysis_splits(self) -> dict[str, tuple[Dataset, Dataset]]:
        """{evaluation dataset: (test split, train split)} with ClassLabel labels, for the analyses."""
        from dataset_builders import load_source

        if self.synthetic is not None:
            source = str(self.output_dir / "source")
            return {SYNTHETIC: tuple(load_source(SYNTHETIC, source, split) for split in ("test", "train"))}
        root = Path(self.evaluation.data_dir)
        return {
            name: (load_source(name, str(root / name), "test"), load_source(name, str(root / name), "train"))
            for name in self.evaluation.datasets
        }

    def step_analyze(self, variant: str) -> None:
        from .analysis import run_analysis
        from .evaluation.runner import predictions_path

        if self.analysis_record(variant).is_complete():
            return
        with recorded(self.analysis_record(variant)):
            splits = self.analysis_splits()
            model, processor = self._model_args().load(model_name_or_path=self.model_dir(variant))
            for name, (test, train) in splits.items():
                scorer = self.evaluation.scorers[0]
                predictions = predictions_path(self.output_dir / "evaluation", variant, name, scorer)
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
                    title=f"{VARIANT_TITLES[variant]}, {DATASETS[name].display_name if name in DATASETS else name}",
                )

    def alignment(self) -> dict[str, dict[str, float]]:
        """Table 8 and its companions for each analysed variant (mean over the evaluation datasets):
        `alignment_mean_cosine` (the paper's number), `alignment_gap` (own name minus other names) and
        `alignment_object_to_name_top1`."""
        measures = {"mean_cosine": "overall", "gap": "gap", "object_to_name_top1": "object_to_name_top1"}
        table = {}
        for variant in self.analysed:
            reports = [
                json.loads(path.read_text()) for path in (self.output_dir / "analysis" / variant).glob("*/report.json")
            ]
            reports = [report["alignment"] for report in reports if "alignment" in report]
            if reports:
                table[variant] = {
                    f"alignment_{name}": sum(report[key] for report in reports) / len(reports)
                    for name, key in measures.items()
                }
        return table

    def step_tables(self, results: dict[str, Any]) -> None:
        results = self._with_skipped(results)
        with recorded(self.tables_record()):
            alignment = self.alignment()
            table = comparison_table(results, VARIANT_TITLES) + "\n\n" + resolution_note(results)
            if alignment:
                table += "\n\n" + alignment_table(alignment)
            accuracies = mean_accuracies(results)
            for variant, measures in alignment.items():
                accuracies[variant] |= measures
            (self.output_dir / "table3.md").write_text(table + "\n")
            (self.output_dir / "table3.json").write_text(json.dumps(accuracies, indent=2) + "\n")

    # Expected costs, in examples trained / items scored (the progress estimate's weights)
    @cached_property
    def _training_rows(self) -> dict[str, int]:
        """Rows of the training sets of the stages (before the build: the synthetic world's size, one triple, two
        instructions and two rl prompts per training image); a folder built before the `rl` config counts none."""
        if (self.data_dir / "README.md").is_file():
            built = [name for name in TRAINING_SETS if (self.data_dir / name).is_dir()]
            rows = {name: load_dataset(str(self.data_dir), name, split="train").num_rows for name in built}
            return {name: rows.get(name, 0) for name in TRAINING_SETS}
        synthetic = self.synthetic
        images = synthetic.num_categories * synthetic.train_per_category if synthetic else 1000
        return {"triples": images, "instructions": 2 * images, "rl": 2 * images}

    def _training_cost(self, variant: str, stage: str) -> float:
        args = self.stage_args(STAGE1_OF[variant] if stage == "stage1" else variant, stage)
        per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps
        steps = args.max_steps
        if steps <= 0:
            rows = self._training_rows[dict(zip(STAGE_TITLES, TRAINING_SETS))[stage]]
            # GRPO's batch counts answers: each prompt is answered num_generations times.
            rows *= args.num_generations if stage == "stage3" else 1
            steps = math.ceil(args.num_train_epochs * math.ceil(rows / per_step))
        # Stage I encodes each image with its category, its description and their negatives.
        return steps * per_step * (4 if stage == "stage1" else 1)

    @cached_property
    def _test_items(self) -> int:
        if self.synthetic is not None:
            return self.synthetic.num_categories * self.synthetic.test_per_category
        return sum(len(items) for items in self.evaluation_items()[0].values())

    def _evaluation_cost(self) -> float:
        passes = len(self.evaluation.scorers) if MULTIPLE_CHOICE in self.evaluation.tasks else 0
        return self._test_items * (passes + (OPEN_SET in self.evaluation.tasks))

    def plan(self, results: dict[str, Any]) -> list[PlannedStep]:
        """The run's steps in order, each with its expected cost, its fingerprint record and its done test;
        evaluations fill `results`."""
        steps = [
            PlannedStep("build the training data", "build", None, self.step_build, self.data_record, self._data_done)
        ]
        if self.config.base_model == WORLD_BASE:
            cost = self.world.max_steps * self.world.batch_size
            name = "world pretraining of the base model (once, then cached)"
            steps.append(PlannedStep(name, "world", cost, self._world, is_done=self._world_cached))
        for variant in self.config.variants:
            for stage, title in STAGE_TITLES.items():
                name = {"stage1": STAGE1_OF, "stage2": STAGE2_OF}.get(stage, {}).get(variant, variant)
                if self.trains(variant, stage) and f"{name}: {title}" not in {step.name for step in steps}:
                    train, record = partial(getattr(self, f"step_{stage}"), name), self.stage_record(name, stage)
                    cost, is_done = self._training_cost(variant, stage), partial(self._finished, name, stage)
                    steps.append(PlannedStep(f"{name}: {title}", stage, cost, train, record, is_done))
        for variant in self.config.variants:
            evaluate, record = partial(self._evaluate_into, results, variant), self.evaluation_record(variant)
            steps.append(PlannedStep(f"{variant}: evaluate", "evaluate", self._evaluation_cost(), evaluate, record))
        for variant in self.analysed:
            cost, record = self._test_items * len(self.analysis.analyses), self.analysis_record(variant)
            steps.append(
                PlannedStep(f"{variant}: analyze", "analyze", cost, partial(self.step_analyze, variant), record)
            )
        steps.append(PlannedStep("tables", "tables", None, partial(self.step_tables, results), self.tables_record()))
        return steps

    def _world(self) -> None:
        self.base_model  # noqa: B018 (pretrains the world base on first use)

    def _world_cached(self) -> bool:
        key = world_key(self.synthetic, self.world)
        return (default_cache_dir() / "world" / key / WORLD_MARKER).is_file() and not self.config.rebuild_world

    def _evaluate_into(self, results: dict[str, Any], variant: str) -> None:
        results[variant] = self.step_evaluate(variant)

    def run(self) -> dict[str, Any]:
        """Every step of the recipe, one console line each; the libraries' own output goes to `run.log`."""
        results: dict[str, Any] = {}
        log_path = self.output_dir / RUN_LOG_NAME
        with folder_lock(self.output_dir), run_log(log_path) as self._console:
            # On a terminal the default display also keeps the running step's elapsed time and estimate current.
            live = self.progress == self._print_progress and self._console.isatty()
            update = self._redraw_progress if live else None
            seconds = run_steps(self.plan(results), self._logged(self.progress), update)
        self._console = sys.stdout
        self.progress(1.0, f"done in {seconds:.0f} s (full log: {log_path})")
        return self._with_skipped(results)

    def _with_skipped(self, results: dict[str, Any]) -> dict[str, Any]:
        """`results` completed with the evaluations a rerun skipped, as they were written."""
        written = read_summaries(self.output_dir / "evaluation")
        return {variant: results.get(variant) or written.get(variant, {}) for variant in self.config.variants}

    @staticmethod
    def _logged(progress: Progress) -> Progress:
        def both(fraction: float, message: str) -> None:
            logger.info("[%3.0f%%] %s", 100 * fraction, message)
            progress(fraction, message)

        return both


def alignment_table(alignment: dict[str, dict[str, float]]) -> str:
    """Table 8 (mean cosine of objects and their category names) with the two measures that tell whether objects sit
    nearer their own name than the others: the raw mean moves with the geometry of the whole space."""
    lines = [
        "Object-category alignment (Table 8; zero-shot is the base, stage I only is Finedefics' stage I):",
        "",
        "| Variant | Mean cosine (Table 8) | Gap, own minus other names | Object -> name top-1 (%) |",
        "|---|---:|---:|---:|",
    ]
    for variant, measures in alignment.items():
        lines.append(
            f"| {VARIANT_TITLES[variant]} | {measures['alignment_mean_cosine']:.3f} | "
            f"{measures['alignment_gap']:+.3f} | {100 * measures['alignment_object_to_name_top1']:.1f} |"
        )
    return "\n".join(lines)


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
