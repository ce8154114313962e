"""Per-dataset summaries and the Table-2-style report over every model, scorer and dataset evaluated, with
the open-set measures beside the multiple-choice accuracies and their per-class breakdown in a second file."""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from dataset_builders.prompts import OPTION_LETTERS

from .items import DATASETS
from .names import MEASURES, OPEN_SET

UNPARSED = "none"
PER_CLASS_FILE = "open_set_per_class.md"
# Results of a protocol other than ours are keyed "<scorer>@<protocol>" (files, summaries, report rows).
PROTOCOL_SEPARATOR = "@"


def result_key(scorer: str, protocol: str = "ours") -> str:
    return scorer if protocol == "ours" else f"{scorer}{PROTOCOL_SEPARATOR}{protocol}"


def split_result_key(key: str) -> tuple[str, str]:
    """ "generation@foci" -> ("generation", "foci"); "generation" -> ("generation", "ours")."""
    scorer, _, protocol = key.partition(PROTOCOL_SEPARATOR)
    return scorer, protocol or "ours"


def percent(count: int, total: int) -> float:
    """`count / total` in percent, rounded once to 2 decimals: every report shows the same number."""
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
        "accuracy": percent(sum(result["prediction"] == result["answer"] for result in results), total),
        "failure_rate": percent(predicted[UNPARSED], total),
        "per_class_accuracy": {
            name: percent(sum(hits), len(hits)) for name, hits in sorted(by_class.items(), key=lambda kv: kv[0])
        },
        "predicted_positions": {key: percent(predicted[key], total) for key in [*letters, UNPARSED]},
        "groundtruth_positions": {letter: percent(truth[letter], total) for letter in letters},
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


OPEN_SET_TITLES = {
    "exact": "open-set exact",
    "contains": "open-set contains",
    "top1": "open-set nearest top-1",
    "top5": "open-set nearest top-5",
}


def _average(row: dict[str, dict[str, Any]], datasets: list[str], key: str) -> float | None:
    """The mean of `key` over `datasets`, given only when the row covers every one (an average over fewer
    datasets is not comparable)."""
    if not all(name in row for name in datasets):
        return None
    return round(sum(row[name][key] for name in datasets) / len(datasets), 4 if key == "mean_cosine" else 2)


def _by_scorer(row: dict[str, Any]) -> tuple[str, bool, str]:
    """Multiple-choice rows by scorer, our protocol before others."""
    return row["scorer"], row["protocol"] != "ours", row["protocol"]


def build_report(summaries: dict[str, dict[str, dict[str, dict[str, Any]]]]) -> tuple[dict[str, Any], str]:
    """`summaries[model][scorer][dataset]` -> (JSON report, markdown report).

    Multiple-choice summaries come from `summarize_results`; the scorer key ``open_set`` holds
    `summarize_open_set` summaries. One row per model and scorer (or open-set measure), one column per
    dataset in the paper's order, and the average over all columns; before it, for each multiple-choice scorer, the
    paper's Table 2 (one row per model). Multiple-choice rows of FOCI's protocol (keys ``<scorer>@foci``) are
    labelled so, and a second table puts both protocols side by side ("ours / foci").
    """
    datasets = _dataset_order({name for scorers in summaries.values() for row in scorers.values() for name in row})
    rows, open_set_rows = [], []
    for model, scorers in sorted(summaries.items()):
        for scorer, row in sorted(scorers.items()):
            if scorer == OPEN_SET:
                averages = {key: _average(row, datasets, key) for key in (*MEASURES, "mean_cosine")}
                open_set_rows.append({"model": model, "averages": averages, "datasets": row})
            else:
                average = _average(row, datasets, "accuracy")
                scorer_name, protocol = split_result_key(scorer)
                rows.append(
                    {
                        "model": model,
                        "scorer": scorer_name,
                        "protocol": protocol,
                        "average_accuracy": average,
                        "datasets": row,
                    }
                )

    def cell(row: dict[str, Any], name: str, key: str, digits: int = 2) -> str:
        return f"{row['datasets'][name][key]:.{digits}f}" if name in row["datasets"] else "–"

    def average_cell(value: float | None, digits: int = 2) -> str:
        return "–" if value is None else f"{value:.{digits}f}"

    def scorer_cell(row: dict[str, Any]) -> str:
        return row["scorer"] if row["protocol"] == "ours" else f"{row['scorer']} ({row['protocol']} protocol)"

    titles = [DATASETS[name].display_name if name in DATASETS else name for name in datasets]
    title = "FGVR accuracy (%): multiple choice and open set" if open_set_rows else "Multiple-choice FGVR accuracy (%)"
    lines = [f"# {title}", ""]
    # The paper's Table 2 first: one row per model, one column per dataset, a table per scorer (and protocol).
    for scorer, protocol in dict.fromkeys((row["scorer"], row["protocol"]) for row in sorted(rows, key=_by_scorer)):
        wide = [row for row in rows if (row["scorer"], row["protocol"]) == (scorer, protocol)]
        how = f"{scorer} scorer" + ("" if protocol == "ours" else f", {protocol} protocol")
        lines += [f"## Multiple-choice accuracy (%), {how}", ""]
        lines += _table(
            ["Model", *titles, "Avg."],
            [
                [
                    row["model"],
                    *(cell(row, name, "accuracy") for name in datasets),
                    average_cell(row["average_accuracy"]),
                ]
                for row in wide
            ],
        )
        lines.append("")
    if rows:
        lines += ["## Every scorer and open-set measure", ""]
    lines += _table(
        ["Model", "Scorer", *titles, "Avg."],
        [
            [
                row["model"],
                scorer_cell(row),
                *(cell(row, name, "accuracy") for name in datasets),
                average_cell(row["average_accuracy"]),
            ]
            for row in rows
        ]
        + [
            [row["model"], OPEN_SET_TITLES[measure], *(cell(row, name, measure) for name in datasets)]
            + [average_cell(row["averages"][measure])]
            for row in open_set_rows
            for measure in MEASURES
        ],
    )
    by_protocol = {(row["model"], row["scorer"], row["protocol"]): row for row in rows}
    pairs = [
        (row, by_protocol[(row["model"], row["scorer"], "foci")])
        for row in rows
        if row["protocol"] == "ours" and (row["model"], row["scorer"], "foci") in by_protocol
    ]
    if pairs:
        lines += ["", "## Multiple choice, our protocol / FOCI's, side by side (accuracy %)", ""]
        lines += _table(
            ["Model", "Scorer", *titles, "Avg."],
            [
                [
                    ours["model"],
                    ours["scorer"],
                    *(f"{cell(ours, name, 'accuracy')} / {cell(foci, name, 'accuracy')}" for name in datasets),
                    f"{average_cell(ours['average_accuracy'])} / {average_cell(foci['average_accuracy'])}",
                ]
                for ours, foci in pairs
            ],
        )
    if open_set_rows:
        models = sorted({summary["similarity_model"] for row in open_set_rows for summary in row["datasets"].values()})
        lines += [
            "",
            "Scorers: multiple choice (the paper's protocol) read by generation or option-letter likelihood. "
            "Open set: the category asked for without options; exact = the true name after normalisation, "
            "contains = the true name within the answer (no longer class name also named), nearest top-k = the "
            f"true class among the k class names closest to the answer by {', '.join(models)} (chance: k / the "
            "number of classes; an answer naming no class still has a nearest one).",
            "",
            "## Open set: mean cosine similarity of answer and true name, and answers that are empty (%)",
            "",
        ]
        lines += _table(
            ["Model", "Measure", *titles, "Avg."],
            [
                [row["model"], "mean cosine", *(cell(row, name, "mean_cosine", 3) for name in datasets)]
                + [average_cell(row["averages"]["mean_cosine"], 3)]
                for row in open_set_rows
            ]
            + [
                [row["model"], "no answer", *(cell(row, name, "no_answer_rate") for name in datasets), ""]
                for row in open_set_rows
            ],
        )
        lines += ["", f"Per-class open-set accuracy and the most frequent wrong answers: {PER_CLASS_FILE}."]
    if rows:
        lines += ["", "## Multiple choice failure rate (%): answers naming no option", ""]
        lines += _table(
            ["Model", "Scorer", *titles],
            [
                [row["model"], scorer_cell(row), *(cell(row, name, "failure_rate") for name in datasets)]
                for row in rows
            ],
        )
        lines += ["", "## Multiple choice answer positions (%): predicted letter / true letter", ""]
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
                position_rows.append([row["model"], scorer_cell(row), name, positions])
        lines += _table(["Model", "Scorer", "Dataset", "Positions"], position_rows)
    report = {"datasets": datasets, "rows": rows, "open_set_rows": open_set_rows}
    return report, "\n".join(lines) + "\n"


def _inline(text: str) -> str:
    """A model's answer as one markdown table cell: control characters and line breaks as spaces, pipes escaped."""
    return " ".join("".join(c if c.isprintable() else " " for c in text).split()).replace("|", "\\|")


def per_class_report(report: dict[str, Any]) -> str:
    """The open-set rows of a `build_report` JSON report as per-class tables, with each class's most frequent
    wrong answers (its confusion list)."""
    lines = ["# Open-set accuracy per class (%) and the most frequent wrong answers"]
    for row in report["open_set_rows"]:
        for name in report["datasets"]:
            if name not in row["datasets"]:
                continue
            summary = row["datasets"][name]
            lines += ["", f"## {row['model']}, {name}", ""]
            lines += _table(
                ["Class", "Items", "Exact", "Contains", "Top-1", "Top-5", "Most frequent wrong answers (count)"],
                [
                    [
                        class_name,
                        str(scores["num_items"]),
                        *(f"{scores[measure]:.1f}" for measure in MEASURES),
                        "; ".join(
                            f"{_inline(answer)} ({count})" for answer, count in summary["confusions"][class_name]
                        ),
                    ]
                    for class_name, scores in summary["per_class"].items()
                ],
            )
    return "\n".join(lines) + "\n"


def summary_path(output_dir: str | os.PathLike, model: str, dataset: str, scorer: str) -> Path:
    return Path(output_dir) / "summaries" / model / f"{dataset}.{scorer}.json"


def read_summaries(output_dir: str | os.PathLike) -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
    """Every summary written under `output_dir`, as ``{model: {scorer: {dataset: summary}}}``."""
    summaries: dict[str, dict[str, dict[str, dict[str, Any]]]] = defaultdict(lambda: defaultdict(dict))
    for path in sorted((Path(output_dir) / "summaries").glob("*/*.json")):
        dataset, scorer = path.stem.rsplit(".", 1)
        summaries[path.parent.name][scorer][dataset] = json.loads(path.read_text(encoding="utf-8"))
    return {model: dict(by_scorer) for model, by_scorer in summaries.items()}


def write_report(output_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Collect every summary under `output_dir` (all models evaluated there) into report.json / report.md (and
    the open-set per-class tables)."""
    output_dir = Path(output_dir)
    report, markdown = build_report(read_summaries(output_dir))
    json_path, markdown_path = output_dir / "report.json", output_dir / "report.md"
    json_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    markdown_path.write_text(markdown, encoding="utf-8")
    if report["open_set_rows"]:
        (output_dir / PER_CLASS_FILE).write_text(per_class_report(report), encoding="utf-8")
    return json_path, markdown_path


def mean_accuracies(results: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, float]]:
    """`results[model][scorer][dataset]` -> the mean over the datasets: multiple-choice accuracy per scorer, and
    each open-set measure (scorer ``open_set``) as ``open_set_<measure>``."""

    def means(scorer: str, by_dataset: dict[str, dict[str, Any]]) -> dict[str, float]:
        if scorer != OPEN_SET:
            return {scorer: float(np.mean([s["accuracy"] for s in by_dataset.values()]))}
        return {f"{OPEN_SET}_{m}": float(np.mean([s[m] for s in by_dataset.values()])) for m in MEASURES}

    return {
        variant: {key: value for scorer, by_dataset in r.items() for key, value in means(scorer, by_dataset).items()}
        for variant, r in results.items()
    }


def _column_title(key: str) -> str:
    if key.startswith(OPEN_SET):
        return OPEN_SET_TITLES[key.removeprefix(f"{OPEN_SET}_")].capitalize()
    return f"MC accuracy ({key})"


def comparison_table(results: dict[str, dict[str, dict[str, Any]]], titles: dict[str, str] | None = None) -> str:
    """The paper's Table 3 shape: one row per model (titled by `titles`, default its name), mean multiple-choice
    accuracy over the datasets per scorer, then the open-set measures (exact, contains, nearest top-1, top-5)."""
    accuracies = mean_accuracies(results)
    keys = {key for by_scorer in accuracies.values() for key in by_scorer}
    columns = sorted(key for key in keys if not key.startswith(OPEN_SET))
    columns += [f"{OPEN_SET}_{m}" for m in MEASURES if f"{OPEN_SET}_{m}" in keys]
    lines = ["| Variant | " + " | ".join(_column_title(key) for key in columns) + " |"]
    lines.append("|---|" + "---:|" * len(columns))
    for variant, by_key in accuracies.items():
        cells = " | ".join(f"{by_key[key]:.2f}" if key in by_key else "-" for key in columns)
        lines.append(f"| {(titles or {}).get(variant, variant)} | {cells} |")
    return "\n".join(lines)


def evaluation_metrics(results: dict[str, dict[str, dict[str, Any]]]) -> dict[str, float]:
    """`results[scorer][dataset]` (the summaries `evaluate_model` / `evaluate_open_set` return, open-set ones under
    ``open_set``) as tracker metrics: ``test/<dataset>/<scorer>`` the multiple-choice accuracy (%),
    ``test/<dataset>/open_set_<measure>`` each open-set measure."""
    metrics = {}
    for scorer, by_dataset in results.items():
        for dataset, summary in by_dataset.items():
            if scorer == OPEN_SET:
                for measure in (*MEASURES, "mean_cosine"):
                    metrics[f"test/{dataset}/{OPEN_SET}_{measure}"] = float(summary[measure])
            else:
                metrics[f"test/{dataset}/{scorer}"] = float(summary["accuracy"])
    return metrics


def alignment_table(alignment: dict[str, dict[str, float]], titles: dict[str, str] | None = None) -> str:
    """Table 8 (mean cosine of objects and their category names) with the two measures that tell whether objects sit
    nearer their own name than the others: the raw mean moves with the geometry of the whole space. Rows are
    titled by `titles` (default: the model's name)."""
    lines = [
        "Object-category alignment (Table 8; zero-shot is the base, stage I only is Finedefics' stage I):",
        "",
        "| Variant | Mean cosine (Table 8) | Gap, own minus other names | Object -> name top-1 (%) |",
        "|---|---:|---:|---:|",
    ]
    for variant, measures in alignment.items():
        lines.append(
            f"| {(titles or {}).get(variant, variant)} | {measures['alignment_mean_cosine']:.3f} | "
            f"{measures['alignment_gap']:+.3f} | {100 * measures['alignment_object_to_name_top1']:.1f} |"
        )
    return "\n".join(lines)


def resolution_note(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    """How large a gap between two rows the test split can resolve: the standard error of a difference of two
    accuracies on n items, at most sqrt(2 * 0.25 / n) (unpaired, accuracy 50 %); pairing on the same items only
    shrinks it. Gaps under about twice this are noise."""
    sizes = {
        summary["num_items"]
        for by_scorer in results.values()
        for by_dataset in by_scorer.values()
        for summary in by_dataset.values()
    }
    n = min(sizes) if sizes else 0
    if not n:
        return ""
    return (
        f"Test split: {n} items per dataset; standard error of a difference between two rows <= "
        f"{100 * (0.5 / n) ** 0.5:.1f} points (gaps under ~{200 * (0.5 / n) ** 0.5:.0f} points are noise)."
    )
