"""`finedefics stage1`: attribute augmented contrastive learning (paper section 3.2, stage I).

    finedefics stage1 --config recipes/idefics2-8b/stage1/config_qlora.yaml
    accelerate launch --config_file recipes/accelerate_configs/ddp.yaml -m hf_finedefics.scripts.stage1 \\
        --config recipes/idefics2-8b/stage1/config_qlora.yaml
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import TrlParser

from hf_finedefics.scripts import run
from hf_finedefics.trainer.contrastive_alignment_config import ContrastiveAlignmentConfig
from hf_finedefics.trainer.model_config import FinedeficsModelConfig


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


def make_parser() -> TrlParser:
    return TrlParser(
        (Stage1ScriptArguments, ContrastiveAlignmentConfig, FinedeficsModelConfig), prog="finedefics stage1"
    )


def main(
    script_args: Stage1ScriptArguments, training_args: ContrastiveAlignmentConfig, model_args: FinedeficsModelConfig
) -> None:
    from hf_finedefics.data.loading import load_dataset_split
    from hf_finedefics.trainer.contrastive_alignment_trainer import train_stage1

    train_dataset = load_dataset_split(
        script_args.dataset_name, script_args.dataset_config, script_args.dataset_train_split
    )
    eval_dataset = None
    if script_args.dataset_test_split is not None:
        eval_dataset = load_dataset_split(
            script_args.dataset_name, script_args.dataset_config, script_args.dataset_test_split
        )
    output_dir = train_stage1(model_args, training_args, train_dataset, eval_dataset, script_args.dataset_name)
    print(f"Stage I adapter saved to {output_dir}")


if __name__ == "__main__":
    run(make_parser, main)
