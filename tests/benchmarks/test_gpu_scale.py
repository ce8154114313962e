"""benchmarks/gpu_scale.py runs end to end at a tiny scale of the Idefics2-8B shape (QLoRA on CPU)."""

import importlib.util
import re
from pathlib import Path

import pytest
from transformers import AutoProcessor

from hf_finedefics.testing import create_tiny_checkpoint

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_scale.py"


def _load():
    spec = importlib.util.spec_from_file_location("gpu_scale", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_full_scale_config_is_idefics2_8b():
    gpu_scale = _load()
    processor = AutoProcessor.from_pretrained(create_tiny_checkpoint("idefics2"))
    config = gpu_scale.idefics2_config(1.0, gpu_scale.IMAGE_SIZE, processor.tokenizer, processor.image_token_id)
    text, vision = config.text_config, config.vision_config
    assert (text.hidden_size, text.intermediate_size, text.num_hidden_layers) == (4096, 14336, 32)
    assert (text.num_attention_heads, text.num_key_value_heads, text.vocab_size) == (32, 8, 32003)
    assert (vision.hidden_size, vision.intermediate_size, vision.num_hidden_layers) == (1152, 4304, 27)
    assert config.perceiver_config.resampler_n_latents == 64


@pytest.mark.slow
def test_runs_at_a_tiny_scale(tmp_path, capsys):
    _load().main(
        ["--scale", "0.01", "--image-size", "28", "--plain-batches", "2", "--cached-batches", "8"]
        + ["--mini-batch-size", "4", "--stage2-batch", "2", "--eval-items", "4", "--eval-batch", "4"]
        + ["--steps", "1", "--work-dir", str(tmp_path)]
    )
    output = capsys.readouterr().out
    assert re.search(r"stage I  batch    2 plain .* ms/step .* rows/s", output)
    assert re.search(r"stage I  batch    8 cached \(mini-batch 4\) .* ms/step .* rows/s", output)
    assert re.search(r"stage II batch    2 .* ms/step", output)
    items_per_second = float(re.search(r"evaluation .*: ([0-9.]+) items/s", output).group(1))
    assert items_per_second > 0
