"""`finedefics run`: the chained pipeline on a small synthetic recipe."""

import json
import logging
from pathlib import Path

import pytest
import yaml
from datasets import load_dataset

from dataset_builders.build import build_synthetic_dataset
from dataset_builders.sources.synthetic import SyntheticFGVRConfig, attribute_distance, synthetic_categories
from hf_finedefics.hub import TRAINING_SUMMARY_NAME
from hf_finedefics.modeling import adapter_base_model
from hf_finedefics.pipeline import STAGE1_OF, VARIANTS, FinedeficsRun, load_run_config, run_pipeline
from tests.world.test_world import TINY_WORLD

SMALL_RECIPE = {
    "base_model": "world",
    "world": TINY_WORLD,
    "data": {"synthetic": {"num_categories": 6, "train_per_category": 4, "test_per_category": 2}},
    "stage1": {"per_device_train_batch_size": 8, "max_steps": 2, "warmup_steps": 0, "use_cpu": True},
    "stage2": {"per_device_train_batch_size": 8, "max_steps": 2, "warmup_steps": 0, "use_cpu": True},
    "evaluation": {"scorers": ["name_likelihood", "likelihood", "generation"], "max_new_tokens": 4},
    "analysis": {"analyses": ["alignment", "tsne", "confusion"], "tsne_max_per_class": 2},
}


def test_synthetic_build_round_trips_with_nearest_negatives(tmp_path):
    config = SyntheticFGVRConfig(num_categories=6, train_per_category=3, test_per_category=1)
    folder = build_synthetic_dataset(config, tmp_path / "data", tmp_path / "source")
    triples = load_dataset(str(folder), "triples", split="train")
    instructions = load_dataset(str(folder), "instructions", split="train")
    assert triples.num_rows == 18 and instructions.num_rows == 36
    attributes = {c.name: c.attributes for c in synthetic_categories(config)}
    for row in triples:
        assert row["category"] not in row["neg_categories"] and len(row["neg_categories"]) == 3
        nearest = min(
            attribute_distance(attributes[row["category"]], a) for n, a in attributes.items() if n != row["category"]
        )
        assert attribute_distance(attributes[row["category"]], attributes[row["neg_categories"][0]]) == nearest
        assert row["category"] not in row["attribute"]


def _starting_point(pipeline: FinedeficsRun, variant: str) -> str:
    """The full checkpoint a variant's training starts from (stage I's base when it has a stage I)."""
    if variant == "zero_shot":
        return str(Path(pipeline.model_dir(variant)).resolve())
    if variant in STAGE1_OF:
        stage1 = pipeline.stage_dir(STAGE1_OF[variant], "stage1")
        if variant != "stage1_only":
            # Stage II trains on the base with this very stage I merged in.
            merged = Path(f"{pipeline.stage_dir(variant, 'stage2')}-stage1-merged").resolve()
            assert Path(adapter_base_model(pipeline.model_dir(variant))).resolve() == merged
        return str(Path(adapter_base_model(stage1)).resolve())
    return str(Path(adapter_base_model(pipeline.model_dir(variant))).resolve())


def test_run_chains_every_step_and_skips_finished_ones(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_FINEDEFICS_CACHE", str(tmp_path / "cache"))
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({**SMALL_RECIPE, "variants": list(VARIANTS)}))
    messages = []
    results = run_pipeline(recipe, progress=lambda f, m: messages.append(m), output_dir=str(tmp_path / "run"))
    run = tmp_path / "run"
    assert set(results) == set(VARIANTS)
    for variant in set(VARIANTS) - {"zero_shot", "stage1_only"}:
        assert (run / variant / "stage2" / "adapter_config.json").is_file()
    assert not (run / "instruction_tuning" / "stage1").exists()
    assert not (run / "stage1_only").exists()  # stage I only is Finedefics' own stage I, evaluated as is

    # Every variant starts from the one world base, pretrained once.
    (world_base,) = (tmp_path / "cache" / "world").iterdir()
    pipeline = FinedeficsRun(load_run_config(recipe, output_dir=str(run)))
    assert {_starting_point(pipeline, v) for v in VARIANTS} == {str(world_base.resolve())}
    assert pipeline.model_dir("stage1_only") == str(run / STAGE1_OF["stage1_only"] / "stage1")

    table = (run / "table3.md").read_text()
    assert "Finedefics" in table and "name_likelihood" in table and "standard error of a difference" in table
    assert len([line for line in table.splitlines() if line.startswith("|")]) == len(VARIANTS) + 2
    assert "| Open-set exact | Open-set contains |" in table
    accuracies = json.loads((run / "table3.json").read_text())
    measures = ("name_likelihood", "likelihood", "generation", "open_set_exact", "open_set_contains")
    measures += ("open_set_top1", "open_set_top5")
    assert all(0.0 <= accuracies[v][s] <= 100.0 for v in VARIANTS for s in measures)
    # The open-set accuracy of the table is the mean of the per-dataset summaries the report shows.
    open_set = results["finedefics"]["open_set"]["imagefolder"]
    assert accuracies["finedefics"]["open_set_contains"] == open_set["contains"]
    assert open_set["num_classes"] == 6 and open_set["num_items"] == 12
    assert "| finedefics | open-set contains |" in (run / "evaluation" / "report.md").read_text()
    assert (run / "analysis" / "finedefics" / "imagefolder" / "tsne_objects_categories.png").stat().st_size > 0
    assert (run / "analysis" / "zero_shot" / "imagefolder" / "confusion_matrix.png").stat().st_size > 0

    adapter = run / "finedefics" / "stage1" / "adapter_model.safetensors"
    before = adapter.stat().st_mtime_ns
    again = run_pipeline(recipe, progress=lambda f, m: None, output_dir=str(run))
    assert adapter.stat().st_mtime_ns == before
    assert again == results


def test_unknown_recipe_key_is_named(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({**SMALL_RECIPE, "stage1": {"learning_rat": 1e-3}}))
    run_dir = str(tmp_path / "run")
    with pytest.raises(ValueError, match=r"\['learning_rat'\] in the recipe's `stage1` section"):
        FinedeficsRun(load_run_config(recipe, output_dir=run_dir))
    with pytest.raises(ValueError, match="Unknown variants"):
        load_run_config(recipe, variants=["finedefics", "magic"], output_dir=run_dir)
    with pytest.raises(ValueError, match="exactly one of synthetic, build, dataset"):
        load_run_config(recipe, data={"synthetic": {}, "dataset": str(tmp_path)}, output_dir=run_dir)
    with pytest.raises(ValueError, match="base_model: world is pretrained on the synthetic world"):
        load_run_config(recipe, data={"dataset": str(tmp_path)}, output_dir=run_dir)
    recipe.write_text(yaml.safe_dump(SMALL_RECIPE))
    with pytest.raises(ValueError, match=r"Unknown evaluation.tasks \['open'\]"):
        FinedeficsRun(load_run_config(recipe, evaluation={"tasks": ["open"]}, output_dir=run_dir))
    with pytest.raises(FileNotFoundError, match="not a dataset folder built by build-dataset"):
        FinedeficsRun(
            load_run_config(recipe, data={"dataset": str(tmp_path)}, base_model="testing:idefics2", output_dir=run_dir)
        ).step_build()


def test_embedded_default_recipe_parses():
    config = load_run_config()
    assert {"zero_shot", "instruction_tuning", "contrastive_object_category", "finedefics"} <= set(config.variants)
    assert "name_likelihood" in config.evaluation["scorers"]


def test_a_stage_killed_during_its_final_save_is_trained_again(tmp_path, caplog, monkeypatch):
    """A kill inside the final save leaves adapter_config.json without the training summary written last: the
    rerun must not take the stage for finished (and then fail loading a half-written adapter)."""
    monkeypatch.setenv("HF_FINEDEFICS_CACHE", str(tmp_path / "cache"))
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(SMALL_RECIPE))
    run = FinedeficsRun(load_run_config(recipe, output_dir=str(tmp_path / "run")))
    run.step_build()
    stage_dir = run.stage_dir("finedefics", "stage1")
    stage_dir.mkdir(parents=True)
    (stage_dir / "adapter_config.json").write_text("{}")
    with caplog.at_level(logging.WARNING):
        run.step_stage1("finedefics")
    assert f"{stage_dir} holds an unfinished save" in caplog.text
    assert (stage_dir / TRAINING_SUMMARY_NAME).is_file() and (stage_dir / "adapter_model.safetensors").is_file()
