"""No secret or local path leaves the machine: each way of publishing (push-adapter, push-dataset, a recipe's
`push_to_hub: true`) runs with a fake token, only the Hub calls replaced (`conftest.FakeHub`), and every uploaded
byte is searched for the token and for this machine's absolute paths."""

from __future__ import annotations

import json

import torch
from peft import get_peft_model
from transformers import AutoModelForImageTextToText, AutoProcessor

from dataset_builders import load_source
from dataset_builders.hard_negatives import mine_hard_negatives
from dataset_builders.publish import (
    LOCAL_NAME,
    DatasetCardInfo,
    build_hard_negative_index,
    build_instructions,
    build_triples,
    push_dataset_folder,
    write_dataset_folder,
)
from hf_finedefics.backbones import get_backbone
from hf_finedefics.cli import main as cli
from hf_finedefics.hub import TRAINING_SUMMARY_NAME, training_summary
from hf_finedefics.testing import create_tiny_checkpoint
from hf_finedefics.trainer.instruction_tuning_config import InstructionTuningConfig

from ..conftest import synthetic_triples
from ..dataset_builders import layouts
from .conftest import FAKE_TOKEN, leaks

REPO_ID = "your-hf-user/finedefics-tiny"


def _run_fingerprint(tmp_path) -> str:
    """A run step's fingerprint.json, as `finedefics run` writes it: local folders and a private endpoint."""
    settings = {"source_dirs": {"imagefolder": str(tmp_path / "images")}, "llm_base_url": "http://10.1.2.3:8000/v1"}
    return json.dumps({"complete": True, "settings": settings, "output_dir": str(tmp_path)})


def test_push_adapter_uploads_no_token_and_no_local_path(tmp_path, fake_hub):
    """A stage II adapter trained with --hub_token on a local merged base from a local stage I adapter and data."""
    tiny_base = create_tiny_checkpoint("idefics2")
    model = AutoModelForImageTextToText.from_pretrained(tiny_base)
    model = get_peft_model(model, get_backbone(model).lora_config())
    folder = tmp_path / "stage2"
    model.save_pretrained(folder)
    AutoProcessor.from_pretrained(tiny_base).save_pretrained(folder)
    args = InstructionTuningConfig(
        output_dir=str(folder), stage1_adapter=str(tmp_path / "stage1"), hub_token=FAKE_TOKEN, bf16=False, use_cpu=True
    )
    torch.save(args, folder / "training_args.bin")  # as an older trainer saved it: with the token
    (folder / TRAINING_SUMMARY_NAME).write_text(json.dumps(training_summary(args)))
    (folder / "fingerprint.json").write_text(_run_fingerprint(tmp_path))

    cli(["push-adapter", "--adapter", str(folder), "--repo-id", REPO_ID, "--model_name_or_path", "your-hf-user/base",
         "--dataset_name", str(tmp_path / "data"), "--token", FAKE_TOKEN])  # fmt: skip

    (upload,) = fake_hub.uploads
    assert leaks(fake_hub.uploads, tmp_path, tiny_base) == []
    assert not {"training_args.bin", "fingerprint.json", TRAINING_SUMMARY_NAME} & upload.files
    assert f"| stage I adapter | {LOCAL_NAME} |" in upload.card().text


def test_push_dataset_uploads_only_the_card_and_its_shards(tmp_path, fake_hub):
    source = load_source(
        "imagefolder", layouts.make_image_folder(tmp_path / "images", ["a", "b", "c", "d"], 1), "train"
    )
    negatives = mine_hard_negatives(source, k=3, strategy="random", seed=1)
    triples = build_triples(source, [f"A {row['category']}." for row in source], negatives)
    configs = {
        "triples": triples,
        "instructions": build_instructions(triples),
        "hard_negatives": build_hard_negative_index(negatives, source["label"]),
    }
    info = DatasetCardInfo(
        pretty_name="Tiny", source="imagefolder", split="train", models={"LLM": str(tmp_path / "llm")}
    )
    folder = write_dataset_folder(tmp_path / "data", configs, info)
    # what a run and a killed rebuild leave beside the dataset
    (folder / "fingerprint.json").write_text(_run_fingerprint(tmp_path))
    (folder / "README.md.tmp").write_text(f"partial card, built in {tmp_path}")
    (folder / "triples" / "00000-of-00001.parquet.tmp").write_bytes(str(tmp_path).encode())

    push_dataset_folder(folder, "your-hf-user/finedefics-tiny", token=FAKE_TOKEN)

    (upload,) = fake_hub.uploads
    assert leaks(fake_hub.uploads, tmp_path) == []
    assert "10.1.2.3" not in str(upload.contents)
    shards = {str(path.relative_to(folder)) for path in folder.glob("*/*.parquet")}
    assert upload.files == {"README.md", *shards}
    assert f"- LLM model: `{LOCAL_NAME}`" in upload.card().text


def test_recipe_push_to_hub_uploads_no_token_and_no_local_path(tmp_path, fake_hub):
    """`push_to_hub: true` with a hub_token, pushing at each checkpoint and at the end of training."""
    tiny_base = create_tiny_checkpoint("idefics2")
    data = tmp_path / "data"
    synthetic_triples(num_categories=4, train_per_category=1, test_per_category=1).save_to_disk(data / "triples")
    output_dir = tmp_path / "stage1"
    recipe = tmp_path / "stage1.yaml"
    recipe.write_text(
        f"model_name_or_path: {tiny_base}\ndataset_name: {data}\noutput_dir: {output_dir}\nhub_model_id: {REPO_ID}\n"
        f"hub_token: {FAKE_TOKEN}\nmax_steps: 1\nwarmup_steps: 0\nper_device_train_batch_size: 2\nreport_to: none\n"
        "use_cpu: true\nsave_strategy: steps\nsave_steps: 1\nlogging_steps: 1\npush_to_hub: true\n"
        "processor_kwargs: {do_image_splitting: false}\n"
    )
    cli(["stage1", "--config", str(recipe)])

    assert len(fake_hub.uploads) == 2  # the checkpoint, then the end of training
    assert leaks(fake_hub.uploads, tmp_path, tiny_base) == []
    assert all("training_args.bin" not in upload.files for upload in fake_hub.uploads)
    assert json.loads(fake_hub.uploads[-1].contents["adapter_config.json"])["base_model_name_or_path"] is None
    # what stays on the machine holds no token either
    for saved in output_dir.rglob("training_args.bin"):
        assert FAKE_TOKEN.encode() not in saved.read_bytes(), saved


def test_saved_training_args_hold_no_token(tmp_path):
    """`finedefics stage1 ... --hub_token hf_...` without pushing: the run's training_args.bin keeps its settings
    but not the token."""
    data = tmp_path / "data"
    synthetic_triples(num_categories=4, train_per_category=1, test_per_category=1).save_to_disk(data / "triples")
    output_dir = tmp_path / "stage1"
    cli(["stage1", "--model_name_or_path", str(create_tiny_checkpoint("idefics2")), "--dataset_name", str(data),
         "--output_dir", str(output_dir), "--hub_token", FAKE_TOKEN, "--max_steps", "1",
         "--per_device_train_batch_size", "2", "--report_to", "none", "--use_cpu", "true", "--save_strategy", "no",
         "--processor_kwargs", '{"do_image_splitting": false}'])  # fmt: skip

    saved = output_dir / "training_args.bin"
    assert FAKE_TOKEN.encode() not in saved.read_bytes()
    args = torch.load(saved, weights_only=False)
    assert args.hub_token is None and args.output_dir == str(output_dir) and args.max_steps == 1
