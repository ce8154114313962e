"""`evaluate` metric modules shipped with the package, loadable offline by path:
``evaluate.load(hf_finedefics.metrics.FGVR_MULTIPLE_CHOICE)``."""

from pathlib import Path

FGVR_MULTIPLE_CHOICE = str(Path(__file__).parent / "fgvr_multiple_choice")
