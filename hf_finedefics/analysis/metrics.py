"""Representation metrics of the paper's analyses, on precomputed embeddings (numpy in, plain floats out).

The paper does not spell out its formulas for Tables 8 and 10; these are the definitions used here, on
L2-normalised embeddings:

- alignment quality (Table 8): cosine similarity of each object to the name embedding of its own category,
  averaged per class; the overall value is the mean over classes. The raw mean moves with the geometry of the whole
  space (names pushed apart lower every cosine), so two companions tell whether objects sit nearer their own name
  than the others: the gap, own-name cosine minus the mean cosine to the other names (averaged per class, then over
  classes), and object -> name top-1 among all class names.
- inter-class distance (Table 10): mean over all pairs of classes of the cosine distance (1 - cos) between the
  classes' representations: the class centroid of the objects, or the category name embedding.
- intra-class variance (Table 10): mean over classes of the mean squared Euclidean distance of the class's
  objects to their centroid.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

# Column of answers that name no class: unparsable, missing, or off the class list.
NO_ANSWER = "(other / no answer)"


def l2_normalize(embeddings: np.ndarray) -> np.ndarray:
    embeddings = np.asarray(embeddings, dtype=np.float64)
    return embeddings / np.clip(np.linalg.norm(embeddings, axis=-1, keepdims=True), 1e-12, None)


def linear_probe_accuracy(
    train_features: np.ndarray,
    train_labels: Sequence[int],
    test_features: np.ndarray,
    test_labels: Sequence[int],
    *,
    max_iter: int = 2000,
    seed: int = 0,
) -> float:
    """Accuracy of a logistic-regression probe trained on standardised features (the paper's feature probing)."""
    scaler = StandardScaler().fit(train_features)
    probe = LogisticRegression(max_iter=max_iter, random_state=seed)
    probe.fit(scaler.transform(train_features), train_labels)
    return float(probe.score(scaler.transform(test_features), test_labels))


def class_centroids(embeddings: np.ndarray, labels: Sequence[int], classes: Sequence[int]) -> np.ndarray:
    labels = np.asarray(labels)
    return np.stack([embeddings[labels == c].mean(axis=0) for c in classes])


def mean_pairwise_cosine_distance(vectors: np.ndarray) -> float:
    """Mean of 1 - cos over all unordered pairs of rows."""
    if len(vectors) < 2:
        raise ValueError("Distances between classes need at least two classes.")
    normalized = l2_normalize(vectors)
    similarity = normalized @ normalized.T
    upper = np.triu_indices(len(vectors), k=1)
    return float(np.mean(1.0 - similarity[upper]))


def alignment_quality(
    object_embeddings: np.ndarray,
    labels: Sequence[int],
    category_embeddings: np.ndarray,
    class_names: Sequence[str],
) -> dict:
    """Object-category alignment (Table 8): the mean cosine of objects to their own category name per class and
    overall (`overall`, the paper's number), the gap own-name minus other-names (`gap`, `gap_per_class`) and object
    -> name top-1 among all class names (`object_to_name_top1`).

    `category_embeddings[k]` embeds `class_names[k]`; `labels` index into both.
    """
    labels = np.asarray(labels)
    similarity = l2_normalize(object_embeddings) @ l2_normalize(category_embeddings).T
    own = similarity[np.arange(len(labels)), labels]
    others = (similarity.sum(axis=1) - own) / max(1, similarity.shape[1] - 1)
    classes = np.unique(labels)
    per_class = {class_names[c]: float(own[labels == c].mean()) for c in classes}
    gap_per_class = {class_names[c]: float((own - others)[labels == c].mean()) for c in classes}
    return {
        "overall": float(np.mean(list(per_class.values()))),
        "per_class": per_class,
        "gap": float(np.mean(list(gap_per_class.values()))),
        "gap_per_class": gap_per_class,
        "object_to_name_top1": float(np.mean(similarity.argmax(axis=1) == labels)),
    }


def discriminability(
    object_embeddings: np.ndarray, labels: Sequence[int], category_embeddings: np.ndarray
) -> dict[str, float]:
    """Inter-class distance and intra-class variance of objects, inter-class distance of category names
    (Table 10), over the classes present in `labels`."""
    labels = np.asarray(labels)
    classes = np.unique(labels)
    objects = l2_normalize(object_embeddings)
    centroids = class_centroids(objects, labels, classes)
    intra = [
        np.mean(np.sum((objects[labels == c] - centroid) ** 2, axis=-1)) for c, centroid in zip(classes, centroids)
    ]
    return {
        "inter_class_distance_objects": mean_pairwise_cosine_distance(centroids),
        "intra_class_variance_objects": float(np.mean(intra)),
        "inter_class_distance_categories": mean_pairwise_cosine_distance(np.asarray(category_embeddings)[classes]),
    }


def read_predictions(path: str | os.PathLike) -> list[dict]:
    """Per-item predictions, one JSON object per line (see `confusion_matrix`)."""
    with open(path, encoding="utf-8") as file:
        return [json.loads(line) for line in file if line.strip()]


def predicted_name(record: dict) -> str:
    """The class a record predicts: `prediction` is a class name, an index into `options`, or null (no
    parsable answer)."""
    prediction = record.get("prediction")
    if prediction is None:
        return NO_ANSWER
    if isinstance(prediction, int):
        return record["options"][prediction]
    return prediction


def confusion_matrix(
    records: Iterable[dict], class_names: Sequence[str] | None = None
) -> tuple[np.ndarray, list[str]]:
    """Row-normalised confusion matrix (rows: ground truth, columns: prediction) from per-item records.

    Each record has `groundtruth` (class name) and `prediction` (see `predicted_name`), as in the evaluation's
    per-item jsonl. Predictions outside `class_names` (a model answering off the list) and missing answers go to a
    last column, `(other / no answer)`, present only when used. Returns the matrix and the column names.
    """
    records = list(records)
    class_names = list(class_names) if class_names is not None else sorted({r["groundtruth"] for r in records})
    index = {name: i for i, name in enumerate(class_names)}
    counts = np.zeros((len(class_names), len(class_names) + 1))
    for record in records:
        counts[index[record["groundtruth"]], index.get(predicted_name(record), len(class_names))] += 1
    columns = [*class_names, NO_ANSWER]
    if not counts[:, -1].any():
        counts, columns = counts[:, :-1], class_names
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0), columns
