"""`finedefics run` checks the whole recipe, every section and every type, before any work, and the check does not
depend on what earlier runs left in the working directory."""

from __future__ import annotations

import copy

import pytest
import yaml

from hf_finedefics.pipeline import FinedeficsRun, load_run_config, run_pipeline

from .test_pipeline import SMALL_RECIPE


def _recipe(tmp_path, **changes) -> str:
    recipe = copy.deepcopy(SMALL_RECIPE)
    for section, values in changes.items():
        if section != "data" and isinstance(values, dict) and isinstance(recipe.get(section), dict):
            recipe[section] = {**recipe[section], **values}
        else:
            recipe[section] = values
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return str(path)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"stage2": {"learning_rat": 1e-3}}, r"\['learning_rat'\] in the recipe's `stage2` section"),
        ({"model": {"lora_rank": 8}}, r"\['lora_rank'\] in the recipe's `model` section"),
        (
            {"data": {"build": {"sourc": "bird-200"}}, "base_model": "testing:idefics2"},
            r"\['sourc'\] in the recipe's `data.build` section",
        ),
        ({"data": {"synthetic": {"num_categorie": 3}}}, r"\['num_categorie'\] in the recipe's `data.synthetic`"),
        ({"evaluation": {"batch_sise": 2}}, r"\['batch_sise'\] in the recipe's `evaluation` section"),
        ({"analysis": {"analyses": ["tsne", "magic"]}}, r"magic"),
        ({"seed": "abc"}, r"`seed`.*int.*'abc'"),
        ({"stage1": {"num_train_epochs": "two"}}, r"`stage1.num_train_epochs`.*float.*'two'"),
        ({"variants": "finedefics"}, r"`variants`.*list.*'finedefics'"),
        ({"evaluation": {"batch_size": -1}}, r"`evaluation` section.*batch_size must be at least 1, got -1"),
        ({"evaluation": {"scorers": "likelihood"}}, r"`evaluation.scorers`.*list"),
        (
            {"stage1": {"per_device_train_batch_size": 0}},
            r"`stage1` section.*per_device_train_batch_size must be at least 1, got 0",
        ),
    ],
    ids=[
        "stage2-key",
        "model-key",
        "build-key",
        "synthetic-key",
        "evaluation-key",
        "analysis-value",
        "seed-type",
        "epochs-type",
        "variants-string",
        "batch-size-negative",
        "scorers-string",
        "stage1-batch-zero",
    ],  # fmt: skip
)
def test_recipe_errors_fail_before_any_work(tmp_path, changes, message):
    run_dir = tmp_path / "run"
    with pytest.raises(ValueError, match=message):
        run_pipeline(_recipe(tmp_path, **changes), progress=lambda f, m: None, output_dir=str(run_dir))
    assert not run_dir.exists()  # no data built, nothing trained


def test_unknown_key_check_does_not_depend_on_the_working_directory(tmp_path, monkeypatch):
    """A finished stage I left in ./finedefics-default (the default output_dir) by an earlier `finedefics run` must
    not hide a typo in the recipe's stage1 section."""
    monkeypatch.chdir(tmp_path)
    finished = tmp_path / "finedefics-default" / "finedefics" / "stage1"
    finished.mkdir(parents=True)
    (finished / "adapter_config.json").write_text("{}")
    recipe = copy.deepcopy(SMALL_RECIPE) | {"stage1": {"learning_rat": 1e-3}}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    with pytest.raises(ValueError, match=r"\['learning_rat'\] in the recipe's `stage1` section"):
        FinedeficsRun(load_run_config(tmp_path / "recipe.yaml"))
