"""One stage I SGD step on a fixed global batch of 8, run either as 1 process (batch 8) or under
`torchrun --nproc_per_node 2` (batch 4 each), optionally with gradient caching (a mini-batch size as 4th
argument); writes the loss and the LoRA weights after the step."""

import sys

import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from hf_finedefics.backbones import get_backbone
from hf_finedefics.testing import paper_processor_kwargs
from hf_finedefics.trainer.contrastive_alignment_config import ContrastiveAlignmentConfig
from hf_finedefics.trainer.contrastive_alignment_trainer import ContrastiveAlignmentTrainer

sys.path.insert(0, __file__.rsplit("/", 2)[0])  # tests/, for conftest
from conftest import synthetic_triples  # noqa: E402


def main(checkpoint: str, output_file: str, per_device_batch_size: int, mini_batch_size: int | None = None) -> None:
    torch.manual_seed(0)
    model = AutoModelForImageTextToText.from_pretrained(checkpoint)
    triples = synthetic_triples(num_categories=8, train_per_category=1, test_per_category=1)
    args = ContrastiveAlignmentConfig(
        output_dir=output_file + ".run",
        per_device_train_batch_size=per_device_batch_size,
        max_steps=1,
        optim="sgd",
        learning_rate=1.0,
        warmup_steps=0,
        weight_decay=0.0,
        max_grad_norm=1e9,
        lr_scheduler_type="constant",
        train_sampling_strategy="sequential",
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        seed=0,
        contrastive_mini_batch_size=mini_batch_size,
    )
    path = model.config._name_or_path
    trainer = ContrastiveAlignmentTrainer(
        model,
        args,
        train_dataset=triples,
        peft_config=get_backbone(model).lora_config(dropout=0.0),
        processing_class=AutoProcessor.from_pretrained(path, **paper_processor_kwargs(path)),
    )
    trainer.train()
    if trainer.is_world_process_zero():
        lora = {name: param.detach().clone() for name, param in trainer.model.named_parameters() if "lora_" in name}
        losses = {key: value for key, value in trainer.state.log_history[0].items() if key.startswith("loss")}
        torch.save({"lora": lora, "losses": losses}, output_file)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]) if len(sys.argv) > 4 else None)
