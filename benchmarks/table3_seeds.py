"""The embedded default's Table 3 comparison over several seeds: mean and spread per variant.

    python benchmarks/table3_seeds.py --seeds 0 1 2 --output-dir benchmark-runs/table3

Each seed regenerates the synthetic dataset, rebuilds the tiny base model's training data and reruns every
variant (`finedefics run --seed S`); finished seeds are reused when rerun.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from hf_finedefics.pipeline import VARIANT_TITLES, run_pipeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--recipe", help="Run recipe (default: the embedded default).")
    parser.add_argument("--output-dir", default="benchmark-runs/table3")
    args = parser.parse_args()

    per_seed: dict[int, dict[str, dict[str, float]]] = {}
    for seed in args.seeds:
        output_dir = Path(args.output_dir) / f"seed-{seed}"
        run_pipeline(args.recipe, seed=seed, output_dir=str(output_dir))
        per_seed[seed] = json.loads((output_dir / "table3.json").read_text())

    variants = list(next(iter(per_seed.values())))
    scorers = sorted(next(iter(per_seed.values()))[variants[0]])
    print(
        f"\nAccuracy (%) on the synthetic test split (multiple choice per scorer; open_set_*: the open-set measures), "
        f"seeds {args.seeds}: mean ± std (min-max)\n"
    )
    print("| Variant | " + " | ".join(scorers) + " |")
    print("|---|" + "---:|" * len(scorers))
    for variant in variants:
        cells = []
        for scorer in scorers:
            values = [per_seed[seed][variant][scorer] for seed in args.seeds]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.mean(values):.1f} ± {spread:.1f} ({min(values):.1f}-{max(values):.1f})")
        print(f"| {VARIANT_TITLES[variant]} | " + " | ".join(cells) + " |")
    print("\nPer seed:", json.dumps(per_seed, indent=1))


if __name__ == "__main__":
    main()
