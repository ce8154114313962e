"""`finedefics run`: the whole pipeline (build -> stage I -> stage II -> evaluate -> analyze) from a run recipe.

    finedefics run                                   # the embedded default (recipes/tiny/config_run.yaml)
    finedefics run --config my_run.yaml --seed 1     # your recipe; flags override its top-level keys

With no recipe it runs the embedded default: the paper's Table 3 comparison on a generated fine-grained dataset
with a small MLLM of that world pretrained in-process (once, then cached), on CPU, in minutes.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from trl import TrlParser

from hf_finedefics.run_config import RunConfig, embedded_recipe_path
from hf_finedefics.scripts import run


class RunParser(TrlParser):
    """A `TrlParser` over `RunConfig` whose `--config` defaults to the embedded recipe."""

    def parse_args_and_config(self, args: Sequence[str] | None = None, **kwargs):
        args = list(sys.argv[1:] if args is None else args)
        if args and not args[0].startswith("-"):
            self.error(f"pass the recipe as --config {args[0]}")
        if "--config" not in args:
            args = ["--config", str(embedded_recipe_path()), *args]
        return super().parse_args_and_config(args, **kwargs)


def make_parser() -> TrlParser:
    return RunParser((RunConfig,), prog="finedefics run")


def main(config: RunConfig) -> None:
    from hf_finedefics.pipeline import FinedeficsRun

    FinedeficsRun(config).run()
    print(f"\nFGVR accuracy on the test split, multiple choice and open set ({config.output_dir}/table3.md):\n")
    print((Path(config.output_dir) / "table3.md").read_text())
    print(f"\nReports: {config.output_dir}/evaluation/report.md, analyses: {config.output_dir}/analysis/")


if __name__ == "__main__":
    run(make_parser, main)
