"""Experiment trackers (`report_to`): a tracker that is not installed fails in one line before any model loads,
`finedefics run` hands its trackers to every stage, and a run's evaluation results reach TensorBoard beside the
training's."""

import json
import os
import subprocess
import sys

import pytest
import yaml

from hf_finedefics.cli import console_main
from hf_finedefics.cli import main as finedefics
from hf_finedefics.run.pipeline import FinedeficsRun, load_run_config
from hf_finedefics.testing import create_tiny_checkpoint
from tests.conftest import synthetic_triples, tensorboard_scalars
from tests.pipeline.test_pipeline import SMALL_RECIPE

MISSING = 'report_to {name}: {name} is not installed; install it with pip install "hf-finedefics[{name}]".'


def _refusal(argv, monkeypatch, capsys) -> str:
    """The line `finedefics ...` (the installed executable's entry) ends with when it refuses, with no traceback."""
    monkeypatch.setattr("sys.argv", ["finedefics", *argv])
    with pytest.raises(SystemExit) as exit_info:
        console_main()
    message = exit_info.value.code if isinstance(exit_info.value.code, str) else capsys.readouterr().err
    assert "Traceback" not in message
    return message.splitlines()[-1]


def _uninstall(monkeypatch, name):
    """Make `name` look not installed: an import of it, and the lookup transformers checks, find nothing."""
    for module in {"tensorboard": ("tensorboard", "tensorboardX"), "trackio": ("trackio",)}[name]:
        monkeypatch.setitem(sys.modules, module, None)


@pytest.mark.parametrize("name", ["tensorboard", "trackio"])
def test_a_stage_asking_for_a_tracker_not_installed_fails_in_one_line_before_its_model_loads(
    name, tmp_path, monkeypatch, capsys
):
    # A real model and data: without the check the model loads, and the Trainer raises a RuntimeError once built.
    synthetic_triples(num_categories=4, train_per_category=2, test_per_category=1).save_to_disk(tmp_path / "triples")
    _uninstall(monkeypatch, name)
    argv = ["stage1", "--dataset_name", str(tmp_path / "triples")]
    argv += ["--model_name_or_path", str(create_tiny_checkpoint("idefics2")), "--output_dir", str(tmp_path / "out")]
    argv += ["--max_steps", "1", "--use_cpu", "true", "--report_to", name]
    assert _refusal(argv, monkeypatch, capsys).endswith(MISSING.format(name=name))
    assert not (tmp_path / "out").exists()


def test_a_run_asking_for_a_tracker_not_installed_fails_in_one_line_before_any_work(tmp_path, monkeypatch, capsys):
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump({**SMALL_RECIPE, "report_to": "trackio"}))
    _uninstall(monkeypatch, "trackio")
    argv = ["run", "--config", str(tmp_path / "recipe.yaml"), "--output_dir", str(tmp_path / "run")]
    assert _refusal(argv, monkeypatch, capsys).endswith(MISSING.format(name="trackio"))
    assert not (tmp_path / "run").exists()


def test_evaluation_refuses_a_tracker_it_cannot_log_to(monkeypatch, capsys):
    argv = ["evaluate", "--model_name_or_path", "unused", "--sources", "pet-37", "--report_to", "wandb"]
    assert _refusal(argv, monkeypatch, capsys).endswith(
        "--report_to ['wandb']: evaluation logs to tensorboard, trackio."
    )


def test_a_run_hands_its_trackers_to_every_stage_unless_the_stage_sets_its_own(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(SMALL_RECIPE))
    assert FinedeficsRun(load_run_config(recipe)).stage_args("finedefics", "stage2").report_to == []  # the default
    stage1 = {**SMALL_RECIPE["stage1"], "report_to": "none"}
    recipe.write_text(yaml.safe_dump({**SMALL_RECIPE, "report_to": "tensorboard", "stage1": stage1}))
    run = FinedeficsRun(load_run_config(recipe, output_dir=str(tmp_path / "my-run")))
    stage2 = run.stage_args("finedefics", "stage2")
    assert stage2.report_to == ["tensorboard"] and run.stage_args("finedefics", "stage1").report_to == []
    # In a tracker the run is a project, each of its stages a run of it.
    assert (stage2.project, stage2.run_name) == ("my-run", "finedefics-stage2")


def test_a_run_logs_training_and_evaluation_to_tensorboard(tmp_path):
    recipe = {
        **SMALL_RECIPE,
        "base_model": "testing:idefics2",
        "variants": ["zero_shot", "instruction_tuning"],
        "report_to": "tensorboard",
        "evaluation": {"tasks": ["multiple_choice"], "scorers": ["likelihood"]},
        "analysis_variants": [],
    }
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    run = tmp_path / "run"
    finedefics(["run", "--config", str(tmp_path / "recipe.yaml"), "--output_dir", str(run)])
    (training,) = (run / "instruction_tuning" / "stage2" / "runs").iterdir()
    assert "train/train_loss" in tensorboard_scalars(training)  # the Trainer's own TensorBoard callback
    accuracies = json.loads((run / "table3.json").read_text())
    for variant in recipe["variants"]:
        scalars = tensorboard_scalars(run / "evaluation" / "runs" / variant)
        assert scalars == {"test/synthetic/likelihood": pytest.approx(accuracies[variant]["likelihood"])}


def test_results_reach_trackio(tmp_path):
    pytest.importorskip("trackio", reason="the trackio extra is not installed")
    # In a process of its own: Trackio fixes its storage folder ($TRACKIO_DIR) when it is imported.
    script = (
        "import json; from hf_finedefics.tracking import log_metrics; "
        "from trackio.sqlite_storage import SQLiteStorage; "
        "log_metrics(['trackio'], {'test/pet-37/likelihood': 50.0}, '', 'my-run', 'tiny-evaluation'); "
        "print(json.dumps(SQLiteStorage.get_logs('my-run', 'tiny-evaluation')))"
    )
    env = {**os.environ, "TRACKIO_DIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    (logged,) = json.loads(result.stdout.splitlines()[-1])
    assert logged["test/pet-37/likelihood"] == 50.0
