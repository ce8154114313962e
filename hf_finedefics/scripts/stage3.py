"""`finedefics stage3`: reinforcement fine-tuning with GRPO on the `rl` prompts (stage III).

    finedefics stage3 --config recipes/idefics2-8b/stage3/config_grpo.yaml
    finedefics stage3 --dataset_name outputs/data --stage2_adapter outputs/stage2 --output_dir outputs/stage3 \\
        --load_in_4bit --per_device_train_batch_size 8 --num_generations 8
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import TrlParser

from hf_finedefics.scripts import run
from hf_finedefics.trainer.model_config import FinedeficsModelConfig
from hf_finedefics.trainer.reinforcement_config import ReinforcementConfig


@dataclass
class Stage3ScriptArguments:
    dataset_name: str = field(
        metadata={"help": "Hub id, dataset folder or `save_to_disk` folder of the Finedefics training data."}
    )
    dataset_config: str | None = field(
        default="rl", metadata={"help": "Config (subset) holding the stage III prompts."}
    )
    dataset_train_split: str = field(default="train", metadata={"help": "Split to train on."})


def make_parser() -> TrlParser:
    return TrlParser((Stage3ScriptArguments, ReinforcementConfig, FinedeficsModelConfig), prog="finedefics stage3")


def main(
    script_args: Stage3ScriptArguments, training_args: ReinforcementConfig, model_args: FinedeficsModelConfig
) -> None:
    from hf_finedefics.data.loading import load_dataset_split
    from hf_finedefics.trainer.reinforcement_trainer import train_stage3

    train_dataset = load_dataset_split(
        script_args.dataset_name, script_args.dataset_config, script_args.dataset_train_split
    )
    output_dir = train_stage3(model_args, training_args, train_dataset, dataset_name=script_args.dataset_name)
    print(f"Stage III adapter saved to {output_dir}")


if __name__ == "__main__":
    run(make_parser, main)
