"""The `finedefics` executable: one vocabulary of flags, and user mistakes reported in one line."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from hf_finedefics.cli import main as finedefics


def _run(*args: str, **env: str) -> subprocess.CompletedProcess:
    executable = shutil.which("finedefics")
    if executable is None:
        pytest.skip("the finedefics executable is not installed (pip install -e .)")
    return subprocess.run([executable, *args], capture_output=True, text=True, timeout=300, env={**os.environ, **env})


def test_a_missing_source_folder_is_one_line_naming_the_file(tmp_path):
    missing = tmp_path / "no-such-pets"
    result = _run("build-dataset", "--sources", "pet-37", "--source_dirs", f"pet-37={missing}", "--output_dir",
                  str(tmp_path / "out"), "--negatives", "random")  # fmt: skip
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert f"finedefics build-dataset: error: Missing metadata file: {missing}" in result.stderr
    debug = _run("build-dataset", "--sources", "pet-37", "--source_dirs", f"pet-37={missing}", "--output_dir",
                 str(tmp_path / "out"), "--negatives", "random", FINEDEFICS_DEBUG="1")  # fmt: skip
    assert "Traceback" in debug.stderr


@pytest.mark.parametrize(
    ("command", "old", "new"),
    [
        ("build-dataset", "--out", "--output_dir"),
        ("evaluate", "--model", "--model_name_or_path"),
        ("evaluate", "--datasets", "--sources"),
        ("analyze", "--dataset", "--dataset_name"),
        ("push-adapter", "--base-model", "--model_name_or_path"),
    ],
)
def test_old_flag_spellings_name_the_new_one(command, old, new, capsys):
    with pytest.raises(SystemExit):
        finedefics([command, old, "x"])
    assert f"{old} was renamed: use {new}" in capsys.readouterr().err


def test_every_command_reads_a_config_file(tmp_path, capsys):
    """`--config` works for build-dataset too, and a bad value in it is refused naming the option."""
    config = tmp_path / "build.yaml"
    config.write_text(f"sources: [pet-37]\ndata_dir: {tmp_path}\noutput_dir: {tmp_path / 'out'}\nnegatives: clip\n")
    with pytest.raises(SystemExit):
        finedefics(["build-dataset", "--config", str(config)])
    assert "--negatives clip needs --clip" in capsys.readouterr().err
