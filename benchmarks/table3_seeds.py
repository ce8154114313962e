"""The embedded default's Table 3 / 6b comparison over several seeds: mean, spread and paired differences.

    python benchmarks/table3_seeds.py --seeds 0 1 2 --output-dir benchmark-runs/table3
    python benchmarks/table3_seeds.py --seeds 0 1 2 --variants zero_shot open_set_only instruction_tuning \\
        contrastive_object_category finedefics one_stage stage1_only

Each seed regenerates the synthetic world, pretrains (or reuses from the cache) its world base and reruns every
variant (`finedefics run --seed S`); finished seeds are reused when rerun. Adjacent rows are compared per seed
(the same world, base and test items), which removes the seed-to-seed spread from their difference.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from hf_finedefics.pipeline import VARIANT_TITLES, VARIANTS, run_pipeline


def _mean_std(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.1f} ± {spread:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--recipe", help="Run recipe (default: the embedded default).")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, help="Variants (default: the recipe's).")
    parser.add_argument("--output-dir", default="benchmark-runs/table3")
    args = parser.parse_args()

    per_seed: dict[int, dict[str, dict[str, float]]] = {}
    for seed in args.seeds:
        output_dir = Path(args.output_dir) / f"seed-{seed}"
        run_pipeline(args.recipe, seed=seed, output_dir=str(output_dir), variants=args.variants)
        per_seed[seed] = json.loads((output_dir / "table3.json").read_text())
        print((output_dir / "table3.md").read_text())

    first = next(iter(per_seed.values()))
    variants = [variant for variant in VARIANTS if variant in first]
    scorers = sorted(first[variants[0]])
    print(
        f"\nAccuracy (%) on the synthetic test split (multiple choice per scorer; open_set_*: the open-set measures), "
        f"seeds {args.seeds}: mean ± std over seeds\n"
    )
    print("| Variant | " + " | ".join(scorers) + " |")
    print("|---|" + "---:|" * len(scorers))
    for variant in variants:
        cells = [_mean_std([per_seed[seed][variant][scorer] for seed in args.seeds]) for scorer in scorers]
        print(f"| {VARIANT_TITLES[variant]} | " + " | ".join(cells) + " |")

    print("\nPaired differences of adjacent rows (lower row minus upper row), per seed, then mean ± std:\n")
    print("| Rows | " + " | ".join(scorers) + " |")
    print("|---|" + "---:|" * len(scorers))
    for upper, lower in zip(variants, variants[1:]):
        cells = []
        for scorer in scorers:
            differences = [per_seed[seed][lower][scorer] - per_seed[seed][upper][scorer] for seed in args.seeds]
            per = " ".join(f"{d:+.1f}" for d in differences)
            cells.append(f"{_mean_std(differences)} ({per})")
        print(f"| {lower} - {upper} | " + " | ".join(cells) + " |")
    print("\nPer seed:", json.dumps(per_seed, indent=1))


if __name__ == "__main__":
    main()
