"""The variants a run compares (Tables 3 and 6b, and stage III after them) and the stages they train, as data.

A variant is the stages its model goes through (none: the base model, evaluated as it is), what it changes in each
stage's recipe section, and which stages it shares with another variant (trained once, in that variant's folder).
Its evaluated model is the last of its stages. Adding an ablation is adding one row to `VARIANT_TABLE`; adding a
stage is one row of `STAGES` and its training step in `hf_finedefics.run.pipeline`. Nothing here imports torch:
`finedefics run --help` lists the variants.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Stage:
    """One training stage: its recipe section and folder (`name`), the training set of a built dataset folder it
    reads (`training_set`)."""

    name: str
    title: str
    training_set: str
    # The stage whose adapter this one's config takes (`<stage>_adapter`) when a variant trains both.
    starts_from: str | None = None
    # Model encodings per training example, for the progress estimate: stage I encodes each image with its
    # category, its description and their negatives.
    encodings_per_example: int = 1


STAGES: dict[str, Stage] = {
    stage.name: stage
    for stage in (
        Stage("stage1", "stage I", "triples", encodings_per_example=4),
        Stage("stage2", "stage II", "instructions", starts_from="stage1"),
        Stage("stage3", "stage III", "rl", starts_from="stage2"),
    )
}


@dataclass(frozen=True)
class Variant:
    """One row of a run's comparison. `overrides` holds, per stage, what this variant changes in the recipe's
    section (everything else is shared by every variant); `shares` maps a stage to the variant whose training of
    it this one reuses."""

    name: str
    title: str
    stages: tuple[str, ...] = ()
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    shares: Mapping[str, str] = field(default_factory=dict)
    # Run when a recipe does not list its variants (Table 3 and 6b); the others run when listed.
    by_default: bool = True

    def owner(self, stage: str) -> str:
        """The variant whose folder holds this variant's `stage` (its own, unless shared)."""
        return self.shares.get(stage, self.name)

    def trains(self, stage: str) -> bool:
        return stage in self.stages

    def previous(self, stage: str) -> str | None:
        """The stage this variant's `stage` starts from (None: it starts from the base model)."""
        index = self.stages.index(stage)
        return self.stages[index - 1] if index else None

    @property
    def evaluated_stage(self) -> str | None:
        """The stage whose model is evaluated (None: the base model)."""
        return self.stages[-1] if self.stages else None


_ROWS = (
    Variant("zero_shot", "Zero-shot (base model)"),
    Variant(
        "open_set_only",
        "Fine-tune on open-set data only (3a)",
        ("stage2",),
        overrides={"stage2": {"instruction_types": ["open_set"]}},
    ),
    Variant("instruction_tuning", "Instruction tuning only", ("stage2",)),
    # Table 3b changes one thing: what the contrastive terms compare (object<->category, no attribute text). Without
    # descriptions there is nothing to caption, so its generation loss is off; the `_naming` form keeps a generation
    # task that answers the open-set question with the name, which no other variant has.
    Variant(
        "contrastive_object_category",
        "+ contrastive object-category (no attributes)",
        ("stage1", "stage2"),
        overrides={"stage1": {"objective": "object_category", "generation_loss_weight": 0.0}},
    ),
    Variant(
        "contrastive_object_category_naming",
        "+ contrastive object-category, stage I also trained to name (3b variant)",
        ("stage1", "stage2"),
        overrides={"stage1": {"objective": "object_category"}},
    ),
    Variant("finedefics", "+ attribute augmented alignment (Finedefics)", ("stage1", "stage2")),
    Variant(
        "finedefics_literal_ccc",
        "+ attribute augmented alignment, CCC as eq. 7 is printed",
        ("stage1", "stage2"),
        overrides={"stage1": {"ccc_form": "literal"}},
    ),
    Variant(
        "one_stage",
        "One stage: alignment and instruction losses together (3c)",
        ("stage2",),
        overrides={"stage2": {"paradigm": "one_stage"}},
    ),
    Variant("stage1_only", "Stage I only, no instruction tuning (6b)", ("stage1",), shares={"stage1": "finedefics"}),
    Variant(
        "finedefics_rl",
        "Finedefics + reinforcement fine-tuning (stage III)",
        ("stage1", "stage2", "stage3"),
        shares={"stage1": "finedefics", "stage2": "finedefics"},
        by_default=False,
    ),
    Variant(
        "instruction_tuning_rl",
        "Instruction tuning + reinforcement fine-tuning (stage III)",
        ("stage2", "stage3"),
        shares={"stage2": "instruction_tuning"},
        by_default=False,
    ),
)
VARIANT_TABLE: dict[str, Variant] = {variant.name: variant for variant in _ROWS}
ALL_VARIANTS = tuple(VARIANT_TABLE)
VARIANTS = tuple(name for name, variant in VARIANT_TABLE.items() if variant.by_default)


def check_variant_table(table: Mapping[str, Variant]) -> None:
    """Refuse a table whose rows cannot be trained as written: unknown or out-of-order stages, overrides of a stage
    a variant does not train itself, and shared stages whose owner trains them from other stages."""
    order = list(STAGES)
    for variant in table.values():
        if unknown := set(variant.stages) - set(STAGES):
            raise ValueError(f"Variant {variant.name}: unknown stages {sorted(unknown)}; choose from {order}.")
        if list(variant.stages) != sorted(variant.stages, key=order.index):
            raise ValueError(f"Variant {variant.name}: stages {variant.stages} are not in the order {order}.")
        if stray := set(variant.overrides) - (set(variant.stages) - set(variant.shares)):
            raise ValueError(f"Variant {variant.name} overrides {sorted(stray)}, which it does not train itself.")
        for stage, owner in variant.shares.items():
            source = table.get(owner)
            if source is None or not source.trains(stage) or source.owner(stage) != owner:
                raise ValueError(f"Variant {variant.name} shares {stage} of {owner!r}, which does not train it.")
            # The shared model is the owner's: this variant must reach it through the same stages, trained by the
            # same variants.
            ours = [(s, variant.owner(s)) for s in variant.stages[: variant.stages.index(stage)]]
            theirs = [(s, source.owner(s)) for s in source.stages[: source.stages.index(stage)]]
            if ours != theirs:
                raise ValueError(
                    f"Variant {variant.name} shares {stage} of {owner}, which trains it from other stages."
                )


check_variant_table(VARIANT_TABLE)


def stage_dir(output_dir: str | Path, variant: str, stage: str) -> Path:
    """Where a run writes the `stage` model that `variant` trains (its owner's folder when the stage is shared)."""
    return Path(output_dir) / VARIANT_TABLE[variant].owner(stage) / stage
