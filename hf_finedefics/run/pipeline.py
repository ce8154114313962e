"""`finedefics run`: build -> (world pretraining) -> each variant's stages -> evaluate -> analyze -> tables.

The recipe (`run.recipe`) says what to run, the variant table (`run.variants`) what each variant trains; this module
holds the steps and their plan. Every step writes into `output_dir`, beside a fingerprint of what determines it
(`run.steps`): a rerun skips the steps whose settings are unchanged, redoes a changed one and everything downstream,
and picks up an interrupted one where it stopped (training resumes from its last checkpoint). The console gets one
line per step; the libraries' output goes to `<output_dir>/run.log`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import sys
from functools import cached_property, partial
from pathlib import Path
from typing import Any

from datasets import Dataset
from transformers import TrainingArguments

from dataset_builders import build_dataset
from dataset_builders.build import build_synthetic_dataset
from dataset_builders.sources import folder_fingerprint
from dataset_builders.sources.synthetic import SyntheticFGVRConfig

from .. import __version__
from ..collators import ATTRIBUTE_COLUMNS
from ..data.loading import check_parquet_files, load_dataset_split
from ..evaluation.items import DATASETS
from ..evaluation.names import MULTIPLE_CHOICE, OPEN_SET
from ..evaluation.report import (
    alignment_table,
    comparison_table,
    evaluation_metrics,
    mean_accuracies,
    read_summaries,
    resolution_note,
)
from ..tracking import check_trackers, log_metrics
from ..trainer.contrastive_alignment_trainer import train_stage1
from ..trainer.instruction_tuning_trainer import train_stage2
from ..trainer.model_config import FinedeficsModelConfig
from ..trainer.reinforcement_trainer import train_stage3
from ..training_summary import is_finished_save
from ..world import WorldPretrainingConfig, ensure_world_base, world_key
from ..world.pretraining import MARKER as WORLD_MARKER
from ..world.pretraining import default_cache_dir
from .config import WORLD_BASE, RunConfig
from .recipe import RUN_SET_KEYS, RunRecipe, load_run_config
from .steps import (
    FINGERPRINT_NAME,
    RUN_LOG_NAME,
    PlannedStep,
    Progress,
    StepRecord,
    fingerprint,
    recorded,
    run_log,
    run_steps,
)
from .variants import STAGES, VARIANT_TABLE, stage_dir

# The generated world's name in reports and folders (its registry entry: "Synthetic critters").
SYNTHETIC = "synthetic"
# Training settings that place, show, save or publish a run but do not change what it learns: left out of its
# fingerprint (the adapter it starts from is in it as that stage's own fingerprint).
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

logger = logging.getLogger(__name__)


class FinedeficsRun:
    """The steps of one run; each `step_*` is idempotent: skipped when its output was made with the same settings
    (see `run.steps`), redone when they changed."""

    def __init__(self, config: RunConfig, progress: Progress | None = None):
        self.config = config
        self.recipe = RunRecipe.parse(config)
        self.output_dir = self.recipe.output_dir
        self.progress = progress or self._print_progress
        self._console = sys.stdout
        # A tracker that is not installed fails here, not when a Trainer is built after its model has loaded.
        self.trackers = check_trackers(config.report_to)
        if "dataset" in config.data and self.data_dir.is_dir():
            check_parquet_files(self.data_dir)

    def _print_progress(self, fraction: float, message: str) -> None:
        print(f"[finedefics run {fraction:4.0%}] {message}", file=self._console, flush=True)

    def _redraw_progress(self, fraction: float, message: str) -> None:
        """The running step's line, brought up to date in place (a terminal's cursor-up and erase-line codes)."""
        print(f"\x1b[F\x1b[K[finedefics run {fraction:4.0%}] {message}", file=self._console, flush=True)

    @property
    def synthetic(self) -> SyntheticFGVRConfig | None:
        return self.recipe.synthetic

    @property
    def world(self) -> WorldPretrainingConfig:
        return self.recipe.world

    @property
    def data_dir(self) -> Path:
        return self.recipe.data_dir

    @cached_property
    def base_model(self) -> str:
        """The model every variant starts from, built (world pretraining) or fetched on first use."""
        if self.config.base_model == WORLD_BASE:
            return str(ensure_world_base(self.synthetic, self.world, rebuild=self.config.rebuild_world))
        return self.recipe.model.model_name_or_path

    def model_args(self) -> FinedeficsModelConfig:
        return self.recipe.model_args(self.base_model)

    def stage_dir(self, variant: str, stage: str) -> Path:
        return stage_dir(self.output_dir, variant, stage)

    def stage_args(self, variant: str, stage: str) -> TrainingArguments:
        return self.recipe.stage_config(variant, stage)

    def model_dir(self, variant: str) -> str:
        """What `load_finedefics_model` loads for a variant: the base model, or the adapter of its last stage."""
        stage = VARIANT_TABLE[variant].evaluated_stage
        return self.base_model if stage is None else str(self.stage_dir(variant, stage))

    # What determines each step (its fingerprint; see `run.steps`)
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
        config = self.recipe.data
        if config is None:  # a folder built earlier, never written to
            return None
        values = {k: v for k, v in dataclasses.asdict(config).items() if k not in ("output_dir", "api_key")}
        if not isinstance(config, SyntheticFGVRConfig):  # a build is redone when its source folders' files changed
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
        return {**dataclasses.asdict(self.recipe.model), "model_name_or_path": self.base_model_identity}

    def stage_record(self, variant: str, stage: str) -> StepRecord:
        owner = VARIANT_TABLE[variant].owner(stage)
        args = {
            key: value
            for key, value in self.stage_args(owner, stage).to_dict().items()
            if key not in NOT_FINGERPRINTED and not key.startswith(NOT_FINGERPRINTED_PREFIXES)
        }
        upstream = {"data": self.data_fingerprint}
        folder = self.stage_dir(owner, stage)
        discard = [folder]
        if (previous := VARIANT_TABLE[owner].previous(stage)) is not None:
            upstream[previous] = self.stage_record(owner, previous).fingerprint
            discard.append(Path(f"{folder}-{previous}-merged"))
        settings = self._settings(model=self.model_settings, **{stage: args}, upstream=upstream)
        name = f"{owner}: {STAGES[stage].title}"
        return StepRecord(name, folder / FINGERPRINT_NAME, settings, tuple(discard))

    def model_fingerprint(self, variant: str) -> str:
        """What a variant's evaluated model is: the base, or the fingerprint of the stage that trained it last."""
        stage = VARIANT_TABLE[variant].evaluated_stage
        return self.base_model_identity if stage is None else self.stage_record(variant, stage).fingerprint

    def _command_settings(self, section: str) -> dict[str, Any]:
        """A command section's settings less those the run sets itself (in the step's other settings)."""
        values = dataclasses.asdict(getattr(self.recipe, section))
        return {key: value for key, value in values.items() if key not in RUN_SET_KEYS[section]}

    def evaluation_record(self, variant: str) -> StepRecord:
        evaluation = self.output_dir / "evaluation"
        settings = self._settings(
            evaluation=self._command_settings("evaluation"),
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
        upstream = {
            "model": self.model_fingerprint(variant),
            "evaluation": self.evaluation_record(variant).fingerprint,
        }
        settings = self._settings(
            analysis=self._command_settings("analysis"), model=self.model_settings, upstream=upstream
        )
        return StepRecord(f"{variant}: analyze", folder / FINGERPRINT_NAME, settings, (folder,))

    def tables_record(self) -> StepRecord:
        upstream = {variant: self.evaluation_record(variant).fingerprint for variant in self.config.variants}
        upstream |= {f"{variant}: analyze": self.analysis_record(variant).fingerprint for variant in self.analysed}
        return StepRecord("tables", self.output_dir / f"table3.{FINGERPRINT_NAME}", self._settings(upstream=upstream))

    @property
    def analysed(self) -> list[str]:
        return self.recipe.analysed

    # Data
    def _data_done(self) -> bool:
        built = (self.data_dir / "README.md").is_file()
        return built and (self.data_record is None or self.data_record.is_complete())

    def step_build(self) -> None:
        if self._data_done():
            return
        if "dataset" in self.config.data:
            raise FileNotFoundError(f"data.dataset {self.data_dir} is not a dataset folder built by build-dataset.")
        with recorded(self.data_record):
            if self.synthetic is not None:
                build_synthetic_dataset(self.synthetic, self.data_dir, self.output_dir / "source")
            else:
                build_dataset(self.recipe.data)

    def training_set(self, name: str) -> Dataset:
        """The train split of one config of the built dataset folder (`triples`, `instructions`, `rl`)."""
        return load_dataset_split(self.data_dir, name, "train")

    # Training: one function per stage, given its config, reading its training set
    def _train_stage1(self, args: TrainingArguments) -> None:
        triples = self.training_set("triples")
        if args.objective == "object_category":
            # The object-category ablation reads no attribute text: drop it, so none can reach the model.
            triples = triples.remove_columns(list(ATTRIBUTE_COLUMNS))
        train_stage1(self.model_args(), args, triples)

    def _train_stage2(self, args: TrainingArguments) -> None:
        # The one-stage paradigm trains stage I's terms on the triples beside the instructions.
        auxiliary = self.training_set("triples") if args.paradigm == "one_stage" else None
        train_stage2(self.model_args(), args, self.training_set("instructions"), auxiliary)

    def _train_stage3(self, args: TrainingArguments) -> None:
        train_stage3(self.model_args(), args, self.training_set("rl"))

    def _finished(self, variant: str, stage: str) -> bool:
        output_dir = self.stage_dir(variant, stage)
        if is_finished_save(output_dir) and self.stage_record(variant, stage).is_complete():
            return True
        if (output_dir / "adapter_config.json").is_file() and not is_finished_save(output_dir):
            logger.warning("%s holds an unfinished save (interrupted): training %s again.", output_dir, stage)
        return False

    def step_train(self, variant: str, stage: str) -> None:
        """Train `variant`'s `stage` (its owner's, when shared) unless it is finished with the same settings."""
        if self._finished(variant, stage):
            return
        with recorded(self.stage_record(variant, stage)):
            getattr(self, f"_train_{stage}")(self.stage_args(variant, stage))

    # Evaluation and analysis
    def test_sets(self) -> tuple[dict[str, list], dict[str, str] | None]:
        """({dataset: multiple-choice items}, {dataset: the noun asked about} or None) of the evaluation."""
        from ..evaluation import load_mc_items
        from ..evaluation.runner import load_test_sets

        if self.synthetic is not None:
            source = self.output_dir / "source"
            items = load_mc_items(SYNTHETIC, source, source / "options_test.json")
            return {SYNTHETIC: items}, {SYNTHETIC: self.synthetic.superclass}
        evaluation = self.recipe.evaluation
        if evaluation.data_dir is None and evaluation.source_dirs is None:
            raise ValueError(
                "Set evaluation.data_dir (or evaluation.source_dirs) for built (non-synthetic) data: the test sets "
                f"of evaluation.sources {evaluation.sources} are read from there."
            )
        return load_test_sets(evaluation), None

    def step_evaluate(self, variant: str) -> dict[str, dict[str, Any]]:
        """{scorer: {dataset: summary}}, the open-set summaries under ``open_set``."""
        from ..evaluation.runner import run_evaluation

        if self.evaluation_record(variant).is_complete():
            return read_summaries(self.output_dir / "evaluation").get(variant, {})
        with recorded(self.evaluation_record(variant)):
            test_sets, superclasses = self.test_sets()
            model, processor = self.model_args().load(model_name_or_path=self.model_dir(variant))
            results = run_evaluation(self.recipe.evaluation, model.eval(), processor, test_sets, variant, superclasses)
            metrics = evaluation_metrics(results)
            log_metrics(
                self.trackers, metrics, self.tensorboard_dir(variant), self.recipe.project, f"{variant}-evaluation"
            )
        return results

    def analysis_splits(self) -> dict[str, tuple[Dataset, Dataset]]:
        """{evaluation dataset: (test split, train split)} with ClassLabel labels, for the analyses."""
        from dataset_builders import load_source
        from dataset_builders.sources import parse_pairs, source_folders

        if self.synthetic is not None:
            folders = {SYNTHETIC: str(self.output_dir / "source")}
        else:
            evaluation = self.recipe.evaluation
            folders = source_folders(evaluation.sources, evaluation.data_dir, parse_pairs(evaluation.source_dirs))
        analysis = self.recipe.analysis
        return {
            name: (
                analysis.first_samples(load_source(name, str(folder), "test")),
                load_source(name, str(folder), "train"),
            )
            for name, folder in folders.items()
        }

    def step_analyze(self, variant: str) -> None:
        from ..analysis import run_analysis
        from ..evaluation.runner import predictions_path

        if self.analysis_record(variant).is_complete():
            return
        with recorded(self.analysis_record(variant)):
            splits = self.analysis_splits()
            model, processor = self.model_args().load(model_name_or_path=self.model_dir(variant))
            scorers = self.recipe.evaluation.scorers
            for name, (test, train) in splits.items():
                dataset = DATASETS[name].display_name if name in DATASETS else name
                args = dataclasses.replace(
                    self.recipe.analysis,
                    dataset_name=name,
                    output_dir=str(self.output_dir / "analysis" / variant / name),
                    title=f"{VARIANT_TABLE[variant].title}, {dataset}",
                )
                predictions = (
                    predictions_path(self.output_dir / "evaluation", variant, name, scorers[0]) if scorers else None
                )
                run_analysis(
                    model.eval(),
                    processor,
                    test,
                    args.output_dir,
                    analyses=args.analyses,
                    probe_train_dataset=train,
                    predictions=predictions if predictions is not None and predictions.is_file() else None,
                    **args.analysis_kwargs(),
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
            titles = {name: variant.title for name, variant in VARIANT_TABLE.items()}
            table = comparison_table(results, titles) + "\n\n" + resolution_note(results)
            if alignment:
                table += "\n\n" + alignment_table(alignment, titles)
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
        names = [stage.training_set for stage in STAGES.values()]
        if (self.data_dir / "README.md").is_file():
            return {name: self.training_set(name).num_rows if (self.data_dir / name).is_dir() else 0 for name in names}
        synthetic = self.synthetic
        images = synthetic.num_categories * synthetic.train_per_category if synthetic else 1000
        return {"triples": images, "instructions": 2 * images, "rl": 2 * images}

    def _training_cost(self, variant: str, stage: str) -> float:
        args = self.stage_args(variant, stage)
        per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps
        steps = args.max_steps
        if steps <= 0:
            # GRPO's batch counts answers: each prompt is answered num_generations times.
            rows = self._training_rows[STAGES[stage].training_set] * getattr(args, "num_generations", 1)
            steps = math.ceil(args.num_train_epochs * math.ceil(rows / per_step))
        return steps * per_step * STAGES[stage].encodings_per_example

    @cached_property
    def _test_items(self) -> int:
        if self.synthetic is not None:
            return self.synthetic.num_categories * self.synthetic.test_per_category
        return sum(len(items) for items in self.test_sets()[0].values())

    def _evaluation_cost(self) -> float:
        tasks = self.recipe.evaluation.tasks
        passes = len(self.recipe.evaluation.scorers) if MULTIPLE_CHOICE in tasks else 0
        return self._test_items * (passes + (OPEN_SET in tasks))

    def plan(self, results: dict[str, Any]) -> list[PlannedStep]:
        """The run's steps in order, each with its expected cost, its fingerprint record and its done test;
        evaluations fill `results`. A stage shared by several variants is one step, in its owner's folder."""
        steps = [
            PlannedStep("build the training data", "build", None, self.step_build, self.data_record, self._data_done)
        ]
        if self.config.base_model == WORLD_BASE:
            cost = self.world.max_steps * self.world.batch_size
            name = "world pretraining of the base model (once, then cached)"
            steps.append(PlannedStep(name, "world", cost, self._world, is_done=self._world_cached))
        for variant in self.recipe.variants:
            for stage in variant.stages:
                owner = variant.owner(stage)
                name = f"{owner}: {STAGES[stage].title}"
                if name not in {step.name for step in steps}:
                    train, record = partial(self.step_train, owner, stage), self.stage_record(owner, stage)
                    cost, is_done = self._training_cost(owner, stage), partial(self._finished, owner, stage)
                    steps.append(PlannedStep(name, stage, cost, train, record, is_done))
        for variant in self.config.variants:
            evaluate, record = partial(self._evaluate_into, results, variant), self.evaluation_record(variant)
            steps.append(PlannedStep(f"{variant}: evaluate", "evaluate", self._evaluation_cost(), evaluate, record))
        for variant in self.analysed:
            cost, record = self._test_items * len(self.recipe.analysis.analyses), self.analysis_record(variant)
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
        from ..folder_lock import folder_lock

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


def run_pipeline(
    recipe: str | os.PathLike | None = None, progress: Progress | None = None, **overrides: Any
) -> dict[str, Any]:
    """Run a recipe (default: the embedded one) and return {variant: {scorer: {dataset: summary}}}."""
    return FinedeficsRun(load_run_config(recipe, **overrides), progress).run()
