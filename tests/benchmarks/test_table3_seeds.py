"""benchmarks/table3_seeds.py and benchmarks/stage1_alignment.py run end to end on a tiny recipe."""

import importlib.util
import json
from pathlib import Path

import yaml

from tests.pipeline.test_pipeline import SMALL_RECIPE

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_world_by_seed_grid_then_its_stage1_curves(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_FINEDEFICS_CACHE", str(tmp_path / "cache"))
    recipe = tmp_path / "recipe.yaml"
    # Stage I logs every step and checkpoints at its end: the curves are read from the checkpoint's trainer state.
    stage1 = {**SMALL_RECIPE["stage1"], "logging_steps": 1, "save_strategy": "steps", "save_steps": 2}
    recipe.write_text(yaml.safe_dump({**SMALL_RECIPE, "stage1": stage1}))
    output = tmp_path / "grid"
    variants = ["zero_shot", "instruction_tuning", "finedefics", "stage1_only"]
    summary = _load("table3_seeds").main(
        ["--recipe", str(recipe), "--world-seeds", "0", "1", "--seeds", "0", "--variants", *variants]
        + ["--output-dir", str(output)]
    )
    assert list(summary["results"]) == ["world 0, seed 0", "world 1, seed 0"]
    # Paired within each (world, seed): one difference per pair.
    assert len(summary["paired_differences"]["finedefics - instruction_tuning"]["name_likelihood"]) == 2
    for pair in summary["results"].values():
        assert {"alignment_mean_cosine", "alignment_gap"} <= set(pair["stage1_only"])
    assert (output / "table3_seeds.png").stat().st_size > 0
    assert json.loads((output / "summary.json").read_text())["world_seeds"] == [0, 1]
    assert "Object-category alignment (Table 8" in capsys.readouterr().out

    # The curves reuse the grid's finished stage I (no second training) and keep the grid's summary.
    stage1 = output / "world-0" / "seed-0" / "finedefics" / "stage1" / "adapter_model.safetensors"
    before = stage1.stat().st_mtime_ns
    curves = _load("stage1_alignment").main(
        ["--recipe", str(recipe), "--world-seeds", "0", "--variants", "finedefics", "--output-dir", str(output)]
    )
    assert stage1.stat().st_mtime_ns == before
    assert "accuracy_attribute_to_category" in curves["final"]["finedefics"]
    assert (output / "stage1_alignment.png").stat().st_size > 0 and (output / "summary.json").is_file()


def test_a_grid_with_stage3_then_its_rewards_and_answer_positions(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_FINEDEFICS_CACHE", str(tmp_path / "cache"))
    recipe = tmp_path / "recipe.yaml"
    # Stage III logs every step and checkpoints at its end: the rewards are read from the checkpoint's trainer state.
    stage3 = {
        **SMALL_RECIPE["stage2"],
        "num_generations": 2,
        "max_completion_length": 4,
        "bf16": False,
        "logging_steps": 1,
        "save_strategy": "steps",
        "save_steps": 2,
    }
    recipe.write_text(yaml.safe_dump({**SMALL_RECIPE, "stage3": stage3}))
    output = tmp_path / "grid"
    summary = _load("table3_seeds").main(
        ["--recipe", str(recipe), "--world-seeds", "0", "--seeds", "0", "--output-dir", str(output)]
        + ["--variants", "instruction_tuning", "instruction_tuning_rl", "--alignment-variants"]
    )
    assert len(summary["paired_differences"]["instruction_tuning_rl - instruction_tuning"]["likelihood"]) == 1

    rewards = _load("stage3_rewards").main(["--output-dir", str(output), "--variants", "instruction_tuning_rl"])
    measures = rewards["final"]["instruction_tuning_rl"]
    assert len(rewards["histories"]["instruction_tuning_rl"]["world-0/seed-0"]) == 2  # one entry per step
    assert measures["seconds_per_step"][0] > 0
    for scorer in ("likelihood", "generation", "name_likelihood"):
        for key in ("before", "after"):
            assert 0 <= measures[f"position_bias_{key}_{scorer}"][0] <= 100
    assert (output / "stage3_rewards.png").stat().st_size > 0
