from __future__ import annotations

import numpy as np
import pytest
import torch
from datasets import Dataset
from peft import get_peft_model
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

from dataset_builders.prompts import multiple_choice_answer, multiple_choice_prompt, open_set_prompt
from hf_finedefics.backbones import get_backbone
from hf_finedefics.testing import create_tiny_checkpoint, paper_processor_kwargs
from tests.architectures import TINY_ARCHITECTURE_PARAMS

CATEGORIES = ["Chihuahua", "Japanese spaniel", "Maltese dog", "Papillon"]


def instruction_rows(num_images: int = 4, seed: int = 0) -> Dataset:
    """Stage II rows as the `instructions` dataset has them: per image, one open-set question and one 4-way
    multiple-choice question, each a TRL conversation with one image."""
    rng = np.random.default_rng(seed)
    rows = {"messages": [], "images": []}
    for index in range(num_images):
        image = Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
        answer = CATEGORIES[index % len(CATEGORIES)]
        options = list(rng.permutation(CATEGORIES))
        for question, reply in (
            (open_set_prompt("dog"), answer),
            (multiple_choice_prompt(options, "dog"), multiple_choice_answer(options, options.index(answer))),
        ):
            rows["messages"].append(
                [
                    {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]},
                    {"role": "assistant", "content": [{"type": "text", "text": reply}]},
                ]
            )
            rows["images"].append([image])
    return Dataset.from_dict(rows)


@pytest.fixture(params=TINY_ARCHITECTURE_PARAMS)
def tiny_model_path(request):
    return create_tiny_checkpoint(request.param)


@pytest.fixture
def instructions() -> Dataset:
    return instruction_rows()


def make_stage1_adapter(model_path, adapter_dir):
    """A stage I style adapter (LoRA on the LLM and the connector, saved with the processor) whose update is not
    zero, so merging it changes the model."""
    model = AutoModelForImageTextToText.from_pretrained(model_path)
    model = get_peft_model(model, get_backbone(model).lora_config())
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.05)
    model.save_pretrained(adapter_dir)
    # A stage I adapter folder carries the processor it was trained with (the paper's: no image splitting).
    AutoProcessor.from_pretrained(model_path, **paper_processor_kwargs(model_path)).save_pretrained(adapter_dir)
    return adapter_dir


@pytest.fixture
def stage1_adapter(tiny_model_path, tmp_path):
    return make_stage1_adapter(tiny_model_path, tmp_path / "stage1")
