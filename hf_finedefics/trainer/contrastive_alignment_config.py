"""Configuration of stage I, attribute augmented contrastive learning (paper section 3.2, eq. 8)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from transformers import TrainingArguments


@dataclass
class ContrastiveAlignmentConfig(TrainingArguments):
    r"""
    Configuration for [`ContrastiveAlignmentTrainer`].

    The objective is eq. 8 of the paper:
    `generation_loss_weight * L_G^att + oac_weight * L_OAC + acc_weight * L_ACC + ccc_weight * L_CCC`,
    with the paper's weights 1, 1/2, 1/2, 1/2. Defaults follow the authors' stage I hyper-parameters
    (learning rate 2e-4, linear decay, 60 warm-up steps, weight decay 0.01, one epoch).
    """

    # Objective
    temperature: float = field(
        default=0.07,
        metadata={"help": "Temperature dividing cosine similarities in every contrastive term (not trained)."},
    )
    generation_loss_weight: float = field(
        default=1.0, metadata={"help": "Weight of L_G^att, the attribute description generation loss."}
    )
    oac_weight: float = field(
        default=0.5, metadata={"help": "Weight of the object-attribute contrastive loss (eq. 5)."}
    )
    acc_weight: float = field(
        default=0.5, metadata={"help": "Weight of the attribute-category contrastive loss (eq. 6)."}
    )
    ccc_weight: float = field(
        default=0.5, metadata={"help": "Weight of the category-category contrastive loss (eq. 7)."}
    )
    gather_across_processes: bool = field(
        default=True,
        metadata={"help": "Gather embeddings (with gradients) so in-batch negatives span the global batch."},
    )
    mask_same_class_negatives: bool = field(
        default=True,
        metadata={"help": "Leave same-class rows out of in-batch denominators (they share the category name)."},
    )
    reproduce_released_losses: bool = field(
        default=False,
        metadata={
            "help": "Reproduce the authors' released losses (shared hard-negative pool, CCC against column 0). "
            "A reproduction aid only; it does not implement the paper."
        },
    )
    generation_loss_on_all_tokens: bool = field(
        default=False,
        metadata={
            "help": "Put the generation loss on every token, prompt and image placeholders included, as the "
            "released code does. By default only the attribute description is supervised."
        },
    )
    # Data
    generation_instruction: str = field(
        default="Describe the distinguishing attributes of the {superclass} in this image.",
        metadata={"help": "User turn of the generation task; `{superclass}` is filled from the row."},
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

    def __post_init__(self):
        super().__post_init__()
        self.label_names = []
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}.")
