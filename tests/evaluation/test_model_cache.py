"""Results are cached by what produced them (the model's weights and processor, and the scoring settings), not by
the model's name: a second model evaluated under the default name of a first is scored on its own."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from hf_finedefics.cli import main as finedefics
from hf_finedefics.testing import create_tiny_checkpoint

from .conftest import make_native_dataset


def _evaluate(model: Path, data_dir: Path, options_file: Path, output_dir: Path) -> None:
    """`finedefics evaluate` with the default model name: the folder's, "tiny" for both models here."""
    finedefics(
        ["evaluate", "--model_name_or_path", str(model), "--sources", "pet-37", "--data_dir", str(data_dir)]
        + ["--options_files", f"pet-37={options_file}", "--output_dir", str(output_dir), "--scorers", "likelihood"]
    )


def _named_results(output_dir: Path) -> tuple[list[dict], dict]:
    lines = (output_dir / "predictions" / "tiny" / "pet-37.likelihood.jsonl").read_text().splitlines()
    report = json.loads((output_dir / "report.json").read_text())
    return [json.loads(line) for line in lines], report["rows"]


def test_two_models_under_one_default_name_are_scored_each_on_its_own(tmp_path):
    first, second = (
        Path(shutil.copytree(create_tiny_checkpoint("llava", seed=seed), tmp_path / name / "tiny"))
        for seed, name in ((0, "first"), (1, "second"))
    )
    options_file = make_native_dataset("pet-37", tmp_path / "data" / "pet-37")
    alone = {}
    for model in (first, second):  # each model evaluated in a folder of its own
        _evaluate(model, tmp_path / "data", options_file, tmp_path / f"alone-{model.parent.name}")
        alone[model] = _named_results(tmp_path / f"alone-{model.parent.name}")
    assert alone[first][0] != alone[second][0]  # the two models answer differently

    shared = tmp_path / "shared"
    for model in (first, second, first):  # the first again: its cached results, not the second's
        _evaluate(model, tmp_path / "data", options_file, shared)
        assert _named_results(shared) == alone[model]
    # Each model's results were scored once (a rerun resumes), under its own fingerprint.
    caches = sorted((shared / "cache").glob("*/pet-37.likelihood.*.jsonl"))
    assert len(caches) == 2 and all(len(path.read_text().splitlines()) == len(alone[first][0]) for path in caches)
    # The second moved the first's named files aside, then the first the second's.
    assert len(list((shared / "superseded").iterdir())) == 2
