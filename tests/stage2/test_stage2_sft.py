from __future__ import annotations

import json
import math

import bitsandbytes as bnb
import pytest
import torch
from datasets import Dataset
from peft import PeftModel
from safetensors.torch import load_file
from tokenizers import processors
from transformers import AutoModelForImageTextToText, AutoProcessor

from hf_finedefics.chat import prompt_completion
from hf_finedefics.modeling import load_finedefics_model
from hf_finedefics.testing import create_tiny_checkpoint, paper_processor_kwargs, tiny_architecture
from hf_finedefics.trainer.instruction_tuning_config import InstructionTuningConfig
from hf_finedefics.trainer.instruction_tuning_trainer import (
    build_stage2_trainer,
    instruction_type,
    select_instruction_types,
)
from hf_finedefics.trainer.model_config import FinedeficsModelConfig

from ..conftest import TINY_TRAINING_ARGS


def stage2_config(output_dir, **overrides) -> InstructionTuningConfig:
    settings = dict(
        TINY_TRAINING_ARGS,
        output_dir=str(output_dir),
        per_device_train_batch_size=2,
        bf16=False,
        activation_checkpointing=False,
        dataloader_num_workers=0,
    )
    return InstructionTuningConfig(**{**settings, **overrides})


def test_prompt_completion_splits_at_the_answer(tiny_model_path, instructions):
    processor = AutoProcessor.from_pretrained(tiny_model_path)
    messages = instructions[0]["messages"]
    rendered = prompt_completion(processor, messages)
    assert rendered["prompt"] == processor.apply_chat_template(
        messages[:1], add_generation_prompt=True, tokenize=False
    )
    answer = messages[1]["content"][0]["text"]
    # The completion is the answer, closed by the turn's stop token: Idefics2's and SmolVLM's templates end the
    # turn with <end_of_utterance>, Gemma 3's with <end_of_turn>, the ChatML ones (Qwen-VL, LLaVA-OneVision) with
    # <|im_end|>; LLaVA-1.5's ends with nothing, so EOS is appended.
    full = processor.apply_chat_template(messages, tokenize=False)
    if "<end_of_utterance>" in full:
        assert rendered["completion"] == f" {answer}<end_of_utterance>\n"
    elif "<end_of_turn>" in full:
        assert rendered["completion"] == f"{answer}<end_of_turn>\n"
    elif "<|im_end|>" in full:
        assert rendered["completion"] == f"{answer}<|im_end|>\n"
    else:
        assert rendered["completion"] == f" {answer}{processor.tokenizer.eos_token}"


def test_prompt_gets_the_bos_the_processor_would_add_at_inference(instructions):
    processor = AutoProcessor.from_pretrained(create_tiny_checkpoint("llava"))
    tokenizer = processor.tokenizer
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tokenizer.bos_token_id)]
    )
    rendered = prompt_completion(processor, instructions[0]["messages"])
    assert rendered["prompt"].startswith("<s>USER:")
    assert not rendered["completion"].startswith("<s>")


def test_instruction_types_are_told_apart(instructions):
    types = [instruction_type(messages) for messages in instructions["messages"]]
    assert types == ["open_set", "multiple_choice"] * 4
    open_set = select_instruction_types(instructions, ["open_set"])
    assert len(open_set) == 4
    assert all("Choices:" not in m[0]["content"][1]["text"] for m in open_set["messages"])


def test_labels_cover_the_answer_only(tiny_model_path, instructions, tmp_path):
    trainer = build_stage2_trainer(
        FinedeficsModelConfig(model_name_or_path=str(tiny_model_path)), stage2_config(tmp_path), instructions
    )
    tokenizer = trainer.processing_class.tokenizer
    image_token_id = trainer.model.config.image_token_id
    rows = [trainer.train_dataset[i] for i in range(4)]
    batch = trainer.data_collator(rows)
    for row, input_ids, labels in zip(rows, batch["input_ids"], batch["labels"]):
        supervised = labels != -100
        # Everything supervised is the completion, and all of it is supervised.
        assert torch.equal(labels[supervised], input_ids[supervised])
        assert tokenizer.decode(labels[supervised]) == row["completion"]
        assert supervised.sum() == len(tokenizer(row["completion"], add_special_tokens=False)["input_ids"])
        # The prompt, with its image tokens, precedes the answer and is masked.
        first_answer_token = supervised.nonzero()[0].item()
        assert (input_ids[:first_answer_token] == image_token_id).sum() > 0
        assert not supervised[:first_answer_token].any()


def test_stage2_from_stage1_adapter(tiny_model_path, stage1_adapter, instructions, tmp_path):
    output_dir = tmp_path / "stage2"
    config = stage2_config(output_dir, stage1_adapter=str(stage1_adapter))
    trainer = build_stage2_trainer(FinedeficsModelConfig(), config, instructions)
    trainer.train()
    trainer.save_model(config.output_dir)
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 2 and all(math.isfinite(loss) for loss in losses)

    # Stage II starts from the base with the stage I update folded in...
    merged_dir = tmp_path / "stage2-stage1-merged"
    base_model, _ = load_finedefics_model(tiny_model_path)
    stage1_model, _ = load_finedefics_model(stage1_adapter)
    merged_weights = AutoModelForImageTextToText.from_pretrained(merged_dir).state_dict()
    for name, value in stage1_model.merge_and_unload().state_dict().items():
        torch.testing.assert_close(merged_weights[name], value)
    assert any(not torch.equal(merged_weights[n], v) for n, v in base_model.state_dict().items())
    # ... and the new adapter names that merged checkpoint as its base, so it loads in one call.
    adapter_config = json.loads((output_dir / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == "../stage2-stage1-merged"  # relative: they move together
    assert (adapter_config["r"], adapter_config["lora_alpha"], adapter_config["lora_dropout"]) == (8, 8, 0.2)
    assert adapter_config["init_lora_weights"] == "gaussian"
    model, processor = load_finedefics_model(output_dir)
    assert isinstance(model, PeftModel)
    assert processor.tokenizer.eos_token is not None


def test_stage2_qlora_without_stage1(tiny_model_path, instructions, tmp_path):
    # TRL casts the trainable weights to bf16 under QLoRA; Gemma 3's connector (trained in full) multiplies the
    # activations by its bare weight matrix, which needs bf16 activations too, as the Hub's bf16 checkpoints give.
    dtype = "bfloat16" if tiny_architecture(tiny_model_path) == "gemma3" else "float32"
    model_args = FinedeficsModelConfig(
        model_name_or_path=str(tiny_model_path),
        load_in_4bit=True,
        bnb_4bit_compute_dtype=dtype,
        dtype="auto" if dtype == "float32" else dtype,
    )
    config = stage2_config(tmp_path / "qlora", instruction_types=["open_set"])
    trainer = build_stage2_trainer(model_args, config, instructions)
    assert len(trainer.train_dataset) == 4
    quantized = [m for m in trainer.model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert quantized and all(m.weight.quant_type == "nf4" for m in quantized)
    trainer.train()
    trainer.save_model(config.output_dir)
    adapter_config = json.loads((tmp_path / "qlora" / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == str(tiny_model_path)
    assert not (tmp_path / "qlora-stage1-merged").exists()
    lora_weights = load_file(tmp_path / "qlora" / "adapter_model.safetensors")
    assert lora_weights and all(torch.isfinite(w).all() for w in lora_weights.values())
    # The LoRA B matrices start at zero (gaussian init only draws A): training moved them.
    assert any(w.abs().sum() > 0 for name, w in lora_weights.items() if "lora_B" in name)


def test_config_rejects_unknown_instruction_types(tmp_path):
    with pytest.raises(ValueError, match="instruction_types"):
        stage2_config(tmp_path, instruction_types=["captioning"])


def test_one_stage_adds_the_stage1_objective(tiny_model_path, instructions, tmp_path):
    images = [images[0] for images in instructions["images"]]
    categories = ["Chihuahua", "Japanese spaniel", "Maltese dog", "Papillon"]
    triples = Dataset.from_dict(
        {
            "image": images[::2],
            "attribute": [f"A small dog with {c} ears." for c in ("round", "pointed", "long", "short")],
            "category": categories,
            "neg_attributes": [["A large dog.", "A striped dog."]] * 4,
            "neg_categories": [[categories[(i + 1) % 4], categories[(i + 2) % 4]] for i in range(4)],
            "label": [0, 1, 2, 3],
        }
    )
    config = stage2_config(tmp_path, paradigm="one_stage")
    model_args = FinedeficsModelConfig(
        model_name_or_path=str(tiny_model_path), processor_kwargs=paper_processor_kwargs(tiny_model_path)
    )
    trainer = build_stage2_trainer(model_args, config, instructions, triples)
    trainer.train()
    logged = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logged) == 2
    for entry in logged:
        terms = {name: entry[f"auxiliary/{name}"] for name in ("gen", "oac", "acc", "ccc")}
        assert all(math.isfinite(value) for value in terms.values())
        # The logged loss is SFT + gen + (oac + acc + ccc) / 2, so it exceeds the stage I part alone.
        assert entry["loss"] > terms["gen"] + (terms["oac"] + terms["acc"] + terms["ccc"]) / 2
    with pytest.raises(ValueError, match="one-stage"):
        build_stage2_trainer(model_args, stage2_config(tmp_path), instructions, triples)
