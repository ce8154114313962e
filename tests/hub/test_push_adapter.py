"""`finedefics push-adapter`: the model card it writes, what it uploads, and loading the result back by Hub id.

Only the Hub calls are replaced (`conftest.FakeHub`): everything else, card and files included, is real."""

from __future__ import annotations

import json

import huggingface_hub
import pytest
import torch
from peft import PeftModel, get_peft_model
from transformers import AutoModelForImageTextToText, AutoProcessor

from hf_finedefics.backbones import get_backbone
from hf_finedefics.cli import main as cli
from hf_finedefics.evaluation.report import build_report, summarize_results
from hf_finedefics.hub import FINEDEFICS_CITATION, TRAINING_SUMMARY_NAME, training_summary
from hf_finedefics.modeling import load_finedefics_model
from hf_finedefics.testing import create_tiny_checkpoint
from hf_finedefics.trainer.contrastive_alignment_config import ContrastiveAlignmentConfig

from .conftest import publish_to_local_cache

REPO_ID = "your-hf-user/finedefics-tiny-stage1"
BASE_REPO_ID = "your-hf-user/tiny-idefics2"


@pytest.fixture(scope="module")
def tiny_base():
    return create_tiny_checkpoint("idefics2")


@pytest.fixture
def adapter_dir(tiny_base, tmp_path):
    """A stage I output folder: adapter, processor, training arguments, and a checkpoint sub-folder."""
    model = AutoModelForImageTextToText.from_pretrained(tiny_base)
    model = get_peft_model(model, get_backbone(model).lora_config())
    folder = tmp_path / "stage1"
    model.save_pretrained(folder)
    AutoProcessor.from_pretrained(tiny_base).save_pretrained(folder)
    args = ContrastiveAlignmentConfig(
        output_dir=str(folder), per_device_train_batch_size=2, gradient_accumulation_steps=4, use_cpu=True
    )
    # as the trainers save: the Trainer's pickle and the JSON summary the card is built from
    torch.save(args, folder / "training_args.bin")
    (folder / TRAINING_SUMMARY_NAME).write_text(json.dumps(training_summary(args)))
    (folder / "checkpoint-1").mkdir()
    (folder / "checkpoint-1" / "optimizer.pt").write_bytes(b"not for the Hub")
    return folder


def _result(groundtruth: str, answer: int, prediction: int | None) -> dict:
    return {"groundtruth": groundtruth, "options": ["Pug", "Boxer", "Beagle", "Akita"], "answer": answer,
            "prediction": prediction}  # fmt: skip


@pytest.fixture
def eval_report(tmp_path):
    """A report.json as `finedefics evaluate` writes it: 3 of 4 right on bird-200."""
    results = [_result("Pug", 0, 0), _result("Boxer", 1, 1), _result("Akita", 3, 3), _result("Pug", 0, None)]
    report, _ = build_report({"finedefics-tiny": {"generation": {"bird-200": summarize_results(results)}}})
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report))
    return path


def test_push_adapter_writes_the_card_and_uploads_once(adapter_dir, eval_report, fake_hub):
    cli(["push-adapter", "--adapter", str(adapter_dir), "--repo-id", REPO_ID, "--private",
         "--model_name_or_path", BASE_REPO_ID, "--dataset_name", "your-hf-user/finedefics-fgvr", "--eval_report", str(eval_report)])  # fmt: skip

    assert fake_hub.created == [{"repo_id": REPO_ID, "private": True, "exist_ok": True}]
    assert len(fake_hub.uploads) == 1
    upload = fake_hub.uploads[0]
    assert upload.repo_id == REPO_ID
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md"} <= upload.files
    assert not any(name.startswith("checkpoint-") for name in upload.files)

    card = upload.card()
    assert card.data.base_model == BASE_REPO_ID
    assert card.data.library_name == "peft"
    assert card.data.pipeline_tag == "image-text-to-text"
    assert card.data.datasets == ["your-hf-user/finedefics-fgvr"]
    assert {"finedefics", "fgvr", "contrastive-alignment"} <= set(card.data.tags)
    text = card.text
    # hyper-parameters from adapter_config.json and finedefics_training.json
    for row in ("| LoRA rank | 8 |", "| LoRA alpha | 8 |", "| LoRA dropout | 0.2 |", "| LoRA init | gaussian |",
                "| learning rate | 0.0002 |", "| warm-up steps | 60 |", "| gradient accumulation steps | 4 |",
                "| temperature | 0.07 |", "| loss weights (gen, OAC, ACC, CCC) | 1.0, 0.5, 0.5, 0.5 |"):  # fmt: skip
        assert row in text
    # the evaluation table: 3 of 4 right, one answer unparsed
    assert "| Model | Scorer | Bird-200 | Avg. |" in text
    assert "| finedefics-tiny | generation | 75.00 | 75.00 |" in text
    assert FINEDEFICS_CITATION in text
    assert f'load_finedefics_model("{REPO_ID}")' in text
    # the uploaded adapter names a base model anyone can load
    assert json.loads(upload.contents["adapter_config.json"])["base_model_name_or_path"] == BASE_REPO_ID


def test_uploaded_files_load_in_one_call_on_the_named_base(adapter_dir, tiny_base, fake_hub, tmp_path, monkeypatch):
    """What push-adapter uploads is a complete adapter: copied to a fresh folder, `load_finedefics_model` loads it
    in one call, fetching the base by the Hub id written into adapter_config.json (here from a local Hub cache)."""
    cli(["push-adapter", "--adapter", str(adapter_dir), "--repo-id", REPO_ID, "--model_name_or_path", BASE_REPO_ID])
    downloaded = fake_hub.uploads[0].write_to(tmp_path / "downloaded")
    cache = tmp_path / "hub-cache"
    publish_to_local_cache(cache, BASE_REPO_ID, tiny_base, {path.name for path in tiny_base.iterdir()})
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)

    model, processor = load_finedefics_model(downloaded)

    assert isinstance(model, PeftModel)
    assert model.peft_config["default"].base_model_name_or_path == BASE_REPO_ID
    expected = PeftModel.from_pretrained(AutoModelForImageTextToText.from_pretrained(tiny_base), adapter_dir)
    for (name, loaded), (_, reference) in zip(model.named_parameters(), expected.named_parameters()):
        torch.testing.assert_close(loaded, reference, msg=name)
    assert processor.tokenizer.get_vocab() == AutoProcessor.from_pretrained(tiny_base).tokenizer.get_vocab()


def test_push_adapter_leaves_the_adapter_folder_unchanged(adapter_dir, tiny_base, fake_hub):
    """Naming the Hub base changes only the uploaded adapter_config.json: the local folder still loads offline."""
    before = {path: path.read_bytes() for path in adapter_dir.rglob("*") if path.is_file()}

    cli(["push-adapter", "--adapter", str(adapter_dir), "--repo-id", REPO_ID, "--model_name_or_path", BASE_REPO_ID])

    assert {path: path.read_bytes() for path in adapter_dir.rglob("*") if path.is_file()} == before
    model, _ = load_finedefics_model(adapter_dir)
    assert model.peft_config["default"].base_model_name_or_path == str(tiny_base)


def test_local_base_model_needs_a_hub_id(adapter_dir, fake_hub):
    with pytest.raises(ValueError, match="--model_name_or_path"):
        cli(["push-adapter", "--adapter", str(adapter_dir), "--repo-id", REPO_ID])
    assert fake_hub.uploads == [] and fake_hub.created == []


def test_folder_without_adapter_is_refused(tmp_path, fake_hub):
    with pytest.raises(FileNotFoundError, match="adapter_config.json"):
        cli(["push-adapter", "--adapter", str(tmp_path), "--repo-id", REPO_ID, "--model_name_or_path", BASE_REPO_ID])
    assert fake_hub.uploads == []


class _RunsCode:
    """Unpickling this writes `marker`: what a malicious training_args.bin in a shared adapter folder could do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('ran')",)


def test_training_args_pickle_is_never_unpickled(adapter_dir, fake_hub, tmp_path):
    marker = tmp_path / "code-ran"
    torch.save(_RunsCode(marker), adapter_dir / "training_args.bin")

    cli(["push-adapter", "--adapter", str(adapter_dir), "--repo-id", REPO_ID, "--model_name_or_path", BASE_REPO_ID])

    assert not marker.exists()
    text = fake_hub.uploads[0].card().text
    assert "| gradient accumulation steps | 4 |" in text and "| global batch size | 8 |" in text  # from the JSON


def test_card_without_training_summary_lists_only_lora(adapter_dir, fake_hub):
    (adapter_dir / TRAINING_SUMMARY_NAME).unlink()
    cli(["push-adapter", "--adapter", str(adapter_dir), "--repo-id", REPO_ID, "--model_name_or_path", BASE_REPO_ID])
    text = fake_hub.uploads[0].card().text
    assert "| LoRA rank | 8 |" in text and "learning rate" not in text


def test_malformed_training_summary_names_the_file(adapter_dir, fake_hub):
    (adapter_dir / TRAINING_SUMMARY_NAME).write_text("{not json")
    with pytest.raises(ValueError, match=TRAINING_SUMMARY_NAME):
        cli(
            ["push-adapter", "--adapter", str(adapter_dir), "--repo-id", REPO_ID, "--model_name_or_path", BASE_REPO_ID]
        )
    assert fake_hub.uploads == []


def test_the_card_lists_what_each_stage_config_says_about_itself(tmp_path):
    """The card reads each stage's own rows (the objective from the loss config), not a branch per config class."""
    from hf_finedefics.hub import training_summary
    from hf_finedefics.trainer.contrastive_alignment_config import ContrastiveAlignmentConfig
    from hf_finedefics.trainer.instruction_tuning_config import InstructionTuningConfig

    common = {"output_dir": str(tmp_path), "use_cpu": True}
    ablation = training_summary(ContrastiveAlignmentConfig(**common, objective="object_category", oc_weight=0.25))
    assert ablation["stage"] == "stage1"
    assert ablation["hyperparameters"]["loss weights (gen, OC)"] == "1.0, 0.25"
    assert "loss weights (gen, OAC, ACC, CCC)" not in ablation["hyperparameters"]
    two_stage = training_summary(InstructionTuningConfig(**common, bf16=False))
    assert two_stage["stage"] == "stage2" and "temperature" not in two_stage["hyperparameters"]
    one_stage = training_summary(InstructionTuningConfig(**common, bf16=False, paradigm="one_stage", temperature=0.1))
    assert one_stage["hyperparameters"]["temperature"] == 0.1
