"""`finedefics run [RECIPE]`: the whole pipeline (build -> stage I -> stage II -> evaluate -> analyze).

With no recipe it runs the embedded default: the paper's Table 3 comparison on a generated fine-grained dataset
with a small model built in-process, on CPU, in minutes.
"""

from __future__ import annotations

import argparse

from hf_finedefics.pipeline import FinedeficsRun, comparison_table, load_run_config


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="finedefics run", description=__doc__.splitlines()[0])
    parser.add_argument("recipe", nargs="?", help="Run recipe YAML (default: the embedded default).")
    parser.add_argument("--output_dir", help="Override the recipe's output_dir.")
    parser.add_argument("--seed", type=int, help="Override the recipe's seed.")
    parser.add_argument("--variants", nargs="+", help="Override the Table 3 variants to run.")
    args = parser.parse_args(argv)
    config = load_run_config(args.recipe, output_dir=args.output_dir, seed=args.seed, variants=args.variants)
    results = FinedeficsRun(config).run()
    print(f"\nFGVR accuracy on the test split, multiple choice and open set ({config.output_dir}/table3.md):\n")
    print(comparison_table(results))
    print(f"\nReports: {config.output_dir}/evaluation/report.md, analyses: {config.output_dir}/analysis/")


if __name__ == "__main__":
    main()
