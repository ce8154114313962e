"""Sharing a stage II adapter: its base is a local merge of the stage I adapter into the original base, so
`push-adapter` uploads what rebuilding it needs, and the repo loads in one call in a fresh, offline process with the
same logits as the local stage II folder.

The Hub upload is replaced (`conftest.FakeHub`); the uploaded files are laid out in a folder standing in for the
repo, and the original base is served from a local Hub cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import huggingface_hub
import pytest
import torch
from peft import get_peft_model
from transformers import AutoModelForImageTextToText, AutoProcessor

from hf_finedefics.backbones import get_backbone
from hf_finedefics.cli import main as cli
from hf_finedefics.hub import TRAINING_SUMMARY_NAME, training_summary
from hf_finedefics.modeling import STAGES_NAME, load_finedefics_model, merge_adapter, record_relative_base_model
from hf_finedefics.testing import create_tiny_checkpoint
from hf_finedefics.trainer.instruction_tuning_config import InstructionTuningConfig

from .conftest import REPO_ROOT, leaks, publish_to_local_cache

REPO_ID = "your-hf-user/finedefics-tiny-stage2"
BASE_REPO_ID = "your-hf-user/tiny-idefics2"
PROMPT = "A photo of a small bird with a red crown."
# Loads each repo folder given (offline) and saves its logits on PROMPT: the fresh process of the round trip.
LOAD_SCRIPT = """
import sys, torch
from hf_finedefics.modeling import load_finedefics_model
logits = {}
for folder in sys.argv[2:]:
    model, processor = load_finedefics_model(folder)
    inputs = processor.tokenizer(sys.argv[1], return_tensors="pt")
    with torch.no_grad():
        logits[folder] = model(**inputs).logits
torch.save(logits, "logits.pt")
"""


def _trained_adapter(model, seed: int):
    """`model` with a LoRA whose weights are random (a fresh LoRA is the identity, which would hide a lost stage)."""
    model = get_peft_model(model, get_backbone(model).lora_config())
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.2)
    return model


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A run folder as `finedefics stage1` / `stage2` leave it: stage1/, stage2-stage1-merged/ and stage2/, whose
    adapter records its merged base as ../stage2-stage1-merged."""
    tiny_base = create_tiny_checkpoint("idefics2")
    run = tmp_path_factory.mktemp("run")
    processor = AutoProcessor.from_pretrained(tiny_base)
    _trained_adapter(AutoModelForImageTextToText.from_pretrained(tiny_base), seed=1).save_pretrained(run / "stage1")
    processor.save_pretrained(run / "stage1")
    merged = merge_adapter(run / "stage1", run / "stage2-stage1-merged")
    stage2 = _trained_adapter(AutoModelForImageTextToText.from_pretrained(merged), seed=2)
    stage2.save_pretrained(run / "stage2")
    processor.save_pretrained(run / "stage2")
    args = InstructionTuningConfig(
        output_dir=str(run / "stage2"), stage1_adapter=str(run / "stage1"), bf16=False, use_cpu=True
    )
    (run / "stage2" / TRAINING_SUMMARY_NAME).write_text(json.dumps(training_summary(args)))
    record_relative_base_model(run / "stage2", run)
    assert json.loads((run / "stage2" / "adapter_config.json").read_text())["base_model_name_or_path"] == (
        "../stage2-stage1-merged"
    )
    return run


def _logits(model, processor) -> torch.Tensor:
    with torch.no_grad():
        return model(**processor.tokenizer(PROMPT, return_tensors="pt")).logits


def _push(run_dir: Path, fake_hub, repo: Path, *flags: str) -> set[str]:
    cli(["push-adapter", "--adapter", str(run_dir / "stage2"), "--repo-id", REPO_ID,
         "--model_name_or_path", BASE_REPO_ID, *flags])  # fmt: skip
    upload = fake_hub.uploads[-1]
    upload.write_to(repo)
    return upload.files


def test_pushed_stage2_repos_load_in_a_fresh_process_with_the_local_logits(run_dir, fake_hub, tmp_path):
    with_stage1 = _push(run_dir, fake_hub, tmp_path / "repo-stage1")
    with_merged = _push(run_dir, fake_hub, tmp_path / "repo-merged", "--upload_merged_base")

    # By default no full model is shipped, only the two adapters; the merged base only when asked.
    assert {"adapter_model.safetensors", "stage1/adapter_model.safetensors", STAGES_NAME} <= with_stage1
    assert not any(name.endswith(("model.safetensors.index.json", "/model.safetensors")) for name in with_stage1)
    assert "stage1-merged/model.safetensors" in with_merged and not any(n.startswith("stage1/") for n in with_merged)
    assert leaks(fake_hub.uploads, tmp_path, run_dir, create_tiny_checkpoint("idefics2")) == []
    for upload in fake_hub.uploads:  # every adapter in the repo names the Hub base, nothing local
        for name in upload.files:
            if name.endswith("adapter_config.json"):
                assert json.loads(upload.contents[name])["base_model_name_or_path"] == BASE_REPO_ID

    cache = tmp_path / "hub-cache"
    tiny_base = create_tiny_checkpoint("idefics2")
    publish_to_local_cache(cache, BASE_REPO_ID, tiny_base, {path.name for path in tiny_base.iterdir()})
    env = os.environ | {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), "PYTHONPATH": str(REPO_ROOT)}
    folders = [str(tmp_path / "repo-stage1"), str(tmp_path / "repo-merged")]
    subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT, PROMPT, *folders], cwd=tmp_path, env=env, check=True, timeout=300
    )
    loaded = torch.load(tmp_path / "logits.pt")

    expected = _logits(*load_finedefics_model(run_dir / "stage2"))
    without_stage1 = _logits(*load_finedefics_model(tiny_base, run_dir / "stage2"))
    assert not torch.allclose(expected, without_stage1)  # the stage I merge matters here
    for folder in folders:
        torch.testing.assert_close(loaded[folder], expected, msg=folder)


def test_stage2_card_says_how_it_loads(run_dir, fake_hub, tmp_path):
    _push(run_dir, fake_hub, tmp_path / "repo")
    card = fake_hub.uploads[0].card()
    assert card.data.base_model == BASE_REPO_ID
    assert f'load_finedefics_model("{REPO_ID}")' in card.text
    assert "stage1/" in card.text


def test_a_moved_stage1_adapter_is_named_or_refused(run_dir, fake_hub, tmp_path):
    stage1 = run_dir / "stage1"
    moved = tmp_path / "moved-stage1"
    stage1.rename(moved)
    try:
        with pytest.raises(FileNotFoundError, match="--stage1_adapter"):
            _push(run_dir, fake_hub, tmp_path / "repo")
        files = _push(run_dir, fake_hub, tmp_path / "repo", "--stage1_adapter", str(moved))
    finally:
        moved.rename(stage1)
    assert "stage1/adapter_model.safetensors" in files


def test_merging_a_pushed_stage2_repo_keeps_stage1(run_dir, fake_hub, tmp_path, monkeypatch):
    """`finedefics merge` on the repo folds base + stage I + stage II, not stage II onto the bare base."""
    _push(run_dir, fake_hub, tmp_path / "repo")
    cache = tmp_path / "hub-cache"
    tiny_base = create_tiny_checkpoint("idefics2")
    publish_to_local_cache(cache, BASE_REPO_ID, tiny_base, {path.name for path in tiny_base.iterdir()})
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)

    merged = merge_adapter(tmp_path / "repo", tmp_path / "merged")

    expected = _logits(*load_finedefics_model(run_dir / "stage2"))
    # merging stage II into the weights changes the float rounding, not more
    torch.testing.assert_close(_logits(*load_finedefics_model(merged)), expected, atol=1e-4, rtol=1e-4)
