"""`hf_finedefics.scripts.evaluate` on 2 CPU processes (gloo) writes the report, predictions and summaries of a
one-process run. torchrun launches them: on CPU `accelerate launch` starts several processes only through MPI; on GPUs
it starts them as torchrun does."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hf_finedefics.testing import create_tiny_checkpoint

from .conftest import CLASS_NAMES, make_native_dataset

REPO_ROOT = Path(__file__).resolve().parents[2]


def _evaluate(launcher: list[str], arguments: list[str], output_dir: Path) -> None:
    # The repository root first, so the processes import this checkout's package.
    pythonpath = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": pythonpath, "HF_HUB_OFFLINE": "1"}
    command = [*launcher, "-m", "hf_finedefics.scripts.evaluate", *arguments, "--output_dir", str(output_dir)]
    subprocess.run(command, check=True, env=env, timeout=480, cwd=REPO_ROOT)


def _results(output_dir: Path) -> dict[str, str]:
    """Every prediction and summary file (by path under `output_dir`) and the report, as text."""
    files = [
        *output_dir.glob("predictions/*/*.jsonl"),
        *output_dir.glob("summaries/*/*.json"),
        output_dir / "report.json",
    ]
    return {str(path.relative_to(output_dir)): path.read_text() for path in files}


@pytest.mark.slow
def test_two_processes_write_the_report_of_one(tmp_path):
    if shutil.which("torchrun") is None:
        pytest.skip("torchrun is not on PATH")
    # One image per class: 5 items, so the two processes' shards differ in size.
    options_file = make_native_dataset("pet-37", tmp_path / "pet-37", images_per_class=1)
    arguments = ["--model_name_or_path", str(create_tiny_checkpoint("llava", tmp_path / "tiny"))]
    arguments += ["--sources", "pet-37", "--data_dir", str(tmp_path), "--options_files", f"pet-37={options_file}"]
    # One question per forward pass: a batch's padding would depend on which items share it.
    arguments += ["--task", "multiple_choice", "open_set", "--batch_size", "1", "--max_new_tokens", "3"]
    arguments += ["--model_name", "tiny"]

    _evaluate([sys.executable], arguments, tmp_path / "one")
    _evaluate(["torchrun", "--standalone", "--nproc_per_node", "2"], arguments, tmp_path / "two")

    one, two = _results(tmp_path / "one"), _results(tmp_path / "two")
    # The report; per scorer (3, and open set) its predictions and summary; the open-set answers' scores.
    assert len(one) == 1 + 2 * 4 + 1
    assert two.keys() >= one.keys()
    for name, text in one.items():
        assert two[name] == text, name
    predictions = [json.loads(line) for line in one["predictions/tiny/pet-37.generation.jsonl"].splitlines()]
    assert [record["groundtruth"] for record in predictions] == CLASS_NAMES
    # Each process scored every other item into its shard; the shards were merged into the caches and removed.
    assert not list((tmp_path / "two" / "cache").rglob("*.rank*.jsonl"))
    images = [record["image"] for record in predictions]
    for cache in (tmp_path / "two").glob("cache/*/*.jsonl"):
        assert [json.loads(line)["image"] for line in cache.read_text().splitlines()] == images[0::2] + images[1::2]
