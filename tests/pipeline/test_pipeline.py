"""`finedefics run`: the chained pipeline on a small synthetic recipe."""

import contextlib
import io
import json
import logging
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from datasets import load_dataset

from dataset_builders.build import build_synthetic_dataset
from dataset_builders.sources.synthetic import SyntheticFGVRConfig, attribute_distance, synthetic_categories
from hf_finedefics.cli import main as cli_main
from hf_finedefics.evaluation.report import mean_accuracies
from hf_finedefics.hub import TRAINING_SUMMARY_NAME
from hf_finedefics.modeling import adapter_base_model
from hf_finedefics.run.pipeline import FinedeficsRun, load_run_config, run_pipeline
from hf_finedefics.run.steps import FINGERPRINT_NAME, RUN_LOG_NAME
from hf_finedefics.run.variants import VARIANT_TABLE, VARIANTS
from tests.world.test_world import TINY_WORLD

SMALL_RECIPE = {
    "base_model": "world",
    "world": TINY_WORLD,
    # The paper's one whole image per object (the tiny Idefics2 splits images by default, like the Hub's).
    "model": {"processor_kwargs": {"do_image_splitting": False}},
    "data": {"synthetic": {"num_categories": 6, "train_per_category": 4, "test_per_category": 2}},
    "stage1": {"per_device_train_batch_size": 8, "max_steps": 2, "warmup_steps": 0, "use_cpu": True},
    "stage2": {"per_device_train_batch_size": 8, "max_steps": 2, "warmup_steps": 0, "use_cpu": True},
    "evaluation": {
        "tasks": ["multiple_choice", "open_set"],
        "scorers": ["name_likelihood", "likelihood", "generation"],
        "max_new_tokens": 4,
    },
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
    if VARIANT_TABLE[variant].trains("stage1"):
        stage1 = pipeline.stage_dir(VARIANT_TABLE[variant].owner("stage1"), "stage1")
        if variant != "stage1_only":
            # Stage II trains on the base with this very stage I merged in.
            merged = Path(f"{pipeline.stage_dir(variant, 'stage2')}-stage1-merged").resolve()
            assert Path(adapter_base_model(pipeline.model_dir(variant))).resolve() == merged
        return str(Path(adapter_base_model(stage1)).resolve())
    return str(Path(adapter_base_model(pipeline.model_dir(variant))).resolve())


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """Every variant run once by `finedefics run` (in-process), with what it printed to the console."""
    root = tmp_path_factory.mktemp("tiny_run")
    recipe = root / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({**SMALL_RECIPE, "variants": list(VARIANTS)}))
    console = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_FINEDEFICS_CACHE", str(root / "cache"))
        with contextlib.redirect_stdout(console), contextlib.redirect_stderr(console):
            cli_main(["run", "--config", str(recipe), "--output_dir", str(root / "run")])
    return SimpleNamespace(recipe=recipe, run=root / "run", cache=root / "cache", console=console.getvalue())


def test_run_chains_every_step_and_skips_finished_ones(tiny_run, monkeypatch):
    monkeypatch.setenv("HF_FINEDEFICS_CACHE", str(tiny_run.cache))
    recipe, run = tiny_run.recipe, tiny_run.run
    adapter = run / "finedefics" / "stage1" / "adapter_model.safetensors"
    before = adapter.stat().st_mtime_ns
    messages = []
    results = run_pipeline(recipe, progress=lambda f, m: messages.append(m), output_dir=str(run))
    # An unchanged rerun does nothing: every step says so, and the results are the ones written the first time.
    assert all(m.endswith("(done, skipped)") for m in messages[:-1]) and messages[-1].startswith("done in")
    assert adapter.stat().st_mtime_ns == before
    written = json.loads((run / "table3.json").read_text())
    accuracies_written = {
        v: {k: x for k, x in m.items() if not k.startswith("alignment_")} for v, m in written.items()
    }
    assert mean_accuracies(results) == accuracies_written

    assert set(results) == set(VARIANTS)
    for variant in set(VARIANTS) - {"zero_shot", "stage1_only"}:
        assert (run / variant / "stage2" / "adapter_config.json").is_file()
    assert not (run / "instruction_tuning" / "stage1").exists()
    assert not (run / "stage1_only").exists()  # stage I only is Finedefics' own stage I, evaluated as is

    # Every variant starts from the one world base, pretrained once.
    (world_base,) = (tiny_run.cache / "world").iterdir()
    pipeline = FinedeficsRun(load_run_config(recipe, output_dir=str(run)))
    assert {_starting_point(pipeline, v) for v in VARIANTS} == {str(world_base.resolve())}
    assert pipeline.model_dir("stage1_only") == str(run / VARIANT_TABLE["stage1_only"].owner("stage1") / "stage1")

    table = (run / "table3.md").read_text()
    assert "Finedefics" in table and "name_likelihood" in table and "standard error of a difference" in table
    comparison, _, alignment = table.partition("Object-category alignment (Table 8")
    assert len([line for line in comparison.splitlines() if line.startswith("|")]) == len(VARIANTS) + 2
    # Table 8 and its companions for the analysed variants, in the table and in table3.json.
    assert len([line for line in alignment.splitlines() if line.startswith("|")]) == 2 + 2
    assert "| Open-set exact | Open-set contains |" in table
    accuracies = json.loads((run / "table3.json").read_text())
    measures = ("name_likelihood", "likelihood", "generation", "open_set_exact", "open_set_contains")
    measures += ("open_set_top1", "open_set_top5")
    assert all(0.0 <= accuracies[v][s] <= 100.0 for v in VARIANTS for s in measures)
    for variant in ("zero_shot", "finedefics"):
        report = json.loads(next((run / "analysis" / variant).glob("*/report.json")).read_text())["alignment"]
        assert accuracies[variant]["alignment_mean_cosine"] == pytest.approx(report["overall"])
        assert accuracies[variant]["alignment_gap"] == pytest.approx(report["gap"])
        assert accuracies[variant]["alignment_object_to_name_top1"] == pytest.approx(report["object_to_name_top1"])
    assert not any(key.startswith("alignment_") for key in accuracies["instruction_tuning"])
    # The open-set accuracy of the table is the mean of the per-dataset summaries the report shows; the generated
    # world is named as the registry names it, in results, reports and folders.
    open_set = results["finedefics"]["open_set"]["synthetic"]
    assert accuracies["finedefics"]["open_set_contains"] == open_set["contains"]
    assert open_set["num_classes"] == 6 and open_set["num_items"] == 12
    report = (run / "evaluation" / "report.md").read_text()
    assert "| finedefics | open-set contains |" in report and "Synthetic critters" in report
    assert "imagefolder" not in report + table
    assert (run / "analysis" / "finedefics" / "synthetic" / "tsne_objects_categories.png").stat().st_size > 0
    assert (run / "analysis" / "zero_shot" / "synthetic" / "confusion_matrix.png").stat().st_size > 0
    assert (run / "evaluation" / "predictions" / "finedefics" / "synthetic.likelihood.jsonl").is_file()


def test_console_shows_one_line_per_step_and_the_log_file_the_rest(tiny_run):
    lines = tiny_run.console.splitlines()
    progress = [line for line in lines if line.startswith("[finedefics run")]
    steps = [step.name for step in FinedeficsRun(load_run_config(tiny_run.recipe)).plan({})]
    assert [line.split("] ", 1)[1].rsplit(" (", 1)[0] for line in progress[:-1]] == steps
    assert progress[-1].split("] ", 1)[1].startswith("done in") and RUN_LOG_NAME in progress[-1]
    assert all("elapsed" in line for line in progress[:-1]) and "left)" in progress[-2]
    shares = [int(line.removeprefix("[finedefics run").split("%]")[0]) for line in progress]
    assert shares == sorted(shares) and shares[-1] == 100  # never back, however the estimate moves
    # The rest of the console is the table the command prints: no bars, metric dicts or warnings.
    noise = ("it/s", "%|", "{'loss'", "train_runtime", "Warning", "Loading weights", "Map")
    assert not [line for line in lines if any(word in line for word in noise)]
    # One line per step, then the table as table3.md has it and the report paths.
    table_lines = len((tiny_run.run / "table3.md").read_text().splitlines())
    assert len(lines) < len(steps) + table_lines + 8, "\n".join(lines)
    log = (tiny_run.run / RUN_LOG_NAME).read_bytes().decode()
    assert "'train_runtime'" in log and "'train_loss'" in log and "] finedefics: stage II (" in log
    assert "\r" not in log  # each bar's last state, not its frames


def test_a_changed_stage2_setting_reruns_stage2_evaluation_and_analysis_only(tiny_run, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_FINEDEFICS_CACHE", str(tiny_run.cache))
    run = tmp_path / "run"
    shutil.copytree(tiny_run.run, run)  # fingerprints hold no path inside the run: a moved run is the same run
    recipe = yaml.safe_load(tiny_run.recipe.read_text())
    recipe |= {"variants": ["zero_shot", "finedefics"], "stage2": {**recipe["stage2"], "learning_rate": 1e-3}}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    stage1 = run / "finedefics" / "stage1" / "adapter_model.safetensors"
    stage2 = run / "finedefics" / "stage2" / "adapter_model.safetensors"
    zero_shot = run / "evaluation" / "predictions" / "zero_shot" / "synthetic.likelihood.jsonl"
    before = {path: path.stat().st_mtime_ns for path in (stage1, stage2, zero_shot)}
    messages = []
    run_pipeline(tmp_path / "recipe.yaml", progress=lambda f, m: messages.append(m), output_dir=str(run))
    skipped = {m.removesuffix(" (done, skipped)") for m in messages if m.endswith("(done, skipped)")}
    redone = {m.split(" (")[0] for m in messages if "(redone, changed:" in m}
    assert skipped == {
        "build the training data",
        "world pretraining of the base model (once, then cached)",
        "finedefics: stage I",
        "zero_shot: evaluate",
        "zero_shot: analyze",
    }
    assert redone == {"finedefics: stage II", "finedefics: evaluate", "finedefics: analyze", "tables"}
    assert "finedefics: stage II (redone, changed: stage2.learning_rate;" in "\n".join(messages)
    assert stage1.stat().st_mtime_ns == before[stage1] and zero_shot.stat().st_mtime_ns == before[zero_shot]
    assert stage2.stat().st_mtime_ns != before[stage2]
    stage2_record = json.loads((run / "finedefics" / "stage2" / FINGERPRINT_NAME).read_text())
    assert stage2_record["complete"] and stage2_record["settings"]["stage2"]["learning_rate"] == 1e-3
    # A mistyped key still fails before any work, finished steps or not.
    recipe["stage2"]["learning_rat"] = 1e-3
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    with pytest.raises(ValueError, match=r"\['learning_rat'\] in the recipe's `stage2` section"):
        run_pipeline(tmp_path / "recipe.yaml", progress=lambda f, m: None, output_dir=str(run))


def test_a_stage_fingerprint_counts_defaults_and_what_changes_learning_only(tmp_path):
    def fingerprint(stage2, model=None):
        recipe = tmp_path / "recipe.yaml"
        changed = {"stage2": {**SMALL_RECIPE["stage2"], **stage2}, "model": {**SMALL_RECIPE["model"], **(model or {})}}
        recipe.write_text(yaml.safe_dump({**SMALL_RECIPE, **changed}))
        return FinedeficsRun(load_run_config(recipe)).stage_record("finedefics", "stage2").fingerprint

    default = fingerprint({})
    assert fingerprint({"learning_rate": 2e-4}) == default  # the default, written out
    assert fingerprint({"logging_steps": 1, "save_strategy": "no", "report_to": "none"}) == default
    # What trackers show (a run moved to another folder is another tracker project) is not what a stage learns.
    assert fingerprint({"report_to": "tensorboard", "run_name": "mine", "project": "elsewhere"}) == default
    assert fingerprint({"learning_rate": 1e-3}) != default
    assert fingerprint({}, model={"lora_dropout": 0.3}) != default


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
    with pytest.raises(ValueError, match=r"`evaluation` section.*Unknown tasks \['open'\]"):
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
        run.step_train("finedefics", "stage1")
    assert f"{stage_dir} holds an unfinished save" in caplog.text
    assert (stage_dir / TRAINING_SUMMARY_NAME).is_file() and (stage_dir / "adapter_model.safetensors").is_file()


def test_world_seed_sets_the_world_and_seed_the_training(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(SMALL_RECIPE))

    def run(**overrides):
        return FinedeficsRun(load_run_config(recipe, output_dir=str(tmp_path / "run"), **overrides))

    default, trained_otherwise, other_world = run(), run(seed=3), run(world_seed=2)
    assert (default.synthetic.seed, default.world.seed) == (0, 0)
    assert (other_world.synthetic.seed, other_world.world.seed) == (2, 2)
    # The training seed changes the training, not the world: the same data, the same base.
    assert trained_otherwise.data_fingerprint == default.data_fingerprint
    assert trained_otherwise.base_model_identity == default.base_model_identity
    assert trained_otherwise.stage_args("finedefics", "stage1").seed == 3
    assert other_world.data_fingerprint != default.data_fingerprint
    assert other_world.base_model_identity != default.base_model_identity
    assert other_world.stage_args("finedefics", "stage1").seed == 0


def test_each_ablation_changes_one_thing(tmp_path):
    """Stage I of the object-category ablation differs from Finedefics' only in what its contrastive terms compare
    (and so has nothing to caption: no generation loss); its `_naming` form keeps the naming task; stage II is the
    same for every variant."""
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(SMALL_RECIPE))
    run = FinedeficsRun(load_run_config(recipe, output_dir=str(tmp_path / "run")))

    def changed(variant, stage, reference="finedefics"):
        ours, theirs = (run.stage_args(v, stage).to_dict() for v in (variant, reference))
        own = {"output_dir", "logging_dir", "run_name", "stage1_adapter"}  # each variant's own folders and name
        return {key for key in ours if ours[key] != theirs[key]} - own

    assert changed("contrastive_object_category", "stage1") == {"objective", "generation_loss_weight"}
    assert run.stage_args("contrastive_object_category", "stage1").generation_loss_weight == 0.0
    assert changed("contrastive_object_category_naming", "stage1") == {"objective"}
    assert changed("finedefics_literal_ccc", "stage1") == {"ccc_form"}
    others = ("instruction_tuning", "contrastive_object_category", "contrastive_object_category_naming")
    for variant in (*others, "finedefics_literal_ccc"):
        assert changed(variant, "stage2") == set()
    assert changed("one_stage", "stage2") == {"paradigm"}
    assert changed("open_set_only", "stage2") == {"instruction_types"}
