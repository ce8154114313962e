"""The embedded default's Table 3 / 6b comparison over several seeds: mean, spread and paired differences.

    python benchmarks/table3_seeds.py --seeds 0 1 2 --world-seed 0 --output-dir benchmark-runs/table3 \\
        --variants zero_shot open_set_only instruction_tuning contrastive_object_category finedefics one_stage \\
        stage1_only

Each seed reruns every variant (`finedefics run --seed S`); finished steps are reused when rerun. Without
`--world-seed` each seed also regenerates the synthetic world and pretrains (or reuses from the cache) its own world
base; with it, every seed shares that one world and its base (as the paper's runs share one Idefics2), and the seed
changes the LoRA initialisation, the data order and the option shuffling. Adjacent rows are compared per seed (the
same world, base and test items), which removes the seed-to-seed spread from their difference. The object-category
alignment of Table 8 (mean cosine between objects and their category names) is read from the analyses of the
variants in `--alignment-variants`: zero-shot is the base before stage I, stage I only is Finedefics' stage I.
Writes `summary.json` and `table3_seeds.png` (accuracy per variant, one dot per seed) into `--output-dir`.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from hf_finedefics.pipeline import VARIANT_TITLES, VARIANTS, load_run_config, run_pipeline  # noqa: E402


def _mean_std(values: list[float], digits: int = 1) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {spread:.{digits}f}"


def _alignment(output_dir: Path, variant: str) -> float | None:
    reports = sorted((output_dir / "analysis" / variant).glob("*/report.json"))
    if not reports:
        return None
    return json.loads(reports[0].read_text())["alignment"]["overall"]


def _plot(per_seed: dict[int, dict[str, dict[str, float]]], variants: list[str], scorer: str, path: Path) -> None:
    figure, axis = plt.subplots(figsize=(8, 0.55 * len(variants) + 1.5))
    for row, variant in enumerate(variants):
        values = [per_seed[seed][variant][scorer] for seed in per_seed]
        axis.scatter(values, [row] * len(values), color="tab:blue", alpha=0.6, label="one seed" if row == 0 else None)
        axis.plot(
            [statistics.mean(values)] * 2, [row - 0.3, row + 0.3], color="black", label="mean" if row == 0 else None
        )
    axis.axvline(25.0, color="grey", linestyle=":", label="chance (4 options)")
    axis.set_yticks(range(len(variants)), [VARIANT_TITLES[v] for v in variants])
    axis.invert_yaxis()
    axis.set_xlabel(f"4-way multiple-choice accuracy (%), scorer {scorer}")
    axis.set_title(f"Table 3 / 6b on the embedded synthetic world, seeds {list(per_seed)}")
    axis.legend(loc="lower right", fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--recipe", help="Run recipe (default: the embedded default).")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, help="Variants (default: the recipe's).")
    parser.add_argument(
        "--world-seed", type=int, help="One synthetic world and world base for every seed (default: one per seed)."
    )
    parser.add_argument(
        "--alignment-variants",
        nargs="*",
        choices=VARIANTS,
        default=["zero_shot", "stage1_only", "finedefics"],
        help="Variants whose object-category alignment (Table 8) is measured; analyses other than alignment are "
        "skipped. Give none to keep the recipe's analyses.",
    )
    parser.add_argument("--output-dir", default="benchmark-runs/table3")
    args = parser.parse_args()

    recipe = load_run_config(args.recipe)
    overrides = {"variants": args.variants}
    if args.world_seed is not None:
        overrides["data"] = {**recipe.data, "synthetic": {**recipe.data["synthetic"], "seed": args.world_seed}}
    if args.alignment_variants:
        analysed = [v for v in args.alignment_variants if v in (args.variants or recipe.variants)]
        overrides["analysis"] = {**recipe.analysis, "analyses": ["alignment"], "variants": analysed}

    per_seed: dict[int, dict[str, dict[str, float]]] = {}
    alignment: dict[int, dict[str, float]] = {}
    for seed in args.seeds:
        output_dir = Path(args.output_dir) / f"seed-{seed}"
        run_pipeline(args.recipe, seed=seed, output_dir=str(output_dir), **overrides)
        per_seed[seed] = json.loads((output_dir / "table3.json").read_text())
        alignment[seed] = {
            variant: value for variant in VARIANTS if (value := _alignment(output_dir, variant)) is not None
        }
        print((output_dir / "table3.md").read_text())

    first = next(iter(per_seed.values()))
    variants = [variant for variant in VARIANTS if variant in first]
    scorers = sorted(first[variants[0]])
    world = f"world seed {args.world_seed}" if args.world_seed is not None else "one world per seed"
    print(
        f"\nAccuracy (%) on the synthetic test split (multiple choice per scorer; open_set_*: the open-set measures), "
        f"seeds {args.seeds}, {world}: mean ± std over seeds\n"
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

    aligned = [v for v in VARIANTS if all(v in alignment[seed] for seed in args.seeds)]
    if aligned:
        print("\nObject-category alignment (Table 8: mean cosine of objects and their category names), mean ± std:\n")
        print("| Variant | alignment | per seed |")
        print("|---|---:|---|")
        for variant in aligned:
            values = [alignment[seed][variant] for seed in args.seeds]
            print(f"| {VARIANT_TITLES[variant]} | {_mean_std(values, 3)} | {' '.join(f'{v:.3f}' for v in values)} |")

    output_dir = Path(args.output_dir)
    scorer = "name_likelihood" if "name_likelihood" in scorers else scorers[0]
    _plot(per_seed, variants, scorer, output_dir / "table3_seeds.png")
    summary = {"seeds": args.seeds, "world_seed": args.world_seed, "accuracy": per_seed, "alignment": alignment}
    (output_dir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"\n{output_dir / 'summary.json'}, {output_dir / 'table3_seeds.png'}")


if __name__ == "__main__":
    main()
