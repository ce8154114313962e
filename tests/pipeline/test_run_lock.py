"""Two `finedefics run` into one folder: the second refuses while the first works, and a lock a killed run left
behind is taken over."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from hf_finedefics.folder_lock import LOCK_NAME
from hf_finedefics.run.steps import RUN_LOG_NAME

from .test_recipe_validation import _console_error, _recipe

# A real second process holding the lock of the folder it is given, until it is killed.
HOLDER = """
import sys, time
from pathlib import Path
from hf_finedefics.folder_lock import folder_lock
with folder_lock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(600)
"""


@contextlib.contextmanager
def lock_held_by_another_process(folder: Path) -> Iterator[subprocess.Popen]:
    """A second process holding the lock of `folder` while the block runs; killed (SIGKILL) at its end."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        holder.kill()
        holder.wait()


def test_a_run_into_a_held_folder_is_refused_naming_the_holder_until_it_is_killed(tmp_path, monkeypatch, capsys):
    run_dir = tmp_path / "run"
    # A run that fails quickly once it is past the lock: evaluation data for built data is left unset.
    recipe = _recipe(tmp_path, base_model="testing:idefics2", data={"dataset": str(tmp_path / "built")})
    argv = ["run", "--config", recipe, "--output_dir", str(run_dir)]
    with lock_held_by_another_process(run_dir) as holder:
        error = _console_error(argv, monkeypatch, capsys)
        assert f"{run_dir} is in use by PID {holder.pid}" in error
        assert not (run_dir / RUN_LOG_NAME).exists()  # refused before any work
    assert (run_dir / LOCK_NAME).is_file()  # a kill leaves the lock behind
    error = _console_error(argv, monkeypatch, capsys)
    assert "in use" not in error and "evaluation.data_dir" in error  # past the lock: the run itself stopped
    assert (run_dir / RUN_LOG_NAME).is_file()
    assert sorted(path.name for path in run_dir.iterdir()) == [RUN_LOG_NAME]  # released when the run stopped
