"""`finedefics run` checks the whole recipe, every section and every type, before any work, and the check does not
depend on what earlier runs left in the working directory."""

from __future__ import annotations

import copy
import re

import pytest
import yaml

from hf_finedefics.run.pipeline import FinedeficsRun, load_run_config, run_pipeline

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


def _tokenizer_less_model(tmp_path) -> str:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    return str(folder)


def _adapter_without_base(tmp_path) -> str:
    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "adapter_config.json").write_text('{"peft_type": "LORA", "r": 8}')
    return str(folder)


# (recipe changes, or a function of tmp_path giving base_model) -> what the one line must say. Each was once
# refused late (after the data build, world pretraining or training), as a traceback, or not at all.
CLI_CASES = {
    "learning-rate-nan": ({"stage1": {"learning_rate": float("nan")}}, r"`stage1.learning_rate` must be a finite float, got nan"),
    "epochs-inf": ({"stage2": {"num_train_epochs": float("inf")}}, r"`stage2.num_train_epochs` must be a finite float, got inf"),
    "dtype-int8": ({"model": {"dtype": "int8"}}, r"`model` section.*dtype must be one of auto, float32.*'int8'"),
    "lora-r-zero": ({"model": {"lora_r": 0}}, r"`model` section.*lora_r must be at least 1, got 0"),
    "lora-dropout-2": ({"model": {"lora_dropout": 2}}, r"`model` section.*lora_dropout must be in \[0, 1\), got 2"),
    "processor-kwargs-maybe": (
        {"model": {"processor_kwargs": {"do_image_splitting": "maybe"}}},
        r"processor_kwargs.do_image_splitting must be true or false, got 'maybe'",
    ),
    "scorers-empty": ({"evaluation": {"scorers": []}}, r"`evaluation` section.*scorers is empty"),
    "tasks-empty": ({"evaluation": {"tasks": []}}, r"`evaluation` section.*tasks is empty"),
    "open-set-with-confusion": (
        {"evaluation": {"tasks": ["open_set"]}},
        r"analysis.analyses has confusion.*evaluation.tasks is \['open_set'\]",
    ),
    "synthetic-null": ({"data": {"synthetic": None}}, r"`data.synthetic` must be a mapping \(\{\} for the defaults\), got None"),
    "seed-list": ({"seed": [1, 2]}, r"`seed` must be a finite int, got \[1, 2\]"),
    "variants-string": ({"variants": "finedefics"}, r"`variants` must be a list of str, got 'finedefics'"),
    "variants-empty": ({"variants": []}, r"variants is empty"),
    "stage1-max-steps-zero": ({"stage1": {"max_steps": 0}}, r"`stage1` section.*max_steps must be positive.*got 0"),
    "stage2-epochs-zero": (
        {"stage2": {"max_steps": -1, "num_train_epochs": 0}},
        r"`stage2` section.*num_train_epochs is 0.0 and max_steps is unset: nothing would be trained",
    ),
    "base-model-missing-path": ({"base_model": "/nonexistent/model"}, r"base_model: /nonexistent/model does not exist"),
    "base-model-without-tokenizer": (_tokenizer_less_model, r"base_model: .*model has no tokenizer"),
    "adapter-without-base": (_adapter_without_base, r"base_model: .*adapter_config.json has no base_model_name_or_path"),
}  # fmt: skip


def _console_error(argv, monkeypatch, capsys) -> str:
    """What `finedefics ...` (the installed executable's entry) prints when it refuses, checked to be one line."""
    from hf_finedefics.cli import console_main

    monkeypatch.setattr("sys.argv", ["finedefics", *argv])
    with pytest.raises(SystemExit) as exit_info:
        console_main()
    message = exit_info.value.code if isinstance(exit_info.value.code, str) else capsys.readouterr().err
    # argparse prints its usage above a parse error; what the user reads is the one error line.
    lines = [line for line in message.splitlines() if line.startswith("finedefics")]
    assert len(lines) == 1 and "Traceback" not in message, message
    return lines[0]


@pytest.mark.parametrize("changes, message", list(CLI_CASES.values()), ids=list(CLI_CASES))
def test_recipe_errors_are_one_line_from_the_cli_before_any_work(tmp_path, monkeypatch, capsys, changes, message):
    monkeypatch.setenv("HF_FINEDEFICS_CACHE", str(tmp_path / "cache"))  # nothing pretrained into the shared cache
    if callable(changes):
        changes = {"base_model": changes(tmp_path)}
    run_dir = tmp_path / "run"
    error = _console_error(
        ["run", "--config", _recipe(tmp_path, **changes), "--output_dir", str(run_dir)], monkeypatch, capsys
    )
    assert re.search(message, error), error
    assert not run_dir.exists() and not (tmp_path / "cache").exists()


def test_a_config_that_is_a_folder_or_bad_yaml_is_one_line_naming_it(tmp_path, monkeypatch, capsys):
    error = _console_error(["run", "--config", str(tmp_path)], monkeypatch, capsys)
    assert f"--config {tmp_path} is a folder" in error
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("seed: 1\nstage1: {max_steps: 2\n")
    error = _console_error(["run", "--config", str(recipe)], monkeypatch, capsys)
    assert re.search(rf"--config {recipe} is not valid YAML at line 3, column 1", error), error


def test_debug_shows_the_traceback(tmp_path, monkeypatch):
    from hf_finedefics.cli import console_main

    monkeypatch.setenv("FINEDEFICS_DEBUG", "1")
    monkeypatch.setattr("sys.argv", ["finedefics", "run", "--config", str(tmp_path)])
    with pytest.raises(FileNotFoundError, match="is a folder"):
        console_main()


def test_a_truncated_parquet_shard_is_named_before_any_work(tmp_path, monkeypatch, capsys):
    from dataset_builders.build import build_synthetic_dataset
    from dataset_builders.sources.synthetic import SyntheticFGVRConfig
    from hf_finedefics.data.loading import load_dataset_split

    config = SyntheticFGVRConfig(num_categories=4, train_per_category=1, test_per_category=1)
    built = build_synthetic_dataset(config, tmp_path / "data", tmp_path / "source")
    shard = next((built / "instructions").rglob("*.parquet"))
    shard.write_bytes(shard.read_bytes()[:100])  # a copy cut short
    run_dir = tmp_path / "run"
    recipe = _recipe(tmp_path, base_model="testing:idefics2", data={"dataset": str(built)})
    error = _console_error(["run", "--config", recipe, "--output_dir", str(run_dir)], monkeypatch, capsys)
    assert f"{shard} is not a readable parquet file" in error
    assert not run_dir.exists()
    with pytest.raises(ValueError, match=f"{shard} is not a readable parquet file"):
        load_dataset_split(built, "instructions")
