from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from peft import PeftModel
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

from hf_finedefics.cli import console_main
from hf_finedefics.cli import main as cli
from hf_finedefics.modeling import adapter_base_model, is_complete_merge, load_finedefics_model, merge_adapter
from hf_finedefics.testing import create_tiny_checkpoint
from tests.stage2.conftest import make_stage1_adapter


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


@pytest.fixture
def own_base_and_adapter(tmp_path) -> tuple[Path, Path]:
    """A tiny base copied into tmp_path (a broken refusal must never delete the shared cached checkpoint), and a
    stage I adapter recording it as its base."""
    base = Path(shutil.copytree(create_tiny_checkpoint("llava"), tmp_path / "base"))
    return base, make_stage1_adapter(base, tmp_path / "adapter")


def _contents(folder: Path) -> dict[Path, bytes]:
    return {path.relative_to(folder): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_merge_into_its_own_base_is_refused_and_the_base_kept(own_base_and_adapter, monkeypatch, overwrite):
    base, adapter = own_base_and_adapter
    before = _contents(base)
    for output_dir in (base, base.parent):  # the base itself, or a folder holding it
        argv = ["merge", "--adapter", str(adapter), "--output_dir", str(output_dir), *overwrite]
        monkeypatch.setattr(sys, "argv", ["finedefics", *argv])
        with pytest.raises(SystemExit) as refused:
            console_main()
        message = str(refused.value.code)
        assert "\n" not in message and "is (or holds) the base model" in message and str(output_dir) in message
        assert _contents(base) == before


def test_merge_into_an_existing_folder_needs_overwrite(own_base_and_adapter, tmp_path):
    _, adapter = own_base_and_adapter
    merged = merge_adapter(adapter, tmp_path / "merged")
    before = _contents(merged)
    with pytest.raises(ValueError, match="already holds a model: pass --overwrite"):
        merge_adapter(adapter, merged)
    assert _contents(merged) == before
    assert merge_adapter(adapter, merged, overwrite=True) == merged and is_complete_merge(merged)
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a model"):
        merge_adapter(adapter, notes, overwrite=True)
    assert (notes / "todo.txt").read_text() == "mine"
