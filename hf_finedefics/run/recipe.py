"""A run recipe, loaded and checked once into the configs of the commands and steps its sections configure.

    output_dir: finedefics-default
    base_model: HuggingFaceM4/idefics2-8b   # or `world`: the small pretrained MLLM of the synthetic world
    variants: [zero_shot, instruction_tuning, contrastive_object_category, finedefics]
    analysis_variants: [zero_shot, finedefics]
    report_to: tensorboard  # or trackio: every stage's tracker, and the evaluation results' (default: none)
    data: {synthetic: {...}}  or  {dataset: folder built by `finedefics build-dataset`, build: {...}}
    model: {...}        # FinedeficsModelConfig
    stage1: {...}       # ContrastiveAlignmentConfig (`finedefics stage1`)
    stage2: {...}       # InstructionTuningConfig (`finedefics stage2`)
    stage3: {...}       # ReinforcementConfig (`finedefics stage3`), for the *_rl variants
    evaluation: {...}   # EvaluateArguments (`finedefics evaluate`)
    analysis: {...}     # AnalysisArguments (`finedefics analyze`)
    world: {...}        # WorldPretrainingConfig, for base_model: world

Each section is the configuration of one command, with that command's names and defaults, less the keys the run
sets itself (folders, the model, the seed, trackers): a recipe that sets one of those is refused, naming it. Every
section is parsed here, before any work: a typo in stage2 must not surface after the data build and stage I, nor
hide behind a stage a finished earlier run lets this one skip.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from transformers import TrainingArguments

from dataset_builders import BuildConfig
from dataset_builders.sources.synthetic import SyntheticFGVRConfig

from ..analysis.config import AnalysisArguments
from ..evaluation.config import EvaluateArguments
from ..evaluation.names import MULTIPLE_CHOICE
from ..recipe_sections import parse_section
from ..trainer.contrastive_alignment_config import ContrastiveAlignmentConfig
from ..trainer.instruction_tuning_config import InstructionTuningConfig
from ..trainer.model_config import TESTING_PREFIX, FinedeficsModelConfig, check_model_location
from ..trainer.reinforcement_config import ReinforcementConfig
from ..world import WorldPretrainingConfig
from .config import SECTION_NAMES, WORLD_BASE, RunConfig, embedded_recipe_path
from .variants import STAGES, VARIANT_TABLE, Variant, stage_dir

# The config each training stage's section parses into.
STAGE_CONFIGS: dict[str, type[TrainingArguments]] = {
    "stage1": ContrastiveAlignmentConfig,
    "stage2": InstructionTuningConfig,
    "stage3": ReinforcementConfig,
}
# The dataclass each recipe section configures; `data` holds one of its kinds (`dataset` is a folder).
SECTIONS: dict[str, type | None] = {
    "data": None,
    "model": FinedeficsModelConfig,
    **STAGE_CONFIGS,
    "evaluation": EvaluateArguments,
    "analysis": AnalysisArguments,
    "world": WorldPretrainingConfig,
}
DATA_KINDS: dict[str, type | None] = {"synthetic": SyntheticFGVRConfig, "build": BuildConfig, "dataset": None}
# The keys of `finedefics evaluate` / `finedefics analyze` that the run sets itself, and to what.
RUN_SET_KEYS = {
    "evaluation": {
        "adapter": "each variant's model",
        "output_dir": "<output_dir>/evaluation",
        "model_name": "the variant's name",
        "seed": "the recipe's seed",
        "report_to": "the recipe's report_to",
        "project": "the run folder's name",
        "api_base": "the run's own models",
        "api_model": "the run's own models",
        "api_key_env": "the run's own models",
        "api_concurrency": "the run's own models",
    },
    "analysis": {
        "dataset_name": "each evaluation dataset's test split",
        "dataset_config": "each evaluation dataset's test split",
        "dataset_split": "each evaluation dataset's test split",
        "probe_train_split": "each evaluation dataset's train split",
        "output_dir": "<output_dir>/analysis/<variant>/<dataset>",
        "adapter": "each variant's model",
        "predictions": "the evaluation's predictions, when `confusion` is listed",
        "seed": "the recipe's seed",
        "title": "the variant and the dataset",
    },
}
if set(SECTIONS) != set(SECTION_NAMES):
    raise RuntimeError(f"RunConfig's sections {SECTION_NAMES} and the parsed ones {list(SECTIONS)} disagree.")


def load_run_config(recipe: str | os.PathLike | None = None, **overrides: Any) -> RunConfig:
    """Read a run recipe (default: the embedded one shipped in the package); `overrides` replace top-level keys."""
    values = yaml.safe_load(Path(recipe or embedded_recipe_path()).read_text()) or {}
    values.update({key: value for key, value in overrides.items() if value is not None})
    return parse_section(RunConfig, values, "")


def _parse_command_section(cls: type, config: RunConfig, section: str, run_values: dict[str, Any]) -> Any:
    """A command's section (`evaluation`, `analysis`) as that command's arguments, with the keys the run sets."""
    values = getattr(config, section)
    if run_set := sorted(set(values) & set(RUN_SET_KEYS[section])):
        given = "; ".join(f"{key}: {RUN_SET_KEYS[section][key]}" for key in run_set)
        raise ValueError(f"The recipe's `{section}` section sets {run_set}, which the run sets itself ({given}).")
    return parse_section(cls, {**values, **run_values}, section)


@dataclass
class RunRecipe:
    """Every section of a run recipe as the config it configures; `training` holds each trained stage's settings
    (checked: they built its config once), keyed by (the variant that owns the stage, the stage)."""

    config: RunConfig
    data: SyntheticFGVRConfig | BuildConfig | None  # None: a dataset folder built earlier
    model: FinedeficsModelConfig
    evaluation: EvaluateArguments
    analysis: AnalysisArguments
    world: WorldPretrainingConfig
    training: dict[tuple[str, str], dict[str, Any]]

    @classmethod
    def parse(cls, config: RunConfig) -> RunRecipe:
        output_dir = Path(config.output_dir)
        if config.base_model != WORLD_BASE and not config.base_model.startswith(TESTING_PREFIX):
            check_model_location(config.base_model, "base_model")
        evaluation = _parse_command_section(
            EvaluateArguments,
            config,
            "evaluation",
            {"output_dir": str(output_dir / "evaluation"), "seed": config.seed},
        )
        analysis = _parse_command_section(
            AnalysisArguments,
            config,
            "analysis",
            {"dataset_name": "", "output_dir": str(output_dir / "analysis"), "seed": config.seed},
        )
        recipe = cls(
            config=config,
            data=_data_config(config),
            model=parse_section(
                FinedeficsModelConfig, {**config.model, "model_name_or_path": config.base_model}, "model"
            ),
            evaluation=evaluation,
            analysis=analysis,
            world=parse_section(WorldPretrainingConfig, {"seed": config.world_seed, **config.world}, "world"),
            training={},
        )
        if "confusion" in analysis.analyses and recipe.analysed and MULTIPLE_CHOICE not in evaluation.tasks:
            raise ValueError(
                f"analysis.analyses has confusion, which reads the {MULTIPLE_CHOICE} predictions, but "
                f"evaluation.tasks is {evaluation.tasks}: add {MULTIPLE_CHOICE} or drop confusion."
            )
        for variant in recipe.variants:
            for stage in variant.stages:
                owner = variant.owner(stage)
                if (owner, stage) not in recipe.training:
                    values = recipe._stage_values(owner, stage)
                    parse_section(STAGE_CONFIGS[stage], values, stage)  # refused here, before any work
                    recipe.training[owner, stage] = values
        return recipe

    @property
    def output_dir(self) -> Path:
        return Path(self.config.output_dir)

    @property
    def data_dir(self) -> Path:
        return _data_dir(self.config)

    @property
    def synthetic(self) -> SyntheticFGVRConfig | None:
        return self.data if isinstance(self.data, SyntheticFGVRConfig) else None

    @property
    def variants(self) -> list[Variant]:
        return [VARIANT_TABLE[name] for name in self.config.variants]

    @property
    def analysed(self) -> list[str]:
        """The variants analysed: those of `analysis_variants` that the run has."""
        return [variant for variant in self.config.analysis_variants if variant in self.config.variants]

    @property
    def project(self) -> str:
        """The run's name in trackers (Trackio's project): its folder's name."""
        return self.output_dir.resolve().name

    def stage_config(self, variant: str, stage: str) -> TrainingArguments:
        """The training config of `variant`'s `stage` (its owner's, when shared), built anew at each call: a config
        caches the device state its Trainer sets up, and training must not change what the next fingerprint
        reads."""
        return parse_section(STAGE_CONFIGS[stage], self.training[VARIANT_TABLE[variant].owner(stage), stage], stage)

    def _stage_values(self, owner: str, stage: str) -> dict[str, Any]:
        """The recipe's section for `stage`, with what `owner` changes in it, the run's seed, folders and trackers.
        A rerun resumes from the last complete checkpoint in its folder (`trainer.checkpoints.resume_checkpoint`)."""
        config, variant = self.config, VARIANT_TABLE[owner]
        # Trackers see one project per run, one run per variant and stage (the evaluation's beside them).
        values = {"report_to": config.report_to, "project": self.project, "run_name": f"{owner}-{stage}"}
        values |= getattr(config, stage)
        values |= {"output_dir": str(stage_dir(self.output_dir, owner, stage)), "seed": config.seed}
        values |= variant.overrides.get(stage, {})
        previous = STAGES[stage].starts_from
        if previous is not None:
            trained = variant.trains(previous)
            values[f"{previous}_adapter"] = str(stage_dir(self.output_dir, owner, previous)) if trained else None
        return values

    def model_args(self, model_name_or_path: str) -> FinedeficsModelConfig:
        return dataclasses.replace(self.model, model_name_or_path=model_name_or_path)


def _data_dir(config: RunConfig) -> Path:
    """The built dataset folder the stages read: `data.dataset`, else the one the run builds."""
    data = config.data
    return Path(data["dataset"]) if "dataset" in data else Path(config.output_dir) / "data"


def _data_config(config: RunConfig) -> SyntheticFGVRConfig | BuildConfig | None:
    """The data section's config: synthetic generation, a build, or None for an already built folder."""
    data = config.data
    if "synthetic" in data:
        return parse_section(SyntheticFGVRConfig, {"seed": config.world_seed, **data["synthetic"]}, "data.synthetic")
    if "build" in data:
        return parse_section(BuildConfig, {**data["build"], "output_dir": str(_data_dir(config))}, "data.build")
    if not isinstance(data["dataset"], str):
        raise ValueError(f"Recipe field `data.dataset` must be a folder (str), got {data['dataset']!r}.")
    return None
