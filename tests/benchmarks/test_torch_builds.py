"""benchmarks/torch_builds.py end to end at a tiny scale: one environment, one round, a few world steps."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "torch_builds.py"


def test_torch_builds_prints_every_figure_for_the_environment():
    command = [sys.executable, str(SCRIPT), "--python", sys.executable, "--rounds", "1", "--world-steps", "6"]
    output = subprocess.run(command, check=True, capture_output=True, text=True, timeout=600).stdout
    table = output.split("ratio = this environment / the first\n", 1)[1].splitlines()
    assert "torch " in table[0]
    figures = {line.split()[0]: float(line.split()[2]) for line in table[1:] if line.strip()}
    assert figures.keys() == {"import", "dispatch", "stage1", "world", "scoring"}
    assert all(value > 0 for value in figures.values())
