"""The run as data: variants are rows of one table, and the recipe's `evaluation:` / `analysis:` sections are the
arguments of `finedefics evaluate` / `finedefics analyze`, with their defaults."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from hf_finedefics.analysis.config import AnalysisArguments
from hf_finedefics.evaluation.config import EvaluateArguments
from hf_finedefics.run.pipeline import FinedeficsRun, load_run_config
from hf_finedefics.run.recipe import RUN_SET_KEYS
from hf_finedefics.run.variants import VARIANT_TABLE, Variant, check_variant_table
from hf_finedefics.scripts.analyze import make_parser as analyze_parser
from hf_finedefics.scripts.evaluate import make_parser as evaluate_parser

from .test_pipeline import SMALL_RECIPE


def _run(tmp_path, **overrides) -> FinedeficsRun:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(SMALL_RECIPE))
    return FinedeficsRun(load_run_config(recipe, output_dir=str(tmp_path / "run"), **overrides))


def test_a_new_variant_is_one_row(tmp_path, monkeypatch):
    """A row naming its stages and what it changes is planned, trained in its own folders from its own stage I,
    and evaluated; nothing else is edited."""
    row = Variant(
        "finedefics_low_temperature",
        "+ attribute augmented alignment, temperature 0.05",
        ("stage1", "stage2"),
        overrides={"stage1": {"temperature": 0.05}},
        by_default=False,
    )
    monkeypatch.setitem(VARIANT_TABLE, row.name, row)
    run = _run(tmp_path, variants=["finedefics", row.name])
    names = [step.name for step in run.plan({})]
    assert f"{row.name}: stage I" in names and f"{row.name}: stage II" in names and f"{row.name}: evaluate" in names
    assert run.stage_args(row.name, "stage1").temperature == 0.05
    assert run.stage_args("finedefics", "stage1").temperature != 0.05
    stage2 = run.stage_args(row.name, "stage2")
    assert stage2.stage1_adapter == str(run.stage_dir(row.name, "stage1"))
    assert run.model_dir(row.name) == str(tmp_path / "run" / row.name / "stage2")
    upstream = run.stage_record(row.name, "stage2").settings["upstream"]
    assert upstream["stage1"] == run.stage_record(row.name, "stage1").fingerprint


def test_a_shared_stage_is_trained_once_in_its_owners_folder(tmp_path):
    run = _run(tmp_path, variants=["finedefics", "stage1_only"])
    names = [step.name for step in run.plan({})]
    assert names.count("finedefics: stage I") == 1 and not any(name.startswith("stage1_only: stage") for name in names)
    assert run.model_fingerprint("stage1_only") == run.stage_record("finedefics", "stage1").fingerprint


@pytest.mark.parametrize(
    "row, message",
    [
        (Variant("bad", "t", ("stage4",)), r"unknown stages \['stage4'\]"),
        (Variant("bad", "t", ("stage2", "stage1")), r"not in the order"),
        (Variant("bad", "t", ("stage2",), overrides={"stage1": {"ccc_form": "literal"}}), r"does not train itself"),
        (Variant("bad", "t", ("stage1",), shares={"stage1": "instruction_tuning"}), r"which does not train it"),
        (
            Variant("bad", "t", ("stage2", "stage3"), shares={"stage2": "finedefics"}),
            r"shares stage2 of finedefics, which trains it from other stages",
        ),
    ],
    ids=["unknown-stage", "order", "override-not-trained", "owner-does-not-train", "different-upstream"],
)
def test_the_variant_table_refuses_rows_that_cannot_train(row, message):
    with pytest.raises(ValueError, match=message):
        check_variant_table({**VARIANT_TABLE, row.name: row})


def _defaults(cls: type) -> dict:
    return {
        field.name: field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default
        for field in dataclasses.fields(cls)
    }


def test_the_evaluation_and_analysis_sections_are_the_commands_arguments(tmp_path):
    """Same class, same defaults: a setting moved between a recipe and the command line means the same thing."""
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({key: value for key, value in SMALL_RECIPE.items() if key != "analysis"}))
    run = FinedeficsRun(load_run_config(recipe, output_dir=str(tmp_path / "run"), evaluation={}))
    evaluation, analysis = run.recipe.evaluation, run.recipe.analysis
    assert isinstance(evaluation, EvaluateArguments) and isinstance(analysis, AnalysisArguments)
    (command_evaluation, _) = evaluate_parser().parse_args_into_dataclasses(["--model_name_or_path", "m"])
    (command_analysis, _) = analyze_parser().parse_args_into_dataclasses(
        ["--model_name_or_path", "m", "--dataset_name", "d", "--output_dir", "o"]
    )
    for ours, theirs, section in (
        (evaluation, command_evaluation, "evaluation"),
        (analysis, command_analysis, "analysis"),
    ):
        for name, default in _defaults(type(ours)).items():
            if name not in RUN_SET_KEYS[section]:
                assert getattr(ours, name) == getattr(theirs, name) == default, (section, name)


@pytest.mark.parametrize(
    "section, key, value",
    [
        ("evaluation", "output_dir", "elsewhere"),
        ("evaluation", "api_base", "http://x"),
        ("analysis", "predictions", "p"),
    ],
)
def test_keys_the_run_sets_itself_are_refused_naming_them(tmp_path, section, key, value):
    with pytest.raises(ValueError, match=rf"`{section}` section sets \['{key}'\], which the run sets itself"):
        _run(tmp_path, **{section: {**SMALL_RECIPE[section], key: value}})


def test_evaluate_takes_task_as_an_alias_of_tasks():
    (args, _) = evaluate_parser().parse_args_into_dataclasses(
        ["--model_name_or_path", "m", "--task", "multiple_choice", "open_set"]
    )
    assert args.tasks == ["multiple_choice", "open_set"]
