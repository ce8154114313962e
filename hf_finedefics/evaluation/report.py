"""Per-dataset summaries and the Table-2-style report over every model, scorer and dataset evaluated."""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from dataset_builders.prompts import OPTION_LETTERS

from .items import DATASETS

UNPARSED = "none"


def _percent(count: int, total: int) -> float:
    return round(100.0 * count / total, 2) if total else 0.0


def summarize_results(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy and failure rate (percent), per-class accuracy, and where answers and true classes sit among
    the shown options (a model that favours one letter shows here)."""
    total = len(results)
    num_options = max((len(result["options"]) for result in results), default=0)
    letters = list(OPTION_LETTERS[:num_options])
    by_class: dict[str, list[bool]] = defaultdict(list)
    for result in results:
        by_class[result["groundtruth"]].append(result["prediction"] == result["answer"])
    predicted = Counter(
        UNPARSED if result["prediction"] is None else OPTION_LETTERS[result["prediction"]] for result in results
    )
    truth = Counter(OPTION_LETTERS[result["answer"]] for result in results)
    return {
        "num_items": total,
        "accuracy": _percent(sum(result["prediction"] == result["answer"] for result in results), total),
        "failure_rate": _percent(predicted[UNPARSED], total),
        "per_class_accuracy": {
            name: _percent(sum(hits), len(hits)) for name, hits in sorted(by_class.items(), key=lambda kv: kv[0])
        },
        "predicted_positions": {key: _percent(predicted[key], total) for key in [*letters, UNPARSED]},
        "groundtruth_positions": {letter: _percent(truth[letter], total) for letter in letters},
    }


def _dataset_order(names: set[str]) -> list[str]:
    known = [name for name in DATASETS if name in names]
    return known + sorted(names - set(known))


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def build_report(summaries: dict[str, dict[str, dict[str, dict[str, Any]]]]) -> tuple[dict[str, Any], str]:
    """`summaries[model][scorer][dataset]` (from `summarize_results`) -> (JSON report, markdown report).

    One row per model and scorer, one column per dataset in the paper's order, and the average, which is
    given only for rows that cover every column (an average over fewer datasets is not comparable).
    """
    datasets = _dataset_order({name for scorers in summaries.values() for row in scorers.values() for name in row})
    rows = []
    for model, scorers in sorted(summaries.items()):
        for scorer, row in sorted(scorers.items()):
            complete = all(name in row for name in datasets)
            average = round(sum(row[name]["accuracy"] for name in datasets) / len(datasets), 2) if complete else None
            rows.append({"model": model, "scorer": scorer, "average_accuracy": average, "datasets": row})

    def cell(row: dict[str, Any], name: str, key: str) -> str:
        return f"{row['datasets'][name][key]:.2f}" if name in row["datasets"] else "–"

    titles = [DATASETS[name].display_name if name in DATASETS else name for name in datasets]
    lines = ["# Multiple-choice FGVR accuracy (%)", ""]
    lines += _table(
        ["Model", "Scorer", *titles, "Avg."],
        [
            [
                row["model"],
                row["scorer"],
                *(cell(row, name, "accuracy") for name in datasets),
                "–" if row["average_accuracy"] is None else f"{row['average_accuracy']:.2f}",
            ]
            for row in rows
        ],
    )
    lines += ["", "## Failure rate (%): answers naming no option", ""]
    lines += _table(
        ["Model", "Scorer", *titles],
        [[row["model"], row["scorer"], *(cell(row, name, "failure_rate") for name in datasets)] for row in rows],
    )
    lines += ["", "## Answer positions (%): predicted letter / true letter", ""]
    position_rows = []
    for row in rows:
        for name in datasets:
            if name not in row["datasets"]:
                continue
            summary = row["datasets"][name]
            positions = ", ".join(
                f"{key} {value:.1f}/{summary['groundtruth_positions'].get(key, 0.0):.1f}"
                if key != UNPARSED
                else f"{key} {value:.1f}"
                for key, value in summary["predicted_positions"].items()
            )
            position_rows.append([row["model"], row["scorer"], name, positions])
    lines += _table(["Model", "Scorer", "Dataset", "Positions"], position_rows)
    return {"datasets": datasets, "rows": rows}, "\n".join(lines) + "\n"


def summary_path(output_dir: str | os.PathLike, model: str, dataset: str, scorer: str) -> Path:
    return Path(output_dir) / "summaries" / model / f"{dataset}.{scorer}.json"


def write_report(output_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Collect every summary under `output_dir` (all models evaluated there) into report.json / report.md."""
    output_dir = Path(output_dir)
    summaries: dict[str, dict[str, dict[str, dict[str, Any]]]] = defaultdict(lambda: defaultdict(dict))
    for path in sorted((output_dir / "summaries").glob("*/*.json")):
        dataset, scorer = path.stem.rsplit(".", 1)
        summaries[path.parent.name][scorer][dataset] = json.loads(path.read_text(encoding="utf-8"))
    report, markdown = build_report(summaries)
    json_path, markdown_path = output_dir / "report.json", output_dir / "report.md"
    json_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    markdown_path.write_text(markdown, encoding="utf-8")
    return json_path, markdown_path


def mean_accuracies(results: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, float]]:
    return {
        variant: {
            scorer: float(np.mean([s["accuracy"] for s in by_dataset.values()])) for scorer, by_dataset in r.items()
        }
        for variant, r in results.items()
    }


def comparison_table(results: dict[str, dict[str, dict[str, Any]]], titles: dict[str, str] | None = None) -> str:
    """The paper's Table 3 shape: one row per model (titled by `titles`, default its name), mean multiple-choice
    accuracy over the datasets per scorer."""
    accuracies = mean_accuracies(results)
    scorers = sorted({scorer for by_scorer in accuracies.values() for scorer in by_scorer})
    lines = ["| Variant | " + " | ".join(f"MC accuracy ({s})" for s in scorers) + " |"]
    lines.append("|---|" + "---:|" * len(scorers))
    for variant, by_scorer in accuracies.items():
        cells = " | ".join(f"{by_scorer[s]:.2f}" if s in by_scorer else "-" for s in scorers)
        lines.append(f"| {(titles or {}).get(variant, variant)} | {cells} |")
    return "\n".join(lines)
