"""A kill at any point of the stage I merge leaves either no merged base or a complete one: the next stage II run
merges again (with a warning for a half-written folder) instead of loading a base that has only its config."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import (
    AutoProcessor,
    GenerationConfig,
    PretrainedConfig,
    ProcessorMixin,
    modeling_utils,
)

from hf_finedefics.testing import create_tiny_checkpoint
from hf_finedefics.trainer.instruction_tuning_config import InstructionTuningConfig
from hf_finedefics.trainer.instruction_tuning_trainer import prepare_stage2_base
from hf_finedefics.trainer.model_config import FinedeficsModelConfig
from tests.kills import Killed, kill_at
from tests.stage2.conftest import make_stage1_adapter

# A merge writes the config, the generation config, the weights, the processor (then, with the fix, a marker and
# a rename); a kill can fall between any two of them.
MERGE_WRITES = [(PretrainedConfig, "save_pretrained"), (GenerationConfig, "save_pretrained"),
                (modeling_utils, "safe_save_file"), (ProcessorMixin, "save_pretrained"), (Path, "write_text"),
                (Path, "rename"), (shutil, "rmtree")]  # fmt: skip


@pytest.fixture(scope="module")
def stage1_adapter(tmp_path_factory) -> Path:
    return make_stage1_adapter(create_tiny_checkpoint("idefics2"), tmp_path_factory.mktemp("stage1"))


def _merged_base(stage1_adapter: Path, output_dir: Path) -> Path:
    args = InstructionTuningConfig(output_dir=str(output_dir), stage1_adapter=str(stage1_adapter), use_cpu=True)
    return Path(prepare_stage2_base(FinedeficsModelConfig(), args))


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "model.safetensors")


def test_killed_merge_is_redone(stage1_adapter, tmp_path, monkeypatch):
    reference = _weights(_merged_base(stage1_adapter, tmp_path / "reference" / "stage2"))
    step = 0
    while True:
        step += 1
        output_dir = tmp_path / str(step) / "stage2"
        with monkeypatch.context() as patch:
            reached = kill_at(patch, step, MERGE_WRITES)
            try:
                merged = _merged_base(stage1_adapter, output_dir)
                finished = True
            except Killed:
                finished = False
        merged = Path(f"{output_dir}-stage1-merged")
        if merged.exists():  # a kill leaves no merged base, or a complete one
            assert _weights(merged).keys() == reference.keys(), f"killed at step {step}"
        again = _merged_base(stage1_adapter, output_dir)  # the rerun gets past any kill
        weights = _weights(again)
        assert weights.keys() == reference.keys() and all(torch.equal(weights[n], reference[n]) for n in weights)
        AutoProcessor.from_pretrained(again)
        if finished:
            break
    assert reached[0] >= 3


def test_half_written_merge_from_before_is_redone_with_a_warning(stage1_adapter, tmp_path, caplog):
    """What a kill left with the earlier code: the merged folder with its config.json only."""
    reference = _merged_base(stage1_adapter, tmp_path / "reference" / "stage2")
    merged = tmp_path / "stage2-stage1-merged"
    merged.mkdir()
    shutil.copy(reference / "config.json", merged / "config.json")
    with caplog.at_level(logging.WARNING):
        again = _merged_base(stage1_adapter, tmp_path / "stage2")
    assert f"{merged} is an incomplete merge" in caplog.text
    assert _weights(again).keys() == _weights(reference).keys()
    AutoProcessor.from_pretrained(again)
