"""The embedded default's Table 3 / 6b / 8 comparison over several worlds and training seeds.

    python benchmarks/table3_seeds.py --world-seeds 0 1 2 --seeds 0 1 --output-dir benchmark-runs/table3 \\
        --variants zero_shot open_set_only instruction_tuning contrastive_object_category \\
        contrastive_object_category_naming finedefics finedefics_literal_ccc one_stage stage1_only

Every (world seed, training seed) pair reruns every variant (`finedefics run --world_seed W --seed S`); finished
steps are reused when rerun. A world seed draws the synthetic world (categories, names, images) and pretrains (or
reuses from the cache) its own world base; the training seed changes the LoRA initialisation, the data order and the
option shuffling. Differences between variants are paired within each pair (same world, base and test items), which
removes the world-to-world spread from them; the spread over all pairs says how much of a gap is luck of the base.
Table 8 (mean cosine of objects and their category names) and its companions (the gap own-name minus other names,
object -> name top-1) are read from `table3.json` for the analysed variants (`--alignment-variants`): zero-shot is
the base before stage I, stage I only is Finedefics' stage I. Writes `summary.json` and `table3_seeds.png`.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from hf_finedefics.run.pipeline import load_run_config, run_pipeline  # noqa: E402
from hf_finedefics.run.variants import ALL_VARIANTS, VARIANT_TABLE  # noqa: E402


def _mean_std(values: list[float], digits: int = 1) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {spread:.{digits}f}"


# The paper's Table 3 / 6b averages (Idefics2-8B, six datasets; REFERENCE.md section 5), drawn beside ours.
PAPER_ACCURACY = {
    "zero_shot": 65.95,
    "open_set_only": 0.03,
    "instruction_tuning": 76.13,
    "contrastive_object_category": 72.72,
    "finedefics": 76.84,
    "one_stage": 25.42,
    "stage1_only": 0.00,
}
# The paper's relations between rows (Tables 3, 6b), as (higher, lower, the paper's gap in points).
PAPER_RELATIONS = (
    ("finedefics", "instruction_tuning", 0.71),
    ("instruction_tuning", "contrastive_object_category", 3.41),
    ("contrastive_object_category", "zero_shot", 6.77),
    ("finedefics", "contrastive_object_category", 4.12),
    ("finedefics", "one_stage", 51.42),
    ("instruction_tuning", "open_set_only", 76.10),
)
# Comparisons of our own variants that change one setting (no paper value).
OWN_RELATIONS = (
    ("finedefics", "finedefics_literal_ccc"),
    ("contrastive_object_category_naming", "contrastive_object_category"),
    # Stage III (GRPO) against its starting point, and whether alignment and RL add up.
    ("finedefics_rl", "finedefics"),
    ("instruction_tuning_rl", "instruction_tuning"),
    ("finedefics_rl", "instruction_tuning_rl"),
)
ALIGNMENT_MEASURES = ("alignment_mean_cosine", "alignment_gap", "alignment_object_to_name_top1")


def _plot(per_seed: dict[str, dict[str, dict[str, float]]], variants: list[str], scorer: str, path: Path) -> None:
    figure, axis = plt.subplots(figsize=(11, 0.55 * len(variants) + 2))
    for row, variant in enumerate(variants):
        values = [per_seed[seed][variant][scorer] for seed in per_seed]
        axis.scatter(
            values,
            [row] * len(values),
            color="tab:blue",
            alpha=0.6,
            label="ours, one world x seed" if row == 0 else None,
        )
        axis.plot(
            [statistics.mean(values)] * 2,
            [row - 0.3, row + 0.3],
            color="black",
            label="ours, mean" if row == 0 else None,
        )
        if variant not in PAPER_ACCURACY:
            continue
        axis.scatter(
            PAPER_ACCURACY[variant],
            row,
            marker="x",
            color="tab:red",
            label="paper (Idefics2-8B)" if row == 0 else None,
        )
    axis.axvline(25.0, color="grey", linestyle=":", label="chance (4 options)")
    axis.set_yticks(range(len(variants)), [VARIANT_TABLE[v].title for v in variants])
    axis.invert_yaxis()
    axis.set_xlim(-2, 102)
    axis.set_xlabel(f"4-way multiple-choice accuracy (%): ours by {scorer}, the paper's by letter")
    axis.set_title(f"Table 3 / 6b, embedded default: {len(per_seed)} (world, seed) pairs vs the paper", loc="right")
    axis.legend(loc="lower right", fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _pairs_summary(values: list[float], digits: int = 1) -> str:
    return f"{_mean_std(values, digits)} ({' '.join(f'{v:+.{digits}f}' for v in values)})"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world-seeds", type=int, nargs="+", default=[0], help="Synthetic worlds (and bases).")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="Training seeds, in every world.")
    parser.add_argument("--recipe", help="Run recipe (default: the embedded default).")
    parser.add_argument("--variants", nargs="+", choices=ALL_VARIANTS, help="Variants (default: the recipe's).")
    parser.add_argument(
        "--alignment-variants",
        nargs="*",
        choices=ALL_VARIANTS,
        default=["zero_shot", "stage1_only", "contrastive_object_category", "finedefics"],
        help="Variants whose object-category alignment (Table 8) is measured; analyses other than alignment are "
        "skipped. Give none to keep the recipe's analyses.",
    )
    parser.add_argument("--output-dir", default="benchmark-runs/table3")
    args = parser.parse_args(argv)

    recipe = load_run_config(args.recipe)
    variants_run = args.variants or recipe.variants
    overrides: dict = {"variants": args.variants}
    if args.alignment_variants:
        analysed = [v for v in args.alignment_variants if v in variants_run]
        overrides["analysis"] = {**recipe.analysis, "analyses": ["alignment"]}
        overrides["analysis_variants"] = analysed

    results: dict[str, dict[str, dict[str, float]]] = {}
    for world in args.world_seeds:
        for seed in args.seeds:
            output_dir = Path(args.output_dir) / f"world-{world}" / f"seed-{seed}"
            run_pipeline(args.recipe, world_seed=world, seed=seed, output_dir=str(output_dir), **overrides)
            results[f"world {world}, seed {seed}"] = json.loads((output_dir / "table3.json").read_text())
            print((output_dir / "table3.md").read_text())
    pairs = list(results)

    first = results[pairs[0]]
    variants = [variant for variant in ALL_VARIANTS if variant in first]
    scorers = sorted(key for key in first[variants[0]] if not key.startswith("alignment_"))
    print(
        f"\nAccuracy (%) on the synthetic test split (multiple choice per scorer; open_set_*: the open-set measures), "
        f"worlds {args.world_seeds} x training seeds {args.seeds}: mean ± std over the {len(pairs)} pairs\n"
    )
    print("| Variant | " + " | ".join(scorers) + " |")
    print("|---|" + "---:|" * len(scorers))
    for variant in variants:
        cells = [_mean_std([results[pair][variant][scorer] for pair in pairs]) for scorer in scorers]
        print(f"| {VARIANT_TABLE[variant].title} | " + " | ".join(cells) + " |")

    print("\nPaired differences (higher row minus lower row as the paper orders them), per pair, mean ± std:\n")
    print("| Relation | paper | " + " | ".join(scorers) + " |")
    print("|---|---:|" + "---:|" * len(scorers))
    relations = [(a, b, f"{gap:+.2f}") for a, b, gap in PAPER_RELATIONS] + [(a, b, "-") for a, b in OWN_RELATIONS]
    differences: dict[str, dict[str, list[float]]] = {}
    for higher, lower, paper in relations:
        if higher not in variants or lower not in variants:
            continue
        name = f"{higher} - {lower}"
        differences[name] = {
            scorer: [results[pair][higher][scorer] - results[pair][lower][scorer] for pair in pairs]
            for scorer in scorers
        }
        cells = [_pairs_summary(differences[name][scorer]) for scorer in scorers]
        print(f"| {name} | {paper} | " + " | ".join(cells) + " |")

    aligned = [v for v in variants if all(ALIGNMENT_MEASURES[0] in results[pair][v] for pair in pairs)]
    if aligned:
        print(
            "\nObject-category alignment (Table 8: mean cosine of objects and their names; the paper has 0.13 -> 0.27)"
        )
        print("with the gap own-name minus other names and object -> name top-1, mean ± std over pairs:\n")
        print("| Variant | mean cosine | gap | top-1 (%) |")
        print("|---|---:|---:|---:|")
        for variant in aligned:
            cells = [
                _mean_std([results[pair][variant][m] * (100 if m.endswith("top1") else 1) for pair in pairs], 3)
                for m in ALIGNMENT_MEASURES
            ]
            print(f"| {VARIANT_TABLE[variant].title} | " + " | ".join(cells) + " |")

    output_dir = Path(args.output_dir)
    scorer = "name_likelihood" if "name_likelihood" in scorers else scorers[0]
    _plot(results, variants, scorer, output_dir / "table3_seeds.png")
    summary = {
        "world_seeds": args.world_seeds,
        "seeds": args.seeds,
        "results": results,
        "paired_differences": differences,
    }
    (output_dir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"\n{output_dir / 'summary.json'}, {output_dir / 'table3_seeds.png'}")
    return summary


if __name__ == "__main__":
    main()
