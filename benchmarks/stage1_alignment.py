"""Does stage I align? Its in-batch retrieval and loss terms over the steps, on the embedded default's world.

    python benchmarks/stage1_alignment.py --world-seeds 0 1 2 --output-dir benchmark-runs/stage1_alignment

Trains the stage I of each `--variants` entry (Finedefics, CCC as eq. 7 is printed, the object-category ablation)
exactly as `finedefics run` does (same recipe, data, base and settings; `--stage1 key=value` overrides the recipe's
stage1 section for all of them alike, e.g. `logging_steps=5`), and reads the logged metrics back:
top-1 retrieval object->attribute, attribute->category and object->category among the batch and each row's hard
negatives, each loss term, and the mean cosine to positives and to hard negatives. Chance for a retrieval is about
1 / (batch + hard negatives), higher for attribute->category and object->category where same-class rows of the
batch share the name. Prints the final values per world and writes `stage1_alignment.png` and `stage1_alignment.json` (beside a `table3_seeds.py` run's own files).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import matplotlib
import yaml

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from hf_finedefics.run.pipeline import FinedeficsRun, load_run_config  # noqa: E402

PAIRS = ("object_to_attribute", "attribute_to_category", "object_to_category")
# The contrastive terms drawn, each in its own line style (the generation loss is on another scale).
TERM_STYLES = {"oac": "-", "acc": "--", "ccc": ":", "oc": "-."}


def _override(text: str) -> tuple[str, object]:
    key, _, value = text.partition("=")
    if not key or not value:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    return key, yaml.safe_load(value)


def train_stage1(
    recipe: str | None, world_seed: int, seed: int, variant: str, output_dir: Path, stage1: dict
) -> list[dict]:
    """Stage I of `variant` in world `world_seed`, as `finedefics run --world_seed W --seed S` trains it (a finished
    one in `output_dir`, e.g. a `table3_seeds.py` run, is reused); its logged history."""
    config = load_run_config(recipe, world_seed=world_seed, seed=seed, output_dir=str(output_dir), variants=[variant])
    config.stage1 = {**config.stage1, **stage1}
    run = FinedeficsRun(config)
    run.step_build()
    run.step_train(variant, "stage1")
    folder = run.stage_dir(variant, "stage1")
    states = sorted(folder.glob("checkpoint-*/trainer_state.json"), key=lambda p: int(p.parent.name.split("-")[1]))
    if not states:
        raise FileNotFoundError(f"{folder} has no checkpoint with a trainer_state.json (save_strategy: no?)")
    return [entry for entry in json.loads(states[-1].read_text())["log_history"] if "loss" in entry]


def chance(batch_size: int, negatives: int = 3) -> float:
    return 1 / (batch_size + negatives)


def _plot(histories: dict[str, dict[int, list[dict]]], path: Path, batch_size: int) -> None:
    figure, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    colours = dict(zip(histories, ("tab:blue", "tab:red", "tab:green", "tab:purple")))
    styles = dict(zip(PAIRS, ("-", "--", ":")))
    for variant, by_world in histories.items():
        for world, history in by_world.items():
            steps = [entry["step"] for entry in history]
            for pair in PAIRS:
                if f"accuracy_{pair}" in history[0]:
                    label = f"{variant}: {pair.replace('_', ' ')}" if world == min(by_world) else None
                    values = [entry[f"accuracy_{pair}"] for entry in history]
                    axes[0].plot(steps, values, styles[pair], color=colours[variant], alpha=0.7, label=label)
            for term, style in TERM_STYLES.items():
                if f"loss_{term}" in history[0]:
                    label = f"{variant}: {term}" if world == min(by_world) else None
                    values = [entry[f"loss_{term}"] for entry in history]
                    axes[1].plot(steps, values, style, color=colours[variant], alpha=0.7, label=label)
    axes[0].axhline(chance(batch_size), color="grey", linestyle=":", label="chance, instance level")
    axes[0].set(xlabel="stage I step", ylabel="in-batch top-1 retrieval", ylim=(0, 1.02), title="Retrieval")
    axes[1].set(xlabel="stage I step", ylabel="loss", title="Contrastive terms (unweighted)")
    for axis in axes:
        axis.legend(fontsize="x-small")
    figure.suptitle(f"Stage I on the embedded default, worlds {sorted({w for h in histories.values() for w in h})}")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", help="Run recipe (default: the embedded default).")
    parser.add_argument("--world-seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--seed", type=int, default=0, help="Training seed.")
    parser.add_argument(
        "--variants", nargs="+", default=["finedefics", "finedefics_literal_ccc", "contrastive_object_category"]
    )
    parser.add_argument("--stage1", type=_override, nargs="*", default=[], help="key=value overrides of stage1.")
    parser.add_argument("--output-dir", default="benchmark-runs/stage1_alignment")
    args = parser.parse_args(argv)

    stage1 = dict(args.stage1)
    output_dir = Path(args.output_dir)
    histories: dict[str, dict[int, list[dict]]] = {variant: {} for variant in args.variants}
    for world in args.world_seeds:
        for variant in args.variants:
            folder = output_dir / f"world-{world}" / f"seed-{args.seed}"  # the layout of table3_seeds.py
            histories[variant][world] = train_stage1(args.recipe, world, args.seed, variant, folder, stage1)
    recipe = load_run_config(args.recipe)
    batch_size = {**recipe.stage1, **stage1}.get("per_device_train_batch_size", 8)
    print(
        f"\nEnd of stage I (last logged window), chance ~{chance(batch_size):.3f} at batch {batch_size} + 3 hard "
        "negatives; mean over worlds (per world):\n"
    )
    final: dict[str, dict[str, list[float]]] = {}
    for variant, by_world in histories.items():
        keys = [key for key in by_world[args.world_seeds[0]][-1] if key.startswith(("accuracy_", "loss_", "cosine_"))]
        final[variant] = {key: [by_world[w][-1][key] for w in args.world_seeds] for key in keys}
        print(f"## {variant}")
        for key, values in final[variant].items():
            print(f"- {key}: {statistics.mean(values):.3f} ({' '.join(f'{v:.3f}' for v in values)})")
    output_dir.mkdir(parents=True, exist_ok=True)
    _plot(histories, output_dir / "stage1_alignment.png", batch_size)
    summary = {"world_seeds": args.world_seeds, "stage1": stage1, "final": final, "histories": histories}
    (output_dir / "stage1_alignment.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"\n{output_dir / 'stage1_alignment.json'}, {output_dir / 'stage1_alignment.png'}")
    return summary


if __name__ == "__main__":
    main()
