"""PNG figures of the paper's analyses: t-SNE maps (Figures 2 and 4) and the confusion matrix (Figure 5)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # files only; no display on training machines

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.manifold import TSNE  # noqa: E402


def tsne_2d(embeddings: np.ndarray, seed: int = 0) -> np.ndarray:
    """2-D t-SNE with cosine distances; perplexity shrinks for small sets (t-SNE needs it below the count)."""
    count = len(embeddings)
    if count < 3:
        raise ValueError(f"t-SNE needs at least 3 points, got {count}.")
    perplexity = max(1.0, min(30.0, (count - 1) / 3))
    return TSNE(
        n_components=2, perplexity=perplexity, metric="cosine", init="random", random_state=seed
    ).fit_transform(np.asarray(embeddings, dtype=np.float64))


def _colors(count: int) -> np.ndarray:
    return plt.get_cmap("tab20" if count > 10 else "tab10")(np.arange(count) % (20 if count > 10 else 10))


def plot_tsne(
    path: str | os.PathLike,
    class_names: Sequence[str],
    *,
    object_embeddings: np.ndarray | None = None,
    object_labels: Sequence[int] | None = None,
    category_embeddings: np.ndarray | None = None,
    category_labels: Sequence[int] | None = None,
    title: str = "",
    seed: int = 0,
) -> None:
    """t-SNE of objects (dots), categories (stars) or both in one map, coloured by class.

    Objects and categories are embedded together, so the gap between the two modalities shows (Figure 2c/4).
    """
    groups = []
    if object_embeddings is not None:
        groups.append(("object", np.asarray(object_embeddings), np.asarray(object_labels), "o", 14))
    if category_embeddings is not None:
        groups.append(("category", np.asarray(category_embeddings), np.asarray(category_labels), "*", 160))
    if not groups:
        raise ValueError("Nothing to plot: pass object and/or category embeddings.")
    points = tsne_2d(np.concatenate([embeddings for _, embeddings, *_ in groups]), seed=seed)
    colors = _colors(len(class_names))
    figure, axes = plt.subplots(figsize=(6.5, 5.5))
    start = 0
    for kind, embeddings, labels, marker, size in groups:
        group_points, start = points[start : start + len(embeddings)], start + len(embeddings)
        axes.scatter(
            group_points[:, 0],
            group_points[:, 1],
            c=colors[labels],
            marker=marker,
            s=size,
            edgecolors="black" if kind == "category" else "none",
            linewidths=0.6,
            alpha=0.9,
        )
    present = sorted({int(label) for _, _, labels, *_ in groups for label in labels})
    # Class swatches use the marker of what the map shows (stars for a names-only map).
    class_marker = groups[0][3] if len(groups) == 1 else "s"
    handles = [
        plt.Line2D([], [], marker=class_marker, linestyle="", color=colors[c], label=class_names[c]) for c in present
    ]
    if len(groups) == 2:
        handles += [
            plt.Line2D([], [], marker="o", linestyle="", color="grey", label="object"),
            plt.Line2D([], [], marker="*", linestyle="", markersize=12, color="grey", label="category name"),
        ]
    if len(handles) <= 24:
        axes.legend(handles=handles, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    else:
        axes.text(1.02, 0.5, f"{len(present)} classes\n(too many to list)", transform=axes.transAxes, fontsize=7)
    axes.set_title(title)
    axes.set_xticks([])
    axes.set_yticks([])
    figure.tight_layout()
    figure.savefig(path, dpi=150)
    plt.close(figure)


def plot_confusion_matrix(
    path: str | os.PathLike, matrix: np.ndarray, row_names: Sequence[str], column_names: Sequence[str], title: str = ""
) -> None:
    """Row-normalised confusion matrix as a heat map; cells are annotated (in %) when the matrix is small."""
    size = max(4.0, 0.3 * len(column_names) + 2.5)
    figure, axes = plt.subplots(figsize=(size + 1, size))
    image = axes.imshow(matrix * 100, cmap="Blues", vmin=0, vmax=100)
    axes.set_xticks(range(len(column_names)), column_names, rotation=90, fontsize=7)
    axes.set_yticks(range(len(row_names)), row_names, fontsize=7)
    axes.set_xlabel("Prediction")
    axes.set_ylabel("Ground truth")
    if len(column_names) <= 20:
        for (row, column), value in np.ndenumerate(matrix):
            if value > 0:
                color = "white" if value > 0.5 else "black"
                axes.text(column, row, f"{value * 100:.0f}", ha="center", va="center", fontsize=7, color=color)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="% of the class")
    axes.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=150)
    plt.close(figure)
