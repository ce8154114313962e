"""No image splitting wherever the paper does not split. The tiny Idefics2's processor splits images into 4 crops +
the whole image by default, like HuggingFaceM4/idefics2-8b's, so every path below must turn it off; each check
counts the visual tokens the processor gives one image."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from transformers import AutoProcessor

from hf_finedefics.cli import main as cli
from hf_finedefics.demo import DemoModel
from hf_finedefics.scripts import analyze, evaluate, stage1, stage2
from hf_finedefics.testing import create_tiny_checkpoint

from ..conftest import synthetic_triples

RECIPES = Path(__file__).resolve().parents[2] / "recipes" / "idefics2-8b"
# The tiny Idefics2 resamples each image to 8 visual tokens (the real one: 64).
TOKENS_PER_IMAGE = 8


def visual_tokens(processor) -> int:
    """How many image tokens the processor puts in a prompt for one image."""
    chat = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is this?"}]}],
        add_generation_prompt=True,
    )
    inputs = processor(text=[chat], images=[[Image.new("RGB", (40, 30), "red")]], return_tensors="pt")
    return int((inputs["input_ids"] == processor.image_token_id).sum())


@pytest.fixture(scope="module")
def idefics2():
    return create_tiny_checkpoint("idefics2")


def test_the_tiny_processor_splits_by_default(idefics2):
    assert visual_tokens(AutoProcessor.from_pretrained(idefics2)) == 5 * TOKENS_PER_IMAGE


@pytest.mark.parametrize("stage", ["stage1", "stage2"])
def test_idefics2_recipes_turn_splitting_off(stage, idefics2):
    parser = {"stage1": stage1.make_parser, "stage2": stage2.make_parser}[stage]()
    *_, model_args = parser.parse_args_and_config(
        ["--config", str(RECIPES / stage / "config_qlora.yaml"), "--use_cpu", "true"]
    )
    assert model_args.processor_kwargs == {"do_image_splitting": False}
    processor = AutoProcessor.from_pretrained(idefics2, **model_args.processor_kwargs)
    assert visual_tokens(processor) == TOKENS_PER_IMAGE


@pytest.mark.parametrize("make_parser", [evaluate.make_parser, analyze.make_parser], ids=["evaluate", "analyze"])
def test_evaluate_and_analyze_pass_processor_kwargs_to_the_processor(make_parser, idefics2):
    required = {"evaluate": [], "analyze": ["--dataset_name", "x", "--output_dir", "y"]}
    command = make_parser().prog.split()[-1]
    flags = ["--model_name_or_path", str(idefics2), *required[command]]
    *_, model_args = make_parser().parse_args_and_config(
        [*flags, "--processor_kwargs", '{"do_image_splitting": false}']
    )
    _, processor = model_args.load()
    assert visual_tokens(processor) == TOKENS_PER_IMAGE
    *_, default_args = make_parser().parse_args_and_config(flags)
    assert visual_tokens(default_args.load()[1]) == 5 * TOKENS_PER_IMAGE


def test_object_embeddings_refuse_split_images(idefics2):
    """Stage I, the analyses and the demo embed one whole image; a splitting processor fails loudly, naming the fix."""
    demo = DemoModel(str(idefics2))
    image = Image.new("RGB", (32, 32), "blue")
    with pytest.raises(ValueError, match="do_image_splitting: false"):
        demo.recognize(image, _categories(), top_k=2)
    demo = DemoModel(str(idefics2), processor_kwargs={"do_image_splitting": False})
    recognition = demo.recognize(image, _categories(), top_k=2)
    assert visual_tokens(demo.load().processor) == TOKENS_PER_IMAGE
    assert len(recognition.top_k) == 2


def _categories():
    from hf_finedefics.demo import category_sets

    return category_sets()["pet-37"]


def test_adapter_folder_carries_the_processor_it_was_trained_with(idefics2, tmp_path):
    synthetic_triples(num_categories=4, train_per_category=2, test_per_category=1).save_to_disk(tmp_path / "triples")
    output_dir = tmp_path / "stage1"
    cli(
        ["stage1", "--dataset_name", str(tmp_path / "triples"), "--model_name_or_path", str(idefics2)]
        + ["--output_dir", str(output_dir), "--max_steps", "1", "--per_device_train_batch_size", "4"]
        + ["--use_cpu", "true", "--report_to", "none", "--processor_kwargs", '{"do_image_splitting": false}']
    )
    # Loaded with no processor_kwargs, the adapter brings its own non-splitting processor.
    assert visual_tokens(AutoProcessor.from_pretrained(output_dir)) == TOKENS_PER_IMAGE
    from hf_finedefics.modeling import load_finedefics_model

    _, processor = load_finedefics_model(output_dir)
    assert visual_tokens(processor) == TOKENS_PER_IMAGE
