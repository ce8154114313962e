"""`finedefics stage2`: classification-centred instruction tuning (paper section 3.2, stage II).

    finedefics stage2 --config recipes/stage2.yaml
    finedefics stage2 --dataset_name outputs/data --stage1_adapter outputs/stage1 --output_dir outputs/stage2 \\
        --load_in_4bit --per_device_train_batch_size 8 --gradient_accumulation_steps 16
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import TrlParser

from hf_finedefics.dataset_loading import load_dataset_split
from hf_finedefics.instruction_config import InstructionTuningConfig
from hf_finedefics.model_config import FinedeficsModelArguments
from hf_finedefics.sft import train_stage2


@dataclass
class Stage2ScriptArguments:
    dataset_name: str = field(
        metadata={"help": "Hub id, dataset folder or `save_to_disk` folder of the Finedefics training data."}
    )
    dataset_config: str | None = field(
        default="instructions", metadata={"help": "Config (subset) holding the stage II instructions."}
    )
    dataset_split: str = field(default="train", metadata={"help": "Split to train on."})
    auxiliary_dataset_config: str = field(
        default="triples",
        metadata={"help": "One-stage paradigm: config of `dataset_name` holding the stage I triples."},
    )


def main(argv: list[str] | None = None) -> None:
    parser = TrlParser((Stage2ScriptArguments, FinedeficsModelArguments, InstructionTuningConfig))
    script_args, model_args, training_args = parser.parse_args_and_config(argv)
    train_dataset = load_dataset_split(script_args.dataset_name, script_args.dataset_config, script_args.dataset_split)
    auxiliary_dataset = None
    if training_args.paradigm == "one_stage":
        auxiliary_dataset = load_dataset_split(
            script_args.dataset_name, script_args.auxiliary_dataset_config, script_args.dataset_split
        )
    output_dir = train_stage2(
        model_args, training_args, train_dataset, auxiliary_dataset, dataset_name=script_args.dataset_name
    )
    print(f"Stage II adapter saved to {output_dir}")


if __name__ == "__main__":
    main()
