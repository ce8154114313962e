"""`push_to_hub: true` in a recipe: the stage scripts' trainers write the Finedefics card and upload the adapter
through `Trainer.push_to_hub`, with only the Hub calls replaced (`conftest.FakeHub`)."""

from __future__ import annotations

import json
from importlib.metadata import version

import pytest
from huggingface_hub import ModelCard

from dataset_builders.publish import LOCAL_NAME
from hf_finedefics.cli import main as cli
from hf_finedefics.hub import FINEDEFICS_CITATION, TRAINING_SUMMARY_NAME
from hf_finedefics.testing import create_tiny_checkpoint

from ..conftest import synthetic_triples
from ..stage2.conftest import instruction_rows

HUB_MODEL_ID = "your-hf-user/finedefics-tiny"
TINY_RUN = (
    "max_steps: 1\nwarmup_steps: 0\nper_device_train_batch_size: 2\nreport_to: none\nuse_cpu: true\n"
    "save_strategy: 'no'\nlogging_steps: 1\npush_to_hub: true\nprocessor_kwargs: {do_image_splitting: false}\n"
)


@pytest.fixture(scope="module")
def tiny_base():
    return create_tiny_checkpoint("idefics2")


def _uploaded_card(fake_hub, output_dir) -> ModelCard:
    """The single upload holds the output folder's adapter and the model card the trainer wrote there."""
    assert fake_hub.created[0]["repo_id"] == HUB_MODEL_ID
    assert len(fake_hub.uploads) == 1
    upload = fake_hub.uploads[0]
    assert upload.repo_id == HUB_MODEL_ID
    assert {"README.md", "adapter_config.json", "adapter_model.safetensors"} <= upload.files
    assert upload.card().text == ModelCard.load(output_dir / "README.md").text
    return upload.card()


def test_stage1_recipe_with_push_to_hub(tiny_base, fake_hub, tmp_path):
    data = tmp_path / "data"
    synthetic_triples(num_categories=4, train_per_category=1, test_per_category=1).save_to_disk(data / "triples")
    output_dir = tmp_path / "stage1"
    recipe = tmp_path / "stage1.yaml"
    recipe.write_text(
        f"model_name_or_path: {tiny_base}\ndataset_name: {data}\noutput_dir: {output_dir}\n"
        f"hub_model_id: {HUB_MODEL_ID}\n{TINY_RUN}"
    )
    cli(["stage1", "--config", str(recipe)])

    card = _uploaded_card(fake_hub, output_dir)
    assert card.data.library_name == "peft" and card.data.pipeline_tag == "image-text-to-text"
    assert {"finedefics", "fgvr", "contrastive-alignment"} <= set(card.data.tags)
    assert card.data.base_model is None  # a local folder cannot be linked, nor is it named
    assert str(tiny_base) not in card.text
    assert str(data) not in card.text and f"- `{LOCAL_NAME}`" in card.text  # the training data
    for row in ("| LoRA rank | 8 |", "| temperature | 0.07 |", "| per-device batch size | 2 |",
                "| global batch size | 2 |"):  # fmt: skip
        assert row in card.text
    assert FINEDEFICS_CITATION in card.text
    # what `finedefics push-adapter` reads later instead of the pickled training_args.bin
    summary = json.loads((output_dir / TRAINING_SUMMARY_NAME).read_text())
    assert summary["stage"] == "stage1" and summary["hyperparameters"]["temperature"] == 0.07


def test_stage2_recipe_with_push_to_hub(tiny_base, fake_hub, tmp_path):
    data = tmp_path / "data"
    instruction_rows(num_images=2).save_to_disk(data / "instructions")
    output_dir = tmp_path / "stage2"
    recipe = tmp_path / "stage2.yaml"
    recipe.write_text(
        f"model_name_or_path: {tiny_base}\ndataset_name: {data}\noutput_dir: {output_dir}\n"
        f"hub_model_id: {HUB_MODEL_ID}\nbf16: false\n{TINY_RUN}"
    )
    cli(["stage2", "--config", str(recipe)])

    card = _uploaded_card(fake_hub, output_dir)
    assert card.data.library_name == "peft"
    assert {"finedefics", "fgvr", "instruction-tuning"} <= set(card.data.tags)
    assert {"trl", "sft"} <= set(card.data.tags)  # TRL's SFTTrainer tags, as its own card has them
    assert f"- TRL: {version('trl')}" in card.text
    assert "| stage I adapter | none (instruction tuning only) |" in card.text
    assert "| instruction types | open_set, multiple_choice |" in card.text
    assert str(data) not in card.text  # the training data
    assert json.loads((output_dir / "adapter_config.json").read_text())["base_model_name_or_path"] == str(tiny_base)


def test_stage2_push_leaves_the_merged_base_out(tiny_base, fake_hub, tmp_path):
    """With a stage I adapter, stage II saves the merged full model under its output folder by default: pushing the
    stage II adapter must not upload that copy of the base."""
    stage1_data = tmp_path / "data"
    synthetic_triples(num_categories=4, train_per_category=1, test_per_category=1).save_to_disk(
        stage1_data / "triples"
    )
    instruction_rows(num_images=2).save_to_disk(stage1_data / "instructions")
    stage1_dir = tmp_path / "stage1"
    cli(["stage1", "--model_name_or_path", str(tiny_base), "--dataset_name", str(stage1_data),
         "--output_dir", str(stage1_dir), "--max_steps", "1", "--per_device_train_batch_size", "2",
         "--report_to", "none", "--use_cpu", "true", "--save_strategy", "no",
         "--processor_kwargs", '{"do_image_splitting": false}'])  # fmt: skip
    output_dir = tmp_path / "stage2"
    recipe = tmp_path / "stage2.yaml"
    recipe.write_text(
        f"stage1_adapter: {stage1_dir}\ndataset_name: {stage1_data}\noutput_dir: {output_dir}\n"
        f"hub_model_id: {HUB_MODEL_ID}\nbf16: false\n{TINY_RUN}"
    )
    cli(["stage2", "--config", str(recipe)])

    upload = fake_hub.uploads[-1]
    assert not [name for name in upload.files if name.endswith(".safetensors") and "adapter" not in name]
    assert f"| stage I adapter | {LOCAL_NAME} |" in upload.card().text
