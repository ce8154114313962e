"""Scoring a dataset in batches, with per-item results cached to JSON lines so a rerun resumes."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from PIL import Image
from tqdm.auto import tqdm

from .items import MultipleChoiceItem, get_dataset
from .report import summarize_results, summary_path, write_report
from .scoring import GenerationScorer, LikelihoodScorer, MultipleChoiceScorer, NameLikelihoodScorer

SCORER_NAMES = ("generation", "likelihood", "name_likelihood")


def _batches(items: list[MultipleChoiceItem], batch_size: int) -> Iterator[list[MultipleChoiceItem]]:
    for start in range(0, len(items), batch_size):
        yield items[start : start + batch_size]


def read_cached_results(path: Path) -> dict[str, dict[str, Any]]:
    """The results already written to `path`, by image id. A line cut short by an interruption is dropped
    from the file, so appending resumes on a clean line."""
    if not path.exists():
        return {}
    content = path.read_text(encoding="utf-8")
    if content and not content.endswith("\n"):
        content = content[: content.rfind("\n") + 1]
        path.write_text(content, encoding="utf-8")
    records = (json.loads(line) for line in content.splitlines() if line)
    return {record["image"]: record for record in records}


def score_items(
    scorer: MultipleChoiceScorer,
    items: list[MultipleChoiceItem],
    results_path: str | os.PathLike,
    *,
    superclass: str | None,
    seed: int = 0,
    batch_size: int = 8,
    description: str | None = None,
) -> list[dict[str, Any]]:
    """Score `items` with `scorer`, appending one JSON line per item to `results_path`; items already there
    are not scored again. Returns the results of `items`, in their order.

    Each result: image id, true class, the options as shown, the index of the true one (``answer``), the
    chosen index (``prediction``, None for an unreadable answer) and the scorer's own fields.
    """
    results_path = Path(results_path)
    results_path.parent.mkdir(parents=True, exist_ok=True)
    done = read_cached_results(results_path)
    shown_options = {item.image_id: item.shuffled_options(seed) for item in items}
    for item in items:
        # A cache written under another seed or option file would mix two protocols in one number.
        if item.image_id in done and done[item.image_id]["options"] != shown_options[item.image_id]:
            raise ValueError(
                f"{results_path} holds {item.image_id} with other options than this run shows "
                "(another seed or option file?); use a fresh output directory."
            )
    pending = [item for item in items if item.image_id not in done]
    with (
        open(results_path, "a", encoding="utf-8") as results_file,
        tqdm(total=len(items), initial=len(items) - len(pending), desc=description, unit="item") as progress,
    ):
        for batch in _batches(pending, batch_size):
            options = [shown_options[item.image_id] for item in batch]
            chats = [scorer.chat(shown, superclass) for shown in options]
            images = [Image.open(item.image).convert("RGB") for item in batch]
            for item, shown, scored in zip(batch, options, scorer.score(images, chats, options)):
                record = {
                    "image": item.image_id,
                    "groundtruth": item.groundtruth,
                    "options": shown,
                    "answer": shown.index(item.groundtruth),
                    **scored,
                }
                results_file.write(json.dumps(record) + "\n")
                done[item.image_id] = record
            results_file.flush()
            progress.update(len(batch))
    return [done[item.image_id] for item in items]


def predictions_path(output_dir: str | os.PathLike, model: str, dataset: str, scorer: str) -> Path:
    return Path(output_dir) / "predictions" / model / f"{dataset}.{scorer}.jsonl"


def evaluate_model(
    model: Any,
    processor: Any,
    datasets: dict[str, list[MultipleChoiceItem]],
    output_dir: str | os.PathLike,
    *,
    model_name: str,
    scorers: tuple[str, ...] = SCORER_NAMES,
    seed: int = 0,
    batch_size: int = 8,
    max_new_tokens: int = 32,
    superclasses: dict[str, str] | None = None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """Score every dataset (name -> items) with every scorer, write per-item predictions, per-dataset
    summaries and the report of `output_dir`; return ``{scorer: {dataset: summary}}``.

    `model_name` keys the files, so several models evaluated into one `output_dir` share one report.
    `superclasses` names the noun of the question for datasets that have none (``imagefolder``).
    """
    unknown = set(scorers) - set(SCORER_NAMES)
    if unknown:
        raise ValueError(f"Unknown scorers {sorted(unknown)}; choose from {', '.join(SCORER_NAMES)}.")
    if not model_name or "/" in model_name or "\\" in model_name:
        raise ValueError(f"`model_name` names a folder of results and cannot contain a path separator: {model_name!r}")
    make_scorer = {
        "generation": lambda: GenerationScorer(model, processor, max_new_tokens=max_new_tokens),
        "likelihood": lambda: LikelihoodScorer(model, processor),
        "name_likelihood": lambda: NameLikelihoodScorer(model, processor),
    }
    summaries: dict[str, dict[str, dict[str, Any]]] = {}
    for scorer_name in scorers:
        scorer = make_scorer[scorer_name]()
        for dataset, items in datasets.items():
            results = score_items(
                scorer,
                items,
                predictions_path(output_dir, model_name, dataset, scorer_name),
                superclass=(superclasses or {}).get(dataset) or get_dataset(dataset).superclass,
                seed=seed,
                batch_size=batch_size,
                description=f"{dataset} ({scorer_name})",
            )
            summary = summarize_results(results)
            path = summary_path(output_dir, model_name, dataset, scorer_name)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
            summaries.setdefault(scorer_name, {})[dataset] = summary
    write_report(output_dir)
    return summaries
