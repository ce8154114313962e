"""`finedefics stage1`: attribute augmented contrastive learning (paper section 3.2, stage I).

    finedefics stage1 --config recipes/idefics2-8b/stage1/config_qlora.yaml
    accelerate launch --config_file recipes/accelerate_configs/ddp.yaml -m hf_finedefics.scripts.stage1 \\
        --config recipes/idefics2-8b/stage1/config_qlora.yaml
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import TrlParser

from hf_finedefics.contrastive_config import ContrastiveAlignmentConfig
from hf_finedefics.contrastive_trainer import train_stage1
from hf_finedefics.dataset_loading import load_dataset_split
from hf_finedefics.model_config import FinedeficsModelArguments


@dataclass
class Stage1ScriptArguments:
    dataset_name: str = field(
        metadata={"help": "Hub id, dataset folder or `save_to_disk` folder of the Finedefics training data."}
    )
    dataset_config: str | None = field(default="triples", metadata={"help": "Config (subset) holding the triples."})
    dataset_train_split: str = field(default="train", metadata={"help": "Split to train on."})
    dataset_test_split: str | None = field(
        default=None, metadata={"help": "Optional split to evaluate on (set `eval_strategy` too)."}
    )
    use_peft: bool = field(
        default=True, metadata={"help": "Train a LoRA adapter (the paper); False trains all weights."}
    )


def main(argv: list[str] | None = None) -> None:
    parser = TrlParser((Stage1ScriptArguments, FinedeficsModelArguments, ContrastiveAlignmentConfig))
    script_args, model_args, training_args = parser.parse_args_and_config(argv)
    train_dataset = load_dataset_split(
        script_args.dataset_name, script_args.dataset_config, script_args.dataset_train_split
    )
    eval_dataset = None
    if script_args.dataset_test_split is not None:
        eval_dataset = load_dataset_split(
            script_args.dataset_name, script_args.dataset_config, script_args.dataset_test_split
        )
    output_dir = train_stage1(
        model_args, training_args, train_dataset, eval_dataset, script_args.use_peft, script_args.dataset_name
    )
    print(f"Stage I adapter saved to {output_dir}")


if __name__ == "__main__":
    main()
