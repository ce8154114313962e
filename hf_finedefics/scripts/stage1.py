"""`finedefics stage1`: attribute augmented contrastive learning (paper section 3.2, stage I).

    finedefics stage1 --config recipes/idefics2-8b/stage1/config_qlora.yaml
    accelerate launch --config_file recipes/accelerate_configs/ddp.yaml -m hf_finedefics.scripts.stage1 \\
        --config recipes/idefics2-8b/stage1/config_qlora.yaml
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from transformers import AutoModelForImageTextToText, AutoProcessor
from trl import TrlParser

from hf_finedefics.contrastive_config import ContrastiveAlignmentConfig
from hf_finedefics.contrastive_trainer import ContrastiveAlignmentTrainer
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


def train_stage1(
    script_args: Stage1ScriptArguments, model_args: FinedeficsModelArguments, training_args: ContrastiveAlignmentConfig
) -> Path:
    """Run stage I and save the adapter (or model) with its processor to `output_dir`, which is returned."""
    if model_args.model_name_or_path is None:
        raise ValueError("Stage I needs --model_name_or_path.")
    train_dataset = load_dataset_split(
        script_args.dataset_name, script_args.dataset_config, script_args.dataset_train_split
    )
    eval_dataset = None
    if script_args.dataset_test_split is not None:
        eval_dataset = load_dataset_split(
            script_args.dataset_name, script_args.dataset_config, script_args.dataset_test_split
        )
    model = AutoModelForImageTextToText.from_pretrained(
        model_args.model_name_or_path, **model_args.model_init_kwargs()
    )
    trainer = ContrastiveAlignmentTrainer(
        model,
        training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=AutoProcessor.from_pretrained(model_args.model_name_or_path, **model_args.processor_kwargs),
        peft_config=model_args.lora_config(model) if script_args.use_peft else None,
    )
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    if training_args.push_to_hub:
        trainer.push_to_hub(dataset_name=script_args.dataset_name)  # saves, writes the model card and uploads once
    else:
        trainer.save_model(training_args.output_dir)
    return Path(training_args.output_dir)


def main(argv: list[str] | None = None) -> None:
    parser = TrlParser((Stage1ScriptArguments, FinedeficsModelArguments, ContrastiveAlignmentConfig))
    script_args, model_args, training_args = parser.parse_args_and_config(argv)
    output_dir = train_stage1(script_args, model_args, training_args)
    print(f"Stage I adapter saved to {output_dir}")


if __name__ == "__main__":
    main()
