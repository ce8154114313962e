"""The run recipe as YAML holds it (`RunConfig`: top-level keys, each section a mapping), in a module that imports
nothing heavy: `finedefics run --help` and the command line's overrides read it without loading torch. The sections
are parsed into the configs of the commands they configure by `hf_finedefics.run.recipe`."""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..recipe_sections import check_field_types
from .variants import ALL_VARIANTS, VARIANT_TABLE, VARIANTS

WORLD_BASE = "world"
DEFAULT_OUTPUT_DIR = "finedefics-default"
EMBEDDED_RECIPE = "default.yaml"


@dataclass
class RunConfig:
    output_dir: str = field(default=DEFAULT_OUTPUT_DIR, metadata={"help": "Where every step writes."})
    base_model: str = field(
        default="HuggingFaceM4/idefics2-8b",
        metadata={
            "help": "Hub id or folder of the base VLM; `world` pretrains (once, then cached) a small MLLM of the "
            "synthetic world (the embedded default, nothing to download); `testing:<architecture>` builds a small "
            "randomly initialised checkpoint in-process."
        },
    )
    seed: int = field(
        default=0, metadata={"help": "Seed of training (LoRA initialisation, data order) and option shuffling."}
    )
    world_seed: int = field(
        default=0,
        metadata={
            "help": "Seed of the synthetic world: its categories, names and images, and its pretrained base "
            "(`base_model: world`); `world.seed` and `data.synthetic.seed` default to it."
        },
    )
    variants: list[str] = field(
        default_factory=lambda: list(VARIANTS),
        metadata={"help": f"Variants to run: {', '.join(ALL_VARIANTS)} (default: Table 3's, {len(VARIANTS)})."},
    )
    data: dict[str, Any] = field(
        default_factory=dict,
        metadata={
            "help": "`synthetic: {...}` (generated), `build: {...}` (build-dataset options) or `dataset: folder` "
            "(already built)."
        },
    )
    model: dict[str, Any] = field(default_factory=dict, metadata={"help": "FinedeficsModelConfig."})
    stage1: dict[str, Any] = field(default_factory=dict, metadata={"help": "ContrastiveAlignmentConfig."})
    stage2: dict[str, Any] = field(default_factory=dict, metadata={"help": "InstructionTuningConfig."})
    stage3: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "ReinforcementConfig, for the *_rl variants (optional)."}
    )
    evaluation: dict[str, Any] = field(
        default_factory=dict,
        metadata={
            "help": "EvaluateArguments: the keys of `finedefics evaluate`, with its defaults, less those the run "
            "sets itself (the model, folders, seed and trackers)."
        },
    )
    analysis: dict[str, Any] = field(
        default_factory=dict,
        metadata={
            "help": "AnalysisArguments: the keys of `finedefics analyze`, with its defaults, less those the run "
            "sets itself (the model, dataset, folders, predictions, seed and title)."
        },
    )
    analysis_variants: list[str] = field(
        default_factory=lambda: ["zero_shot", "finedefics"],
        metadata={"help": "Variants whose models are analysed (those among `variants`)."},
    )
    world: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "WorldPretrainingConfig, for `base_model: world`."}
    )
    report_to: None | str | list[str] = field(
        default="none",
        metadata={
            "help": "Experiment trackers of every stage and of the evaluation's results: tensorboard, trackio "
            "(optional extras), all or none; any other tracker the Trainer supports logs the training only. A "
            "stage's own report_to overrides it for that stage."
        },
    )
    rebuild_world: bool = field(
        default=False, metadata={"help": "Pretrain the world base again even if it is cached."}
    )

    def __post_init__(self):
        check_field_types(self)
        if not self.variants:
            raise ValueError(f"variants is empty: a run needs at least one of {list(ALL_VARIANTS)}.")
        for name in ("variants", "analysis_variants"):
            if unknown := set(getattr(self, name)) - set(VARIANT_TABLE):
                raise ValueError(f"Unknown {name} {sorted(unknown)}; choose from {list(VARIANT_TABLE)}.")
        if len(set(self.data) & {"synthetic", "build", "dataset"}) != 1 or set(self.data) - {
            "synthetic",
            "build",
            "dataset",
        }:
            raise ValueError(
                f"The recipe's data section needs exactly one of synthetic, build, dataset; got {sorted(self.data)}."
            )
        for name, values in self.data.items():
            if name != "dataset" and not isinstance(values, dict):
                raise ValueError(
                    f"Recipe field `data.{name}` must be a mapping ({{}} for the defaults), got {values!r}."
                )
        if self.base_model == WORLD_BASE and "synthetic" not in self.data:
            raise ValueError(
                "base_model: world is pretrained on the synthetic world: it needs data: {synthetic: ...}."
            )


# The recipe's sections: its mapping-valued keys, each the config of one command or step.
SECTION_NAMES = tuple(
    name for name, hint in typing.get_type_hints(RunConfig).items() if typing.get_origin(hint) is dict
)


def embedded_recipe_path() -> Path:
    """The embedded default recipe shipped in the package (`recipes/tiny/config_run.yaml` links to it)."""
    return Path(str(resources.files("hf_finedefics.data.recipes").joinpath(EMBEDDED_RECIPE)))
