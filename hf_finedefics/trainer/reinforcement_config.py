"""Configuration of stage III, reinforcement fine-tuning with GRPO on the `rl` prompts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trl import GRPOConfig
from trl.import_utils import is_vllm_available

from ..evaluation.names import DEFAULT_SIMILARITY_MODEL
from ..recipe_sections import require_at_least_one
from ..tracking import check_trackers

RL_TASKS = ("multiple_choice", "open_set")


@dataclass
class ReinforcementConfig(GRPOConfig):
    r"""
    Configuration for stage III, on top of TRL's [`GRPOConfig`].

    Stage III fine-tunes, with a new LoRA adapter, the base model with the stage II adapter merged in, by GRPO: per
    `rl` prompt `num_generations` answers are sampled and rewarded (`hf_finedefics.rewards`), and the policy moves
    towards the answers better than their group's mean. The rewards and their weights are the fields below (a
    weight of 0 leaves the reward out); TRL's `reward_weights` is set from them.
    """

    stage2_adapter: str | None = field(
        default=None,
        metadata={
            "help": "Hub id or folder of the stage II adapter, merged into its base before stage III. Leave unset to "
            "start from `model_name_or_path` itself."
        },
    )
    merged_base_dir: str | None = field(
        default=None,
        metadata={
            "help": "Where to save the base with the stage II adapter merged (default: `<output_dir>-stage2-merged`). "
            "The stage III adapter records this folder as its base model. Reused if it holds a finished merge."
        },
    )
    tasks: list[str] = field(
        default_factory=lambda: list(RL_TASKS),
        metadata={"help": "Which `rl` prompts to train on: 'multiple_choice' and/or 'open_set'."},
    )
    multiple_choice_reward_weight: float = field(
        default=1.0, metadata={"help": "Weight of the multiple-choice reward (1 for the correct option, else 0)."}
    )
    open_set_reward_weight: float = field(
        default=1.0,
        metadata={
            "help": "Weight of the open-set reward (1 exact name, `open_set_contains_reward` contained, else 0)."
        },
    )
    open_set_contains_reward: float = field(
        default=0.5,
        metadata={"help": "Open-set reward of an answer that names the category among other words, not exactly."},
    )
    open_set_similarity_weight: float = field(
        default=0.0,
        metadata={
            "help": "Weight of the cosine between the open-set answer and the true name (sentence-transformers "
            "`similarity_model`): partial credit for near misses. 0: not computed."
        },
    )
    similarity_model: str = field(
        default=DEFAULT_SIMILARITY_MODEL,
        metadata={"help": "Sentence-transformers model of the similarity reward (the open-set evaluation's)."},
    )
    format_reward_weight: float = field(
        default=0.0,
        metadata={
            "help": "Weight of the `<think>...</think><answer>...</answer>` format reward; above 0 the prompts also "
            "ask for that format. 0: answers stay direct, as stage II taught."
        },
    )
    # GRPOConfig / TrainingArguments defaults changed for stage III
    learning_rate: float = field(
        default=1e-5, metadata={"help": "Initial learning rate (LoRA moves less per step than full weights)."}
    )
    max_completion_length: int | None = field(
        default=64,
        metadata={
            "help": "Longest sampled answer in tokens: a letter or a name needs few; raise it (e.g. 512) with the "
            "format reward, whose reasoning comes first."
        },
    )
    # Keyword names of the current transformers; TRL sets the deprecated alias, which warns on every config.
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
    finedefics_stage = "stage3"

    def reward_settings(self) -> dict[str, float]:
        """Reward name -> weight, for the rewards with a non-zero weight, in the order the trainer passes them."""
        weights = {
            "multiple_choice": self.multiple_choice_reward_weight if "multiple_choice" in self.tasks else 0.0,
            "open_set": self.open_set_reward_weight if "open_set" in self.tasks else 0.0,
            "open_set_similarity": self.open_set_similarity_weight if "open_set" in self.tasks else 0.0,
            "format": self.format_reward_weight,
        }
        return {name: weight for name, weight in weights.items() if weight}

    def card_rows(self) -> dict[str, Any]:
        """What a model card lists about this stage beyond the common training settings."""
        rewards = ", ".join(f"{name} x {weight:g}" for name, weight in self.reward_settings().items())
        return {
            "stage II adapter": self.stage2_adapter or "none (from the base model)",
            "tasks": ", ".join(self.tasks),
            "rewards": rewards,
            "open-set contains reward": self.open_set_contains_reward,
            "generations per prompt": self.num_generations,
            "max completion length": self.max_completion_length,
            "KL coefficient (beta)": self.beta,
        }

    def __post_init__(self):
        if self.use_vllm and not is_vllm_available():
            raise ValueError(
                "use_vllm needs vLLM, which is not installed: `pip install vllm`, or set use_vllm false (answers are "
                "then sampled with model.generate)."
            )
        unknown = set(self.tasks) - set(RL_TASKS)
        if unknown or not self.tasks:
            raise ValueError(f"tasks must be a non-empty subset of {RL_TASKS}, got {sorted(unknown)}.")
        # A config rebuilt from a finished one (`dataclasses.replace`) carries the weights derived below.
        if self.reward_weights is not None and list(self.reward_weights) != list(self.reward_settings().values()):
            raise ValueError(
                "Set the stage III reward weights by name (multiple_choice_reward_weight, open_set_reward_weight, "
                "open_set_similarity_weight, format_reward_weight), not reward_weights."
            )
        if not self.reward_settings():
            raise ValueError("Every reward weight of the chosen tasks is 0: nothing would be rewarded.")
        self.reward_weights = list(self.reward_settings().values())
        super().__post_init__()
        check_trackers(self.report_to)
        require_at_least_one(
            self, "per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"
        )
