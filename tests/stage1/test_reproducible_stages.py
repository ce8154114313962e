"""The seed makes both stages reproducible: two fresh runs of the same recipe give bit-identical adapters on CPU,
whatever the global random state before them (the LoRA weights are initialised from the seed, not from it)."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from hf_finedefics.cli import main as cli
from hf_finedefics.testing import create_tiny_checkpoint

from ..conftest import synthetic_triples
from ..stage2.conftest import instruction_rows

TINY_RUN = ["--max_steps", "1", "--per_device_train_batch_size", "2", "--warmup_steps", "0", "--report_to", "none",
            "--use_cpu", "true", "--save_strategy", "no", "--seed", "3"]  # fmt: skip


@pytest.mark.parametrize("stage", ["stage1", "stage2"])
def test_two_fresh_runs_give_bit_identical_adapters(stage, tmp_path):
    data = tmp_path / "data"
    if stage == "stage1":
        synthetic_triples(num_categories=4, train_per_category=1, test_per_category=1).save_to_disk(data / "triples")
    else:
        instruction_rows(num_images=2).save_to_disk(data / "instructions")
    base = str(create_tiny_checkpoint("idefics2"))
    adapters = []
    for run, global_seed in (("a", 1), ("b", 2)):
        torch.manual_seed(global_seed)  # what another process, or earlier work in this one, leaves behind
        extra = ["--bf16", "false"] if stage == "stage2" else []
        cli([stage, "--model_name_or_path", base, "--dataset_name", str(data),
             "--output_dir", str(tmp_path / run), *TINY_RUN, *extra])  # fmt: skip
        adapters.append(load_file(tmp_path / run / "adapter_model.safetensors"))
    first, second = adapters
    assert first.keys() == second.keys() and first
    different = [name for name in first if not torch.equal(first[name], second[name])]
    assert not different, f"{len(different)} of {len(first)} adapter tensors differ, e.g. {different[0]}"
