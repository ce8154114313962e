"""Configuration of stage II, classification-centred instruction tuning (paper section 3.2, eq. 9)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trl import SFTConfig

from ..losses import AttributeAugmentedLossConfig
from ..recipe_sections import require_at_least_one, require_training_length
from ..tracking import check_trackers

INSTRUCTION_TYPES = ("open_set", "multiple_choice")
PARADIGMS = ("two_stage", "one_stage")


@dataclass
class InstructionTuningConfig(AttributeAugmentedLossConfig, SFTConfig):
    r"""
    Configuration for stage II, on top of TRL's [`SFTConfig`].

    Stage II fine-tunes, with a new LoRA adapter, the base model with the stage I adapter merged in, on the
    `instructions` data: one open-set question and one 4-way multiple-choice question per training image. Only
    the answers are supervised: the prompt, image tokens included, is masked (TRL's completion-only loss).
    Defaults follow the authors' stage II hyper-parameters (learning rate 2e-4, linear decay, 60 warm-up steps,
    weight decay 0.01, one epoch; their global batch is 128 = devices x per-device batch x accumulation).
    The inherited stage I loss fields (temperature, weights, masking) apply to the one-stage paradigm.
    """

    stage1_adapter: str | None = field(
        default=None,
        metadata={
            "help": "Hub id or folder of the stage I adapter, merged into the base before stage II. Leave unset for "
            "the 'instruction tuning only' ablation (no stage I)."
        },
    )
    merged_base_dir: str | None = field(
        default=None,
        metadata={
            "help": "Where to save the base with the stage I adapter merged (default: `<output_dir>-stage1-merged`). "
            "The stage II adapter records this folder as its base model. Reused if it holds a finished merge."
        },
    )
    instruction_types: list[str] = field(
        default_factory=lambda: list(INSTRUCTION_TYPES),
        metadata={
            "help": "Which instructions to train on: 'open_set' and/or 'multiple_choice'. ['open_set'] alone is "
            "the paper's Table 3a 'Finetune' ablation."
        },
    )
    paradigm: str = field(
        default="two_stage",
        metadata={
            "help": "'two_stage' (the paper): instruction tuning after stage I. 'one_stage' (Table 3c): instruction "
            "and stage I losses (eq. 8) together from the base model; needs the stage I triples."
        },
    )
    auxiliary_loss_weight: float = field(
        default=1.0, metadata={"help": "One-stage paradigm: weight of the stage I objective added to the SFT loss."}
    )
    # SFTConfig / TrainingArguments defaults changed for stage II
    max_length: int | None = field(
        default=None, metadata={"help": "Keep None: truncating would cut image tokens out of the prompt."}
    )
    completion_only_loss: bool | None = field(
        default=True, metadata={"help": "Supervise the answers only; prompt and image tokens get label -100."}
    )
    learning_rate: float = field(default=2e-4, metadata={"help": "Initial learning rate."})
    warmup_steps: float = field(default=60, metadata={"help": "Linear warm-up steps (or ratio if < 1)."})
    weight_decay: float = field(default=0.01, metadata={"help": "Weight decay."})
    num_train_epochs: float = field(default=1.0, metadata={"help": "Training epochs."})
    # TRL's default (checkpointing on) under transformers' current name: its deprecated alias, which TRL sets, warned
    # on every stage II config.
    gradient_checkpointing: bool | None = field(
        default=None, metadata={"help": "Deprecated alias of `activation_checkpointing` (transformers v6 drops it)."}
    )
    activation_checkpointing: bool | None = field(
        default=True,
        metadata={
            "help": "Recompute activations in the backward pass: less memory, about 20% slower (TRL's default)."
        },
    )

    # The stage a model card names (`training_summary.training_summary`).
    finedefics_stage = "stage2"

    def card_rows(self) -> dict[str, Any]:
        """What a model card lists about this stage beyond the common training settings (and the stage I objective,
        which the one-stage paradigm trains too)."""
        rows = {
            "stage I adapter": self.stage1_adapter or "none (instruction tuning only)",
            "instruction types": ", ".join(self.instruction_types),
            "paradigm": self.paradigm,
        }
        return rows | (AttributeAugmentedLossConfig.card_rows(self) if self.paradigm == "one_stage" else {})

    def __post_init__(self):
        AttributeAugmentedLossConfig.__post_init__(self)
        SFTConfig.__post_init__(self)
        check_trackers(self.report_to)
        require_at_least_one(
            self, "per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"
        )
        require_training_length(self)
        unknown = set(self.instruction_types) - set(INSTRUCTION_TYPES)
        if unknown or not self.instruction_types:
            raise ValueError(f"instruction_types must be a non-empty subset of {INSTRUCTION_TYPES}, got {unknown}.")
        if self.paradigm not in PARADIGMS:
            raise ValueError(f"paradigm must be one of {PARADIGMS}, got {self.paradigm!r}.")
        if self.paradigm == "one_stage" and self.stage1_adapter is not None:
            raise ValueError("The one-stage paradigm replaces stage I: leave stage1_adapter unset.")
