"""Configuration of stage I, attribute augmented contrastive learning (paper section 3.2, eq. 8)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from transformers import TrainingArguments

from dataset_builders.prompts import ATTRIBUTE_GENERATION_INSTRUCTION

from ..losses import AttributeAugmentedLossConfig
from ..recipe_sections import require_at_least_one, require_training_length
from ..tracking import check_trackers


@dataclass
class ContrastiveAlignmentConfig(AttributeAugmentedLossConfig, TrainingArguments):
    r"""
    Configuration for [`ContrastiveAlignmentTrainer`].

    The objective is eq. 8 of the paper:
    `generation_loss_weight * L_G^att + oac_weight * L_OAC + acc_weight * L_ACC + ccc_weight * L_CCC`,
    with the paper's weights 1, 1/2, 1/2, 1/2. Defaults follow the authors' stage I hyper-parameters
    (learning rate 2e-4, linear decay, 60 warm-up steps, weight decay 0.01, one epoch).
    """

    # The objective's settings (temperature, weights, masking) are the inherited AttributeAugmentedLossConfig fields.
    generation_loss_on_all_tokens: bool = field(
        default=False,
        metadata={
            "help": "Put the generation loss on every token, prompt and image placeholders included, as the "
            "released code does. By default only the attribute description is supervised."
        },
    )
    contrastive_mini_batch_size: int | None = field(
        default=None,
        metadata={
            "help": "Gradient caching (GradCache): embed and backpropagate the contrastive batch in mini-batches of "
            "this many rows (and texts), so `per_device_train_batch_size`, the in-batch negatives, is no longer "
            "bounded by memory. Loss and gradients equal the plain step's; a step costs about one more forward "
            "of the embeddings. None: the plain step, all rows at once."
        },
    )
    log_term_gradient_norms: bool = field(
        default=False,
        metadata={
            "help": "Also log each weighted loss term's gradient norm on the trained parameters (`grad_norm_<term>`): "
            "which term drives the step. Costs one extra backward pass per term; not with gradient caching."
        },
    )
    # Data
    generation_instruction: str | None = field(
        default=None,
        metadata={
            "help": "User turn of the generation task; `{superclass}` is filled from the row. Unset: "
            f"{ATTRIBUTE_GENERATION_INSTRUCTION!r} (objective=object_category: the open-set question)."
        },
    )
    max_text_length: int | None = field(
        default=256, metadata={"help": "Truncate attribute descriptions and category names to this many tokens."}
    )
    validate_images: bool = field(
        default=True, metadata={"help": "Decode every image once before training so a bad row fails early."}
    )
    model_init_kwargs: dict[str, Any] | None = field(
        default=None,
        metadata={"help": "Keyword arguments for `from_pretrained` when the trainer is given a model id."},
    )
    # TrainingArguments defaults changed for stage I
    learning_rate: float = field(default=2e-4, metadata={"help": "Initial learning rate."})
    warmup_steps: float = field(default=60, metadata={"help": "Linear warm-up steps (or ratio if < 1)."})
    weight_decay: float = field(default=0.01, metadata={"help": "Weight decay."})
    num_train_epochs: float = field(default=1.0, metadata={"help": "Training epochs."})
    logging_steps: float = field(default=10, metadata={"help": "Log every X updates steps."})
    remove_unused_columns: bool = field(
        default=False, metadata={"help": "Keep all columns: the collator reads images, texts and negatives."}
    )
    dataloader_drop_last: bool = field(
        default=True, metadata={"help": "Drop the last uneven batch; gathering across processes needs equal batches."}
    )
    activation_checkpointing_kwargs: dict[str, Any] | str | None = field(
        default_factory=lambda: {"use_reentrant": False},
        metadata={"help": "Non-reentrant checkpointing: the LLM runs several times per step."},
    )

    # The stage a model card names (`training_summary.training_summary`).
    finedefics_stage = "stage1"

    def card_rows(self) -> dict[str, Any]:
        """What a model card lists about this stage beyond the common training settings: the objective."""
        return AttributeAugmentedLossConfig.card_rows(self)

    def __post_init__(self):
        AttributeAugmentedLossConfig.__post_init__(self)
        TrainingArguments.__post_init__(self)
        check_trackers(self.report_to)
        require_at_least_one(
            self, "per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"
        )
        require_training_length(self)
        self.label_names = []
        if self.contrastive_mini_batch_size is not None and self.contrastive_mini_batch_size < 1:
            raise ValueError(f"contrastive_mini_batch_size must be positive, got {self.contrastive_mini_batch_size}.")
