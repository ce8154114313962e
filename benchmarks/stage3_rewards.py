"""Does stage III (GRPO) add to stages I and II? Rewards, answer positions and step times of a `table3_seeds.py` grid.

    python benchmarks/table3_seeds.py --world-seeds 0 1 2 --seeds 0 1 --output-dir benchmark-runs/table3_rl \\
        --variants zero_shot instruction_tuning finedefics instruction_tuning_rl finedefics_rl
    python benchmarks/stage3_rewards.py --output-dir benchmark-runs/table3_rl

Reads, for every (world, seed) pair of the grid and every RL variant: the reward logged over stage III's steps (the
last checkpoint's trainer state) and its seconds per step, and, for the RL variant and the stage II model it starts
from, where the multiple-choice answers fall among the options per scorer. The answer-position bias is the total
variation distance between the predicted letters (unparsed answers included) and the true letters: 0 when the
answers follow the truth's spread, 100 when they never do; a model that answers one letter everywhere scores 75.
Prints the reward at the start and end of stage III, the seconds per step, and the bias before and after, each as
a mean over pairs; writes `stage3_rewards.png` (the reward curves) and `stage3_rewards.json`.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from hf_finedefics.evaluation.report import read_summaries  # noqa: E402
from hf_finedefics.run.variants import VARIANT_TABLE  # noqa: E402

# The stage III variants, and the variant whose stage II each starts from.
STAGE2_OF = {name: v.owner("stage2") for name, v in VARIANT_TABLE.items() if v.trains("stage3")}


def reward_history(stage3_dir: Path) -> list[dict]:
    """The logged entries of a finished stage III, from its last checkpoint."""
    states = sorted(stage3_dir.glob("checkpoint-*/trainer_state.json"), key=lambda p: int(p.parent.name.split("-")[1]))
    if not states:
        raise FileNotFoundError(f"{stage3_dir} has no checkpoint with a trainer_state.json: run the grid first.")
    return [entry for entry in json.loads(states[-1].read_text())["log_history"] if "reward" in entry]


def position_bias(summary: dict) -> float:
    """Total variation distance (percent points) between the predicted and the true answer letters."""
    predicted, truth = summary["predicted_positions"], summary["groundtruth_positions"]
    return 0.5 * sum(abs(share - truth.get(letter, 0.0)) for letter, share in predicted.items())


def _mean(values: list[float], digits: int = 2) -> str:
    return f"{statistics.mean(values):.{digits}f} ({' '.join(f'{v:.{digits}f}' for v in values)})"


def _plot(histories: dict[str, dict[str, list[dict]]], path: Path) -> None:
    figure, axis = plt.subplots(figsize=(9, 4.5))
    colours = dict(zip(histories, ("tab:blue", "tab:red", "tab:green")))
    for variant, by_pair in histories.items():
        for index, history in enumerate(by_pair.values()):
            axis.plot(
                [entry["step"] for entry in history],
                [entry["reward"] for entry in history],
                color=colours[variant],
                alpha=0.6,
                label=variant if index == 0 else None,
            )
    axis.set(xlabel="stage III step", ylabel="mean reward of the sampled answers", title="GRPO reward, every pair")
    axis.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default="benchmark-runs/table3_rl", help="The table3_seeds.py grid.")
    parser.add_argument("--variants", nargs="+", default=list(STAGE2_OF), choices=list(STAGE2_OF))
    args = parser.parse_args(argv)

    grid = Path(args.output_dir)
    pairs = sorted(grid.glob("world-*/seed-*"))
    if not pairs:
        raise FileNotFoundError(f"{grid} holds no world-*/seed-* runs of benchmarks/table3_seeds.py.")
    histories: dict[str, dict[str, list[dict]]] = {variant: {} for variant in args.variants}
    final: dict[str, dict[str, list[float]]] = {}
    for variant in args.variants:
        start = STAGE2_OF[variant]
        measures: dict[str, list[float]] = {"reward_first": [], "reward_last": [], "seconds_per_step": []}
        for pair in pairs:
            name = f"{pair.parent.name}/{pair.name}"
            history = histories[variant][name] = reward_history(pair / variant / "stage3")
            measures["reward_first"].append(history[0]["reward"])
            measures["reward_last"].append(history[-1]["reward"])
            measures["seconds_per_step"].append(statistics.mean(entry["step_time"] for entry in history))
            summaries = read_summaries(pair / "evaluation")
            for scorer in summaries[variant]:
                if scorer == "open_set":
                    continue
                for model, key in ((start, "before"), (variant, "after")):
                    biases = [position_bias(summary) for summary in summaries[model][scorer].values()]
                    measures.setdefault(f"position_bias_{key}_{scorer}", []).append(statistics.mean(biases))
        final[variant] = measures

    print(f"\nStage III over {len(pairs)} (world, seed) pairs: mean (per pair)\n")
    for variant, measures in final.items():
        print(f"## {variant} (from {STAGE2_OF[variant]})")
        for key, values in measures.items():
            print(f"- {key}: {_mean(values)}")
    _plot(histories, grid / "stage3_rewards.png")
    summary = {"pairs": [f"{p.parent.name}/{p.name}" for p in pairs], "final": final, "histories": histories}
    (grid / "stage3_rewards.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"\n{grid / 'stage3_rewards.json'}, {grid / 'stage3_rewards.png'}")
    return summary


if __name__ == "__main__":
    main()
