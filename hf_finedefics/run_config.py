"""The run recipe's top level (`RunConfig`), in a module that imports nothing heavy: `finedefics run --help` and the
recipe check read it without loading torch. The steps that use it are in `hf_finedefics.pipeline`."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .recipe_sections import check_field_types

# Table 3 and 6b: (a) open-set-only fine-tuning, (b) the contrastive ablation (and its earlier form, whose stage I
# also trained naming), Finedefics with eq. 7 as printed, (c) one stage; 6b: each stage alone.
VARIANTS = (
    "zero_shot",
    "open_set_only",
    "instruction_tuning",
    "contrastive_object_category",
    "contrastive_object_category_naming",
    "finedefics",
    "finedefics_literal_ccc",
    "one_stage",
    "stage1_only",
)
# Stage III (GRPO) after Finedefics, and after stage II alone: run when a recipe lists them.
RL_VARIANTS = ("finedefics_rl", "instruction_tuning_rl")
ALL_VARIANTS = (*VARIANTS, *RL_VARIANTS)
WORLD_BASE = "world"
EMBEDDED_RECIPE = "default.yaml"


@dataclass
class RunConfig:
    output_dir: str = field(default="finedefics-default", metadata={"help": "Where every step writes."})
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
    evaluation: dict[str, Any] = field(default_factory=dict, metadata={"help": "EvaluationSettings."})
    analysis: dict[str, Any] = field(default_factory=dict, metadata={"help": "AnalysisSettings."})
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
        unknown = set(self.variants) - set(ALL_VARIANTS)
        if unknown:
            raise ValueError(f"Unknown variants {sorted(unknown)}; choose from {list(ALL_VARIANTS)}.")
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


def embedded_recipe_path() -> Path:
    """The embedded default recipe shipped in the package (`recipes/tiny/config_run.yaml` links to it)."""
    return Path(str(resources.files("hf_finedefics.data.recipes").joinpath(EMBEDDED_RECIPE)))
