"""`finedefics run` with the stage III variants: planned after the stage II they share, fingerprinted with it as
upstream, and one tiny end-to-end run of `instruction_tuning_rl`."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from hf_finedefics.modeling import adapter_base_model
from hf_finedefics.run.pipeline import FinedeficsRun, load_run_config, run_pipeline

TINY_TRAINING = {"per_device_train_batch_size": 2, "max_steps": 1, "warmup_steps": 0, "use_cpu": True}
RECIPE = {
    "base_model": "testing:idefics2",
    "model": {"processor_kwargs": {"do_image_splitting": False}},
    "data": {"synthetic": {"num_categories": 4, "train_per_category": 2, "test_per_category": 1}},
    "stage1": TINY_TRAINING,
    "stage2": TINY_TRAINING,
    "stage3": {**TINY_TRAINING, "num_generations": 2, "max_completion_length": 4, "bf16": False},
    "evaluation": {"tasks": ["multiple_choice"], "scorers": ["likelihood"]},
    "analysis": {"analyses": []},
}


def write_recipe(folder: Path, **changes) -> Path:
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump({**RECIPE, **changes}))
    return path


def test_a_stage3_run_plans_stage3_after_the_shared_stage2(tmp_path):
    variants = ["instruction_tuning", "finedefics_rl", "instruction_tuning_rl"]
    run = FinedeficsRun(load_run_config(write_recipe(tmp_path, variants=variants), output_dir=str(tmp_path / "run")))
    names = [step.name for step in run.plan({})]
    assert names[:6] == [
        "build the training data",
        "instruction_tuning: stage II",
        "finedefics: stage I",
        "finedefics: stage II",
        "finedefics_rl: stage III",
        "instruction_tuning_rl: stage III",
    ]  # each stage II once, though two variants start from instruction tuning's
    assert names[6:] == [f"{variant}: evaluate" for variant in variants] + ["tables"]
    # Each stage III starts from its stage II, trains in its own folder and is what its variant evaluates.
    args = run.stage_args("finedefics_rl", "stage3")
    assert args.stage2_adapter == str(tmp_path / "run" / "finedefics" / "stage2")
    assert run.model_dir("instruction_tuning_rl") == str(tmp_path / "run" / "instruction_tuning_rl" / "stage3")
    record = run.stage_record("instruction_tuning_rl", "stage3")
    assert record.settings["upstream"]["stage2"] == run.stage_record("instruction_tuning", "stage2").fingerprint
    assert run.model_fingerprint("finedefics_rl") == run.stage_record("finedefics_rl", "stage3").fingerprint

    # A stage II setting changes stage III's fingerprint (its upstream); a stage III setting leaves stage II's.
    def fingerprints(**changes):
        changed = FinedeficsRun(load_run_config(write_recipe(tmp_path, variants=variants, **changes)))
        return (
            changed.stage_record("finedefics", "stage2").fingerprint,
            changed.stage_record("finedefics_rl", "stage3").fingerprint,
        )

    stage2, stage3 = fingerprints()
    changed_stage2 = fingerprints(stage2={**TINY_TRAINING, "learning_rate": 1e-3})
    assert changed_stage2[0] != stage2 and changed_stage2[1] != stage3
    changed_stage3 = fingerprints(stage3={**RECIPE["stage3"], "beta": 0.1})
    assert changed_stage3[0] == stage2 and changed_stage3[1] != stage3


def test_instruction_tuning_rl_runs_end_to_end_and_reruns_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_FINEDEFICS_CACHE", str(tmp_path / "cache"))
    recipe = write_recipe(tmp_path, variants=["instruction_tuning_rl"])
    output_dir = tmp_path / "run"
    results = run_pipeline(recipe, progress=lambda fraction, message: None, output_dir=str(output_dir))
    stage3 = output_dir / "instruction_tuning_rl" / "stage3"
    # Stage III's adapter sits on the merged stage II model, itself trained in the shared variant's folder.
    assert Path(adapter_base_model(stage3)) == Path(f"{stage3}-stage2-merged")
    assert (output_dir / "instruction_tuning" / "stage2" / "adapter_config.json").is_file()
    assert json.loads((stage3 / "finedefics_training.json").read_text())["stage"] == "stage3"
    assert 0.0 <= results["instruction_tuning_rl"]["likelihood"]["synthetic"]["accuracy"] <= 100.0
    assert "Instruction tuning + reinforcement fine-tuning (stage III)" in (output_dir / "table3.md").read_text()

    adapter = stage3 / "adapter_model.safetensors"
    written = adapter.stat().st_mtime_ns
    messages = []
    run_pipeline(recipe, progress=lambda fraction, message: messages.append(message), output_dir=str(output_dir))
    assert all(message.endswith("(done, skipped)") for message in messages[:-1])
    assert adapter.stat().st_mtime_ns == written
