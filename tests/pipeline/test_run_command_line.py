"""`finedefics run` changed from the command line: any recipe key as `--SECTION.KEY VALUE` (or a section's keys as
one mapping), the resolved recipe printed with `--print_config`, ready to pass back with `--config`."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from hf_finedefics.cli import main as finedefics
from hf_finedefics.run.pipeline import FinedeficsRun, load_run_config


@pytest.fixture(autouse=True)
def _in_scratch_folder(tmp_path, monkeypatch):
    """Printing the recipe must write nothing: the default output folder would appear here."""
    monkeypatch.chdir(tmp_path)
    yield
    assert not (tmp_path / "finedefics-default").exists()


def printed_recipe(capsys, *flags: str) -> dict:
    finedefics(["run", *flags, "--print_config"])
    return yaml.safe_load(capsys.readouterr().out)


def embedded() -> dict:
    return dataclasses.asdict(load_run_config())


def test_dotted_flags_set_any_recipe_key(capsys):
    printed = printed_recipe(
        capsys,
        "--stage1.learning_rate", "1e-4",
        "--model.lora_r", "16",
        "--model.processor_kwargs.do_image_splitting", "true",
        "--data.synthetic.num_categories=5",
        "--evaluation.scorers", "[generation]",
        "--seed", "3",
    )  # fmt: skip
    expected = embedded()
    expected["stage1"]["learning_rate"] = "1e-4"  # as given; the recipe check reads it as the float it is
    expected["model"] |= {"lora_r": 16, "processor_kwargs": {"do_image_splitting": True}}
    expected["data"]["synthetic"]["num_categories"] = 5
    expected["evaluation"]["scorers"] = ["generation"]
    expected["seed"] = 3
    assert printed == expected
    run = FinedeficsRun(load_run_config(**printed))
    assert run.stage_args("finedefics", "stage1").learning_rate == pytest.approx(1e-4)
    assert run.stage_args("finedefics", "stage2").learning_rate == pytest.approx(2e-3)
    assert run.recipe.model.lora_r == 16


def test_the_printed_recipe_runs_as_it_was_printed(tmp_path, capsys):
    finedefics(["run", "--stage2.num_train_epochs", "2", "--output_dir", "elsewhere", "--print_config"])
    first = capsys.readouterr().out
    (tmp_path / "saved.yaml").write_text(first)
    finedefics(["run", "--config", "saved.yaml", "--print_config"])
    assert capsys.readouterr().out == first
    assert yaml.safe_load(first)["stage2"]["num_train_epochs"] == 2


def test_a_section_given_as_a_mapping_sets_those_keys(capsys):
    """It was 'invalid dict value'."""
    printed = printed_recipe(capsys, "--stage2", '{"learning_rate": 1e-4, "num_train_epochs": 2}')
    expected = embedded()
    expected["stage2"] |= {"learning_rate": "1e-4", "num_train_epochs": 2}
    assert printed == expected


def test_setting_a_kind_of_data_replaces_the_other(capsys):
    printed = printed_recipe(capsys, "--base_model", "testing:idefics2", "--data.dataset", "built/data")
    assert printed["data"] == {"dataset": "built/data"} and printed["base_model"] == "testing:idefics2"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--stage9.seed", "1"], "--stage9.seed: a run recipe has no section `stage9` (did you mean stage3?); valid: "
         "data, model, stage1, stage2, stage3, evaluation, analysis, world."),
        (["--stage1.lerning_rate", "1"], "--stage1.lerning_rate: `stage1` (ContrastiveAlignmentConfig) has no key "
         "`lerning_rate` (did you mean learning_rate?); valid: acc_weight, "),
        (["--data.synthetic.colours", "3"], "`data.synthetic` (SyntheticFGVRConfig) has no key `colours`"),
        (["--data.folder", "x"], "--data.folder: `data` has no kind `folder`"),
        (["--model.lora_r", "many"], "Recipe field `model.lora_r` must be a finite int, got 'many'."),
        (["--model.lora_r.x", "1"], "--model.lora_r.x: `model.lora_r` is not a mapping."),
        (["--stage2", "5"], "--stage2 takes a mapping of InstructionTuningConfig keys, or one key as --stage2.KEY "
         "VALUE."),
        (["--stage1.learning_rate"], "--stage1.learning_rate needs a value."),
    ],
    ids=["section", "key", "data-key", "data-kind", "value", "not-a-mapping", "section-value", "no-value"],
)  # fmt: skip
def test_a_wrong_key_or_value_is_one_line_naming_it(flags, message, capsys):
    with pytest.raises(SystemExit):
        finedefics(["run", *flags, "--print_config"])
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("finedefics run: error: ") and message in error
    if "valid: acc_weight" in message:  # every key of the section is listed
        assert "learning_rate" in error.split("valid: ")[1] and "per_device_train_batch_size" in error


def test_run_takes_its_own_base_model_flag(capsys):
    """`--base_model` is a renamed flag for the other commands, and `finedefics run`'s own key; `--model` its
    `model` section."""
    printed = printed_recipe(capsys, "--base_model", "testing:idefics2", "--model", "{lora_r: 4}")
    assert printed["base_model"] == "testing:idefics2" and printed["model"]["lora_r"] == 4
