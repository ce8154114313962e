"""Reruns pick up where a run stopped, and a kill at any point of a save leaves a state the next run gets past.

Kill states are made the way a kill leaves them: files of a save are written in a fixed order (weights and
config, processor, optimizer, scheduler, RNG state, then `trainer_state.json`; a merge writes into a side
folder renamed last), so a kill leaves a prefix of that sequence on disk."""

from __future__ import annotations

import logging
import shutil

import pytest

from hf_finedefics.cli import main as cli
from hf_finedefics.testing import create_tiny_checkpoint

from ..conftest import synthetic_triples
from ..pipeline.test_run_lock import lock_held_by_another_process

RUN = ["--per_device_train_batch_size", "2", "--warmup_steps", "0", "--report_to", "none", "--use_cpu", "true",
       "--save_strategy", "steps", "--save_steps", "1", "--logging_steps", "1",
       "--processor_kwargs", '{"do_image_splitting": false}']  # fmt: skip


@pytest.fixture(scope="module")
def triples_dir(tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    synthetic_triples(num_categories=4, train_per_category=2, test_per_category=1).save_to_disk(data / "triples")
    return data


def stage1(triples_dir, output_dir, *extra):
    base = str(create_tiny_checkpoint("idefics2"))
    cli(["stage1", "--model_name_or_path", base, "--dataset_name", str(triples_dir), "--output_dir",
         str(output_dir), *RUN, *extra])  # fmt: skip


def test_rerun_resumes_from_the_last_checkpoint(triples_dir, tmp_path, caplog):
    output_dir = tmp_path / "stage1"
    stage1(triples_dir, output_dir, "--max_steps", "1")
    first = output_dir / "checkpoint-1" / "trainer_state.json"
    written = first.stat().st_mtime_ns
    with caplog.at_level(logging.INFO):
        stage1(triples_dir, output_dir, "--max_steps", "2")  # the same recipe, run longer: no flag needed
    assert first.stat().st_mtime_ns == written  # not retrained from step 0 over it
    assert (output_dir / "checkpoint-2" / "trainer_state.json").is_file()
    assert f"Resuming from {output_dir / 'checkpoint-1'}" in caplog.text


def test_rerun_with_other_settings_is_refused_saying_how_to_go_on(triples_dir, tmp_path):
    output_dir = tmp_path / "stage1"
    stage1(triples_dir, output_dir, "--max_steps", "1")
    written = (output_dir / "checkpoint-1" / "trainer_state.json").stat().st_mtime_ns
    with pytest.raises(ValueError, match=r"(?s)learning rate.*--resume_from_checkpoint.*another --output_dir"):
        stage1(triples_dir, output_dir, "--max_steps", "2", "--learning_rate", "0.001")
    assert (output_dir / "checkpoint-1" / "trainer_state.json").stat().st_mtime_ns == written


def test_rerun_on_another_lora_shape_or_dataset_is_refused_not_resumed(triples_dir, tmp_path):
    """The training arguments alone do not say what a checkpoint is: another LoRA rank cannot even be loaded into the
    new adapter, and another dataset would be continued as if it were the same run."""
    output_dir = tmp_path / "stage1"
    stage1(triples_dir, output_dir, "--max_steps", "1")
    written = (output_dir / "checkpoint-1" / "trainer_state.json").stat().st_mtime_ns
    with pytest.raises(ValueError, match=r"(?s)checkpoint-1.*LoRA: \{'r': 8.*\{'r': 4.*--resume_from_checkpoint"):
        stage1(triples_dir, output_dir, "--max_steps", "2", "--lora_r", "4")
    other_data = tmp_path / "other"
    synthetic_triples(num_categories=4, train_per_category=3, test_per_category=1).save_to_disk(other_data / "triples")
    with pytest.raises(ValueError, match=r"(?s)checkpoint-1.*dataset: \w+ -> \w+.*another --output_dir"):
        stage1(other_data, output_dir, "--max_steps", "2")
    assert (output_dir / "checkpoint-1" / "trainer_state.json").stat().st_mtime_ns == written
    assert not (output_dir / "checkpoint-2").exists()


def test_a_second_command_into_a_stage_folder_in_use_is_refused(triples_dir, tmp_path):
    output_dir = tmp_path / "stage1"
    with lock_held_by_another_process(output_dir) as holder, pytest.raises(BlockingIOError, match=f"PID {holder.pid}"):
        stage1(triples_dir, output_dir, "--max_steps", "1")
    assert not (output_dir / "checkpoint-1").exists()
    stage1(triples_dir, output_dir, "--max_steps", "1")  # the killed holder's lock is taken over
    assert (output_dir / "checkpoint-1" / "trainer_state.json").is_file()


CHECKPOINT_KILLS = {
    # What a kill leaves of checkpoint-2, in the order the Trainer writes it: the two last points, where the most is
    # on disk; an earlier kill leaves a subset of these files, and the rule (no readable trainer state) is the same.
    "before the trainer state": [
        "adapter_config.json",
        "adapter_model.safetensors",
        "optimizer.pt",
        "scheduler.pt",
        "rng_state.pth",
    ],  # fmt: skip
    "inside the trainer state": "truncated",
}


@pytest.fixture(scope="module")
def complete_run(triples_dir, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("complete") / "stage1"
    stage1(triples_dir, output_dir, "--max_steps", "2")
    return output_dir


@pytest.mark.parametrize("kill", list(CHECKPOINT_KILLS))
def test_incomplete_checkpoint_is_skipped_with_a_warning(triples_dir, complete_run, tmp_path, caplog, kill):
    output_dir = tmp_path / "killed"
    shutil.copytree(complete_run / "checkpoint-1", output_dir / "checkpoint-1")
    killed = output_dir / "checkpoint-2"
    killed.mkdir()
    kept = CHECKPOINT_KILLS[kill]
    if kept == "truncated":
        for path in (complete_run / "checkpoint-2").iterdir():
            shutil.copy(path, killed / path.name)
        state = killed / "trainer_state.json"
        state.write_text(state.read_text()[:50])
    else:
        for name in kept:
            shutil.copy(complete_run / "checkpoint-2" / name, killed / name)
    with caplog.at_level(logging.INFO):
        stage1(triples_dir, output_dir, "--max_steps", "2")
    assert f"{killed} is incomplete" in caplog.text
    assert f"Resuming from {output_dir / 'checkpoint-1'}" in caplog.text
    redone = (killed / "trainer_state.json").read_text()
    assert redone == (complete_run / "checkpoint-2" / "trainer_state.json").read_text()
