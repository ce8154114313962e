"""`finedefics stage2`: classification-centred instruction tuning (paper section 3.2, stage II).

    finedefics stage2 --config recipes/idefics2-8b/stage2/config_qlora.yaml
    finedefics stage2 --dataset_name outputs/data --stage1_adapter outputs/stage1 --output_dir outputs/stage2 \\
        --load_in_4bit --per_device_train_batch_size 8 --gradient_accumulation_steps 16
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import TrlParser

from hf_finedefics.scripts import run
from hf_finedefics.trainer.instruction_tuning_config import InstructionTuningConfig
from hf_finedefics.trainer.model_config import FinedeficsModelConfig


@dataclass
class Stage2ScriptArguments:
    dataset_name: str = field(
        metadata={"help": "Hub id, dataset folder or `save_to_disk` folder of the Finedefics training data."}
    )
    dataset_config: str | None = field(
        default="instructions", metadata={"help": "Config (subset) holding the stage II instructions."}
    )
    dataset_train_split: str = field(default="train", metadata={"help": "Split to train on."})
    auxiliary_dataset_config: str = field(
        default="triples",
        metadata={"help": "One-stage paradigm: config of `dataset_name` holding the stage I triples."},
    )


def make_parser() -> TrlParser:
    return TrlParser((Stage2ScriptArguments, InstructionTuningConfig, FinedeficsModelConfig), prog="finedefics stage2")


def main(
    script_args: Stage2ScriptArguments, training_args: InstructionTuningConfig, model_args: FinedeficsModelConfig
) -> None:
    from hf_finedefics.data.loading import load_dataset_split
    from hf_finedefics.trainer.instruction_tuning_trainer import train_stage2

    train_dataset = load_dataset_split(
        script_args.dataset_name, script_args.dataset_config, script_args.dataset_train_split
    )
    auxiliary_dataset = None
    if training_args.paradigm == "one_stage":
        auxiliary_dataset = load_dataset_split(
            script_args.dataset_name, script_args.auxiliary_dataset_config, script_args.dataset_train_split
        )
    output_dir = train_stage2(
        model_args, training_args, train_dataset, auxiliary_dataset, dataset_name=script_args.dataset_name
    )
    print(f"Stage II adapter saved to {output_dir}")


if __name__ == "__main__":
    run(make_parser, main)
