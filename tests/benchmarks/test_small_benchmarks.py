"""Every script under benchmarks/ runs end to end, as a user runs it, at a tiny scale (benchmarks/stage1_step.py once
failed at its first step, unnoticed: nothing ran it). gpu_scale, table3_seeds, stage1_alignment and stage3_rewards
have tests of their own."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.pipeline.test_pipeline import SMALL_RECIPE

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
TESTED_ELSEWHERE = {"gpu_scale", "table3_seeds", "stage1_alignment", "stage3_rewards"}
ONE_THREAD = ["--threads", "1"]
# script -> (its tiny-scale arguments, a line its report prints); "RECIPE" stands for a small run recipe.
RUNS = {
    "attribute_construction": (
        ["--images", "4", "--max-new-tokens", "2", "--batch-size", "2", *ONE_THREAD],
        r"warm  cache: +[\d.]+ s +[\d.]+ images/s",
    ),
    "cli_help": (["--repeats", "1", "demo"], r"demo +[\d.]+  trl"),
    "eval_scoring": (
        ["--num-items", "4", "--batch-size", "2", "--max-new-tokens", "2", "--repeats", "1", *ONE_THREAD],
        r"likelihood / generation: [\d.]+x",
    ),
    "hard_negative_mining": (
        ["--images", "500", "--classes", "20", "--dim", "16", "--chunk-size", "128", *ONE_THREAD],
        r"clip mining: +[\d.]+ s",
    ),
    "stage1_step": (["--batch-size", "2", "--steps", "1", *ONE_THREAD], r"ratio stage I / plain *: +[\d.]+"),
    # One environment (the one running the tests) stands for the two the benchmark compares.
    "torch_builds": (
        ["--python", sys.executable, "--rounds", "1", "--world-steps", "6"],
        r"scoring +items/s +[\d.]+",
    ),
    "world_base": (["--recipe", "RECIPE", "--world", "max_steps=2"], r"zero-shot generation: [\d.]+ %"),
}


def test_every_benchmark_has_a_tiny_run():
    assert {path.stem for path in BENCHMARKS.glob("*.py")} == set(RUNS) | TESTED_ELSEWHERE


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """One cache of tiny checkpoints and world bases for all the runs."""
    return tmp_path_factory.mktemp("cache")


@pytest.mark.parametrize("script", RUNS)
def test_a_benchmark_runs_at_a_tiny_scale(script, cache, tmp_path):
    arguments, report = RUNS[script]
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(SMALL_RECIPE))
    arguments = [str(recipe) if argument == "RECIPE" else argument for argument in arguments]
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / f"{script}.py"), *arguments],
        capture_output=True,
        text=True,
        timeout=300,  # each takes seconds; a benchmark that fails can leave a child holding its output open
        cwd=tmp_path,
        env={**os.environ, "HF_FINEDEFICS_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(report, result.stdout), result.stdout[-3000:]
