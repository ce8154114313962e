"""`finedefics run [RECIPE]`: the whole pipeline (build -> stage I -> stage II -> evaluate -> analyze).

With no recipe it runs the embedded default: the paper's Table 3 comparison on a generated fine-grained dataset
with a small MLLM of that world pretrained in-process (once, then cached), on CPU, in minutes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hf_finedefics.pipeline import FinedeficsRun, load_run_config


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="finedefics run", description=__doc__.splitlines()[0])
    parser.add_argument("recipe", nargs="?", help="Run recipe YAML (default: the embedded default).")
    parser.add_argument("--output_dir", help="Override the recipe's output_dir.")
    parser.add_argument("--seed", type=int, help="Override the recipe's seed.")
    parser.add_argument("--variants", nargs="+", help="Override the Table 3 variants to run.")
    parser.add_argument(
        "--rebuild_world", action="store_true", help="Pretrain the world base again even if it is cached."
    )
    args = parser.parse_args(argv)
    config = load_run_config(
        args.recipe,
        output_dir=args.output_dir,
        seed=args.seed,
        variants=args.variants,
        rebuild_world=args.rebuild_world or None,
    )
    FinedeficsRun(config).run()
    print(f"\nFGVR multiple-choice accuracy on the test split ({config.output_dir}/table3.md):\n")
    print((Path(config.output_dir) / "table3.md").read_text())
    print(f"\nReports: {config.output_dir}/evaluation/report.md, analyses: {config.output_dir}/analysis/")


if __name__ == "__main__":
    main()
