from __future__ import annotations

import numpy as np
import pytest
import torch
from peft import PeftModel
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

from hf_finedefics.cli import main as cli
from hf_finedefics.modeling import adapter_base_model, load_finedefics_model, merge_adapter


def _inputs(processor):
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is this dog?"}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return processor(text=[prompt], images=[[image]], return_tensors="pt")


@torch.no_grad()
def _logits(model, inputs):
    return model(**inputs).logits


def test_adapter_loads_in_one_call(tiny_model_path, stage1_adapter):
    assert adapter_base_model(stage1_adapter) == str(tiny_model_path)
    assert adapter_base_model(tiny_model_path) is None
    by_adapter, processor = load_finedefics_model(stage1_adapter)
    by_base_and_adapter, _ = load_finedefics_model(tiny_model_path, adapter=stage1_adapter)
    base, _ = load_finedefics_model(tiny_model_path)
    assert isinstance(by_adapter, PeftModel) and not by_adapter.training
    inputs = _inputs(processor)
    torch.testing.assert_close(_logits(by_adapter, inputs), _logits(by_base_and_adapter, inputs))
    assert not torch.allclose(_logits(by_adapter, inputs), _logits(base, inputs))


def test_merge_round_trip(tiny_model_path, stage1_adapter, tmp_path):
    merged_dir = merge_adapter(stage1_adapter, tmp_path / "merged")
    merged = AutoModelForImageTextToText.from_pretrained(merged_dir)
    processor = AutoProcessor.from_pretrained(merged_dir)
    assert not any("lora" in name for name in merged.state_dict())
    with_adapter, _ = load_finedefics_model(stage1_adapter)
    inputs = _inputs(processor)
    # Merged weights sum W + BA before the matmul, the adapter after it: float rounding differs slightly.
    torch.testing.assert_close(_logits(merged, inputs), _logits(with_adapter, inputs), atol=1e-4, rtol=1e-4)
    assert merged.generation_config.eos_token_id == with_adapter.generation_config.eos_token_id


def test_merge_cli(tiny_model_path, stage1_adapter, tmp_path):
    cli(["merge", "--adapter", str(stage1_adapter), "--output_dir", str(tmp_path / "merged"), "--dtype", "float32"])
    merged, _ = load_finedefics_model(tmp_path / "merged")
    assert not isinstance(merged, PeftModel)
    assert merged.dtype == torch.float32


def test_merge_refuses_what_is_not_an_adapter(tiny_model_path, tmp_path):
    with pytest.raises(ValueError, match="not a peft adapter"):
        merge_adapter(tiny_model_path, tmp_path / "merged")
    with pytest.raises(ValueError, match="quantized"):
        load_finedefics_model(tiny_model_path, quantization="4bit", merge_adapter=True)
