"""Stage II: classification-centred instruction tuning with TRL's `SFTTrainer` (paper section 3.2, eq. 9).

The model is the base VLM with the stage I adapter merged in; a new LoRA (QLoRA with `load_in_4bit`) is trained
on open-set questions and multiple-choice questions about the training images, with the loss on the answers only.

Data: rows of the `instructions` dataset, `messages` (one user turn with an image placeholder and a question, one
assistant turn with the answer) and `images` (one image). They are turned into TRL's prompt-completion format by
`hf_finedefics.chat.prompt_completion`, rendered with the model's chat template, so TRL's vision collator masks the
whole prompt, image tokens included (`completion_only_loss`). The prompt is exactly what inference feeds the model:
the chat template with the generation prompt, plus the special prefix (BOS) the tokenizer adds when the processor
tokenizes it. Answers whose template does not close the turn with a special token (LLaVA-1.5) get EOS appended, as
in those models' own training, so the model learns to stop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from torch.utils.data import DataLoader
from transformers import ProcessorMixin
from trl import SFTTrainer

from dataset_builders.prompts import MULTIPLE_CHOICE_INSTRUCTION

from ..backbones import get_backbone
from ..chat import prompt_completion
from ..collators import ContrastiveAlignmentCollator
from ..hub import FinedeficsModelCardMixin
from ..losses import AttributeAugmentedContrastiveLoss
from ..objectives import AuxiliaryLoss, stage1_objective_loss
from .checkpoints import train_and_save
from .instruction_tuning_config import InstructionTuningConfig
from .model_config import FinedeficsModelConfig
from .starting_point import merged_starting_point

logger = logging.getLogger(__name__)


def _message_text(message: dict[str, Any]) -> str:
    content = message["content"]
    if isinstance(content, str):
        return content
    return "\n".join(part["text"] for part in content if part.get("type") == "text")


def instruction_type(messages: list[dict[str, Any]]) -> str:
    """'multiple_choice' when the user turn carries the shared multiple-choice instruction, else 'open_set'."""
    user_text = "\n".join(_message_text(m) for m in messages if m["role"] == "user")
    return "multiple_choice" if MULTIPLE_CHOICE_INSTRUCTION in user_text else "open_set"


def select_instruction_types(dataset: Dataset, instruction_types: list[str]) -> Dataset:
    """Keep the rows whose instruction type is listed (the Table 3a 'Finetune' ablation keeps 'open_set')."""
    keep = [i for i, messages in enumerate(dataset["messages"]) if instruction_type(messages) in instruction_types]
    if not keep:
        raise ValueError(f"No instruction of type {instruction_types} in the dataset.")
    return dataset.select(keep)


def to_prompt_completion(dataset: Dataset, processor: ProcessorMixin) -> Dataset:
    """Replace `messages` by rendered `prompt` and `completion` columns (`prompt_completion`); images are left
    untouched (not decoded)."""
    rendered = [prompt_completion(processor, messages) for messages in dataset["messages"]]
    dataset = dataset.remove_columns("messages")
    dataset = dataset.add_column("prompt", [row["prompt"] for row in rendered])
    return dataset.add_column("completion", [row["completion"] for row in rendered])


def prepare_stage2_base(model_args: FinedeficsModelConfig, training_args: InstructionTuningConfig) -> str:
    """The model this stage starts from: the base, or the base with the stage I adapter merged (`merged_starting_point`)."""
    return merged_starting_point(
        model_args, training_args, training_args.stage1_adapter, "stage1", training_args.merged_base_dir
    )


class InstructionTuningTrainer(FinedeficsModelCardMixin, SFTTrainer):
    """`SFTTrainer` with an optional auxiliary loss on a second data stream, for the one-stage paradigm (Table 3c):
    each training step adds `auxiliary_loss_weight * auxiliary_loss(model, batch)` on a batch of
    `auxiliary_dataset` collated by `auxiliary_collator`. Without an auxiliary loss it is `SFTTrainer`."""

    def __init__(
        self,
        *args,
        auxiliary_loss: AuxiliaryLoss | None = None,
        auxiliary_dataset: Dataset | None = None,
        auxiliary_collator: Callable[[list[dict[str, Any]]], dict[str, Any]] | None = None,
        auxiliary_loss_weight: float = 1.0,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        if (auxiliary_loss is None) != (auxiliary_dataset is None) or (auxiliary_dataset is None) != (
            auxiliary_collator is None
        ):
            raise ValueError("auxiliary_loss, auxiliary_dataset and auxiliary_collator go together.")
        self.auxiliary_loss = auxiliary_loss
        self.auxiliary_dataset = auxiliary_dataset
        self.auxiliary_collator = auxiliary_collator
        self.auxiliary_loss_weight = auxiliary_loss_weight
        self._auxiliary_iterator: Iterator[dict[str, Any]] | None = None
        if auxiliary_loss is not None:
            # The sum of two per-batch means is not normalised by `num_items_in_batch`: let Trainer divide the
            # total by the accumulation steps instead.
            self.model_accepts_loss_kwargs = False

    def _auxiliary_batches(self) -> Iterator[dict[str, Any]]:
        """Cycle through the auxiliary data forever, reshuffled each pass, sharded like the training data."""
        while True:
            loader = DataLoader(
                self.auxiliary_dataset,
                batch_size=self.args.per_device_train_batch_size,
                shuffle=True,
                collate_fn=self.auxiliary_collator,
                drop_last=True,
                generator=torch.Generator().manual_seed(self.args.seed + self.state.global_step),
            )
            yield from self.accelerator.prepare_data_loader(loader)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        result = super().compute_loss(
            model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
        )
        if self.auxiliary_loss is None or not model.training:
            return result
        loss, outputs = result if return_outputs else (result, None)
        if self._auxiliary_iterator is None:
            self._auxiliary_iterator = self._auxiliary_batches()
        auxiliary, terms = self.auxiliary_loss(model, next(self._auxiliary_iterator))
        for name, value in terms.items():
            self._metrics["train"][f"auxiliary/{name}"].append(
                self.accelerator.gather(value.detach().reshape(1)).mean().item()
            )
        loss = loss + self.auxiliary_loss_weight * auxiliary
        return (loss, outputs) if return_outputs else loss


def build_stage2_trainer(
    model_args: FinedeficsModelConfig,
    training_args: InstructionTuningConfig,
    train_dataset: Dataset,
    auxiliary_dataset: Dataset | None = None,
) -> InstructionTuningTrainer:
    """Prepare the base (merging stage I), load it (4-bit for QLoRA), render the instructions and build the
    trainer with a new LoRA adapter. `auxiliary_dataset` holds stage I triples for the one-stage paradigm."""
    if (training_args.paradigm == "one_stage") != (auxiliary_dataset is not None):
        raise ValueError("The one-stage paradigm, and only it, needs the stage I triples as auxiliary_dataset.")
    base = prepare_stage2_base(model_args, training_args)
    model, processor = model_args.load(is_trainable=True, model_name_or_path=base)
    auxiliary = {}
    if auxiliary_dataset is not None:
        auxiliary = {
            "auxiliary_loss": stage1_objective_loss(AttributeAugmentedContrastiveLoss(training_args.loss_config())),
            "auxiliary_dataset": auxiliary_dataset,
            "auxiliary_collator": ContrastiveAlignmentCollator(
                processor, get_backbone(model).eos_token_id, objective=training_args.objective
            ),
            "auxiliary_loss_weight": training_args.auxiliary_loss_weight,
        }
    train_dataset = to_prompt_completion(
        select_instruction_types(train_dataset, training_args.instruction_types), processor
    )
    return InstructionTuningTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        processing_class=processor,
        peft_config=model_args.lora_config(model, task_type="CAUSAL_LM"),
        **auxiliary,
    )


def train_stage2(
    model_args: FinedeficsModelConfig,
    training_args: InstructionTuningConfig,
    train_dataset: Dataset,
    auxiliary_dataset: Dataset | None = None,
    dataset_name: str | None = None,
) -> Path:
    """Run stage II and save the adapter with the processor to `output_dir`, which is returned."""
    return train_and_save(
        lambda: build_stage2_trainer(model_args, training_args, train_dataset, auxiliary_dataset),
        training_args,
        train_dataset,
        dataset_name,
    )
