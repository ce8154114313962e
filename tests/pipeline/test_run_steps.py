"""Step records: a step interrupted with the same settings keeps its output (training resumes from its checkpoints),
one of other settings is discarded; the time-left estimate is measured."""

import contextlib
import io
import logging
import time

import pytest
from tqdm import tqdm

from hf_finedefics.run.steps import FINGERPRINT_NAME, PlannedStep, RunClock, StepRecord, run_log, run_steps


def _record(folder, **settings):
    return StepRecord("stage II", folder / FINGERPRINT_NAME, {"stage2": settings}, (folder,))


def test_an_interrupted_step_keeps_its_output_unless_its_settings_changed(tmp_path):
    folder = tmp_path / "stage2"
    _record(folder, learning_rate=1e-3).begin()
    (folder / "checkpoint-1").mkdir()  # what an interrupted training leaves
    again = _record(folder, learning_rate=1e-3)
    assert not again.is_complete() and again.changes() == []
    again.begin()
    assert (folder / "checkpoint-1").is_dir()  # resumed from, not discarded
    again.finish()
    assert _record(folder, learning_rate=1e-3).is_complete()
    changed = _record(folder, learning_rate=2e-3)
    assert not changed.is_complete() and changed.changes() == ["stage2.learning_rate: 0.001 -> 0.002"]
    changed.begin()
    assert not (folder / "checkpoint-1").exists() and not changed.is_complete()


def test_the_estimate_uses_the_seconds_per_unit_measured_per_kind():
    clock = RunClock()
    clock.measure("train", 10.0, 100)
    clock.measure("evaluate", 1.0, 100)
    remaining = [PlannedStep("a", "train", 50, lambda: None), PlannedStep("b", "evaluate", 200, lambda: None)]
    assert clock.seconds_left(remaining) == 5.0 + 2.0
    # A kind not measured yet goes at the rate of everything measured so far.
    assert clock.seconds_left([PlannedStep("c", "analyze", 20, lambda: None)]) == 20 * 11.0 / 200
    assert RunClock().seconds_left(remaining) is None


def test_run_steps_prints_one_line_per_step():
    done, lines = [], []
    steps = [
        PlannedStep("first", "x", 1, lambda: done.append("first"), is_done=lambda: True),
        PlannedStep("second", "x", 1, lambda: done.append("second")),
    ]
    run_steps(steps, lambda fraction, message: lines.append(message))
    assert done == ["second"] and lines[0] == "first (done, skipped)" and lines[1].startswith("second (0:00:00")


def test_the_share_shown_never_goes_back_when_a_new_kind_is_slower_than_estimated():
    # Kind "b" is estimated at kind "a"'s fast rate until its first step is measured: 30 times slower. A share of the
    # estimated time showed 63 % at "slow" and 21 % at "last" here; the share of the steps finished only grows.
    shown, updates = [], []
    steps = [
        PlannedStep("fast", "a", 10, lambda: time.sleep(0.1)),
        PlannedStep("slow", "b", 1, lambda: time.sleep(0.3)),
        PlannedStep("skipped", "b", 1, lambda: None, is_done=lambda: True),
        PlannedStep("last", "b", 5, lambda: None),
    ]
    run_steps(steps, lambda fraction, message: shown.append(fraction), lambda f, m: updates.append(f), every=0.05)
    assert shown == [0.0, 0.25, 0.5, 0.75]
    assert set(updates) <= {0.0, 0.25} and updates == sorted(updates)


def test_a_running_step_is_redrawn_with_its_estimate_counting_down():
    lines, updates = [], []
    steps = [PlannedStep(name, "x", 1, lambda: time.sleep(0.3)) for name in ("first", "second")]
    run_steps(steps, lambda fraction, message: lines.append(message), lambda f, m: updates.append(m), every=0.05)
    assert len(lines) == 2 and lines[1].startswith("second (0:00:00 elapsed, ~0:00:00 left)")
    assert any(m.startswith("first (") for m in updates) and any(m.startswith("second (") for m in updates)


def test_a_step_of_a_new_kind_is_estimated_from_its_own_progress_bar():
    def train():
        with tqdm(total=100, file=io.StringIO()) as bar:
            bar.update(50)
            time.sleep(0.3)
            bar.update(50)

    for action, estimated in ((train, True), (lambda: time.sleep(0.3), False)):
        updates = []
        run_steps([PlannedStep("train", "t", 1, action)], lambda f, m: None, lambda f, m, u=updates: u.append(m), 0.05)
        # A tick may come before the bar has moved (a loaded machine); once it has, every tick carries its estimate.
        assert updates and ("left)" in updates[-1]) == estimated and any("left)" in m for m in updates) == estimated


def test_the_run_log_takes_library_output_and_the_error_that_stopped_a_run(tmp_path):
    console = io.StringIO()
    with (
        contextlib.redirect_stdout(console),
        pytest.raises(RuntimeError, match="boom"),
        run_log(tmp_path / "run.log") as shown,
    ):
        print("a metric dict")
        logging.getLogger("transformers").warning("a library warning")
        print("a progress line", file=shown)
        raise RuntimeError("boom")
    log = (tmp_path / "run.log").read_text()
    assert "a metric dict" in log and "a library warning" in log and "RuntimeError: boom" in log
    assert console.getvalue().splitlines() == [
        "a progress line",
        f"finedefics run stopped; its full log: {tmp_path / 'run.log'}",
    ]


def test_the_run_log_keeps_each_progress_bar_as_it_ended_not_its_frames(tmp_path):
    with run_log(tmp_path / "run.log"):
        for step in tqdm(range(200), desc="training", mininterval=0):
            if step == 100:
                tqdm.write("{'loss': 1.0}")  # the Trainer's metric dicts, printed across its bar
        for _ in tqdm(range(50), desc="scoring", mininterval=0, leave=False):
            pass
        print("after the bars")
        bar = tqdm(total=10, desc="cut short", mininterval=0)
        bar.update(3)
    log = (tmp_path / "run.log").read_bytes().decode()  # as written: read_text() would turn each "\r" into a newline
    assert "\r" not in log
    lines = log.splitlines()
    (training,) = [line for line in lines if line.startswith("training")]
    assert "200/200" in training and "{'loss': 1.0}" in lines and "after the bars" in lines
    assert not [line for line in lines if "scoring" in line]  # a bar that clears itself leaves nothing
    assert lines[-1].startswith("cut short") and "3/10" in lines[-1]  # the state it was left in
    bar.close()  # out of tqdm's live bars, which the estimate reads
