"""Stage III: reinforcement fine-tuning with TRL's `GRPOTrainer`.

The model is the base VLM with the stage II adapter merged in (which itself may carry stage I); a new LoRA (QLoRA
with `load_in_4bit`) is trained by GRPO on the `rl` prompts: `num_generations` answers are sampled per prompt,
scored by the rewards of `hf_finedefics.rewards`, and each answer's advantage is its reward against its group's.

Data: rows of the `rl` dataset, `prompt` (one user turn with an image placeholder and the question, no answer),
`images` (one image) and the columns the rewards read (`task`, `category`, `options`, `answer`). GRPOTrainer puts
the image into the placeholder and renders the prompt with the processor's chat template, as for inference.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from datasets import Dataset
from trl import GRPOTrainer

from ..hub import FinedeficsModelCardMixin
from ..rewards import (
    FORMAT_INSTRUCTION,
    OpenSetSimilarityReward,
    format_reward,
    multiple_choice_reward,
    open_set_reward,
)
from .checkpoints import train_and_save
from .model_config import FinedeficsModelConfig
from .reinforcement_config import ReinforcementConfig
from .starting_point import merged_starting_point

logger = logging.getLogger(__name__)


def prepare_stage3_base(model_args: FinedeficsModelConfig, training_args: ReinforcementConfig) -> str:
    """The model this stage starts from: the base, or the base with the stage II adapter merged (`merged_starting_point`)."""
    return merged_starting_point(
        model_args, training_args, training_args.stage2_adapter, "stage2", training_args.merged_base_dir
    )


def reward_functions(training_args: ReinforcementConfig) -> list[Callable[..., list[float | None]]]:
    """The rewards of `training_args.reward_settings()`, in its order (that of TRL's `reward_weights`)."""
    from ..evaluation.open_set import load_similarity_model

    makers: dict[str, Callable[[], Callable[..., list[float | None]]]] = {
        "multiple_choice": lambda: multiple_choice_reward,
        "open_set": lambda: functools.partial(open_set_reward, contains_reward=training_args.open_set_contains_reward),
        "open_set_similarity": lambda: OpenSetSimilarityReward(load_similarity_model(training_args.similarity_model)),
        "format": lambda: format_reward,
    }
    return [makers[name]() for name in training_args.reward_settings()]


def _asking_format(prompt: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The prompt with the `<think>`/`<answer>` instruction after the last user text."""
    *before, last = prompt
    content = [dict(part) for part in last["content"]]
    text_parts = [part for part in content if part.get("type") == "text"]
    text_parts[-1]["text"] = f"{text_parts[-1]['text']}\n{FORMAT_INSTRUCTION}"
    return [*before, {**last, "content": content}]


def prepare_rl_dataset(dataset: Dataset, training_args: ReinforcementConfig) -> Dataset:
    """The `rl` rows of `training_args.tasks`, their prompts asking for the reasoning format when it is rewarded;
    images are left untouched (not decoded)."""
    keep = [index for index, task in enumerate(dataset["task"]) if task in training_args.tasks]
    if not keep:
        raise ValueError(f"No rl prompt of the tasks {training_args.tasks} in the dataset.")
    dataset = dataset.select(keep)
    if training_args.format_reward_weight:
        prompts = [_asking_format(prompt) for prompt in dataset["prompt"]]
        dataset = dataset.remove_columns("prompt").add_column("prompt", prompts)
    return dataset


class ReinforcementTrainer(FinedeficsModelCardMixin, GRPOTrainer):
    """`GRPOTrainer` that writes the Finedefics model card and, beside every save, the training summary (which
    `resume_checkpoint` compares and `finedefics push-adapter` reads)."""


def build_stage3_trainer(
    model_args: FinedeficsModelConfig, training_args: ReinforcementConfig, train_dataset: Dataset
) -> ReinforcementTrainer:
    """Prepare the base (merging stage II), load it (4-bit for QLoRA), select the prompts and build the trainer
    with a new LoRA adapter (GRPOTrainer seeds before creating it)."""
    base = prepare_stage3_base(model_args, training_args)
    model, processor = model_args.load(is_trainable=True, model_name_or_path=base)
    return ReinforcementTrainer(
        model=model,
        reward_funcs=reward_functions(training_args),
        args=training_args,
        train_dataset=prepare_rl_dataset(train_dataset, training_args),
        processing_class=processor,
        peft_config=model_args.lora_config(model, task_type="CAUSAL_LM"),
    )


def train_stage3(
    model_args: FinedeficsModelConfig,
    training_args: ReinforcementConfig,
    train_dataset: Dataset,
    dataset_name: str | None = None,
) -> Path:
    """Run stage III and save the adapter with the processor to `output_dir`, which is returned."""
    return train_and_save(
        lambda: build_stage3_trainer(model_args, training_args, train_dataset),
        training_args,
        train_dataset,
        dataset_name,
    )
