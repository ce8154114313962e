"""Run the paper's analyses on one model and one labelled dataset, writing JSON, markdown and PNG figures."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset
from sklearn.model_selection import train_test_split
from transformers import ProcessorMixin

from ..embeddings import encode_images, encode_texts
from ..evaluation.report import percent
from .features import generate_category_descriptions, mask_class_name
from .figures import plot_confusion_matrix, plot_tsne
from .metrics import (
    alignment_quality,
    confusion_matrix,
    discriminability,
    linear_probe_accuracy,
    predicted_name,
    read_predictions,
)
from .names import ANALYSES

# Object features of both pooling types (Table 1a, section 2): the last visual token and the mean of the visual
# tokens (o-bar); with `object_eos` the last token is taken after an appended EOS instead (the training
# representation of stage I).
OBJECT_POOLINGS = ("last", "mean")
# What stage I aligns (visual tokens + EOS, last token): alignment, discriminability and t-SNE measure it.
ALIGNED_OBJECT = {"pooling": "last", "append_eos": True}


def _object_features(
    model, processor, dataset: Dataset, batch_size: int, features: dict[str, dict]
) -> dict[str, np.ndarray]:
    images = dataset["image"]
    return {
        name: encode_images(model, processor, images, batch_size=batch_size, show_progress=True, **kwargs).numpy()
        for name, kwargs in features.items()
    }


def attribute_description_probe(
    model: torch.nn.Module, processor: ProcessorMixin, dataset: Dataset, seed: int = 0, pooling: str = "last"
) -> float:
    """The appendix's description-quality probe: a linear probe on the embeddings of the attribute descriptions of a
    training set (`attribute` and `label` columns, e.g. the `triples` of a build), trained on a stratified half
    and tested on the other half (1:1). The paper reports 68.27 % on Pet-37."""
    if "attribute" not in dataset.column_names:
        raise ValueError(f"The attribute probe needs an `attribute` column; the dataset has {dataset.column_names}.")
    labels = np.asarray(dataset["label"])
    features = encode_texts(model, processor, dataset["attribute"], pooling=pooling, show_progress=True).numpy()
    train, test = train_test_split(np.arange(len(labels)), test_size=0.5, stratify=labels, random_state=seed)
    return linear_probe_accuracy(features[train], labels[train], features[test], labels[test], seed=seed)


def _tsne_subset(labels: np.ndarray, classes: Sequence[int], max_per_class: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    picked = [rng.permutation(np.flatnonzero(labels == c))[:max_per_class] for c in classes]
    return np.sort(np.concatenate(picked))


def run_analysis(
    model: torch.nn.Module,
    processor: ProcessorMixin,
    dataset: Dataset,
    output_dir: str | os.PathLike,
    *,
    analyses: Sequence[str] = ANALYSES,
    probe_train_dataset: Dataset | None = None,
    predictions: str | os.PathLike | None = None,
    num_descriptions: int = 200,
    max_new_tokens: int = 96,
    tsne_classes: Sequence[str] | None = None,
    tsne_max_per_class: int = 100,
    batch_size: int = 16,
    seed: int = 0,
    title: str = "",
    object_eos: bool = False,
) -> dict:
    """Analyses of section 2 and the appendix on `dataset` (columns `image` and `label`, a ClassLabel whose names
    are the category names). Writes `report.json`, `report.md`, the figures and the generated descriptions to
    `output_dir`, and returns the report.

    - object_probe (Table 1a): logistic-regression probes on last-token and mean-pooled object features, trained
      on `probe_train_dataset` (else on a stratified half of `dataset`) and tested on `dataset` (the other half).
      The last-token feature is the last visual token (section 2); `object_eos=True` appends EOS first.
    - attribute_probe (appendix, description quality): see `attribute_description_probe` (needs `attribute`).
    - description_probe (Table 1b): `num_descriptions` sampled descriptions per class, class names masked, half
      of each class to train the probe, half to test, on last-token and mean-pooled text features.
    - alignment (Table 8) and discriminability (Table 10): see `hf_finedefics.analysis.metrics`.
    - tsne (Figures 2 and 4): objects, category names, and both in one map; `tsne_classes` (default: the first
      ten classes) with at most `tsne_max_per_class` objects each.
    - confusion (Figure 5): from `predictions`, a per-item jsonl (see `hf_finedefics.analysis.metrics.confusion_matrix`).
    """
    unknown = set(analyses) - set(ANALYSES)
    if unknown:
        raise ValueError(f"Unknown analyses {sorted(unknown)}; choose from {ANALYSES}.")
    if "confusion" in analyses and predictions is None:
        raise ValueError("The confusion analysis needs a predictions file.")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    class_names = dataset.features["label"].names
    labels = np.asarray(dataset["label"])
    report: dict = {"num_images": len(dataset), "num_classes": len(np.unique(labels)), "figures": []}

    wanted = {}
    if "object_probe" in analyses:
        wanted = {
            "last": {"pooling": "last", "append_eos": object_eos},
            "mean": {"pooling": "mean", "append_eos": False},
        }
    if {"alignment", "discriminability", "tsne"} & set(analyses):
        wanted["aligned"] = ALIGNED_OBJECT
    objects = _object_features(model, processor, dataset, batch_size, wanted)
    needs_names = {"alignment", "discriminability", "tsne"} & set(analyses)
    names = encode_texts(model, processor, class_names).numpy() if needs_names else None

    if "object_probe" in analyses:
        if probe_train_dataset is not None:
            probe_features = {name: wanted[name] for name in OBJECT_POOLINGS}
            train_objects = _object_features(model, processor, probe_train_dataset, batch_size, probe_features)
            train_labels, test_labels = np.asarray(probe_train_dataset["label"]), labels
            splits = {name: (train_objects[name], objects[name]) for name in OBJECT_POOLINGS}
        else:
            train_index, test_index = train_test_split(
                np.arange(len(labels)), test_size=0.5, stratify=labels, random_state=seed
            )
            train_labels, test_labels = labels[train_index], labels[test_index]
            splits = {name: (objects[name][train_index], objects[name][test_index]) for name in OBJECT_POOLINGS}
        report["object_probe"] = {
            name: linear_probe_accuracy(train, train_labels, test, test_labels, seed=seed)
            for name, (train, test) in splits.items()
        }
        report["object_probe_eos"] = object_eos

    if "attribute_probe" in analyses:
        report["attribute_probe"] = {"last": attribute_description_probe(model, processor, dataset, seed=seed)}

    if "description_probe" in analyses:
        descriptions = generate_category_descriptions(
            model, processor, class_names, num_descriptions=num_descriptions, max_new_tokens=max_new_tokens, seed=seed
        )
        masked = {name: [mask_class_name(text, name) for text in texts] for name, texts in descriptions.items()}
        (output_dir / "descriptions.json").write_text(json.dumps(masked, indent=1))
        texts = [text for name in class_names for text in masked[name]]
        text_labels = np.repeat(np.arange(len(class_names)), num_descriptions)
        # Half of each class's descriptions train the probe, the other half test it.
        is_train = np.tile(np.arange(num_descriptions) < num_descriptions // 2, len(class_names))
        report["description_probe"] = {}
        for pooling in ("last", "mean"):
            features = encode_texts(model, processor, texts, pooling=pooling, show_progress=True).numpy()
            report["description_probe"][pooling] = linear_probe_accuracy(
                features[is_train], text_labels[is_train], features[~is_train], text_labels[~is_train], seed=seed
            )

    if "alignment" in analyses:
        report["alignment"] = alignment_quality(objects["aligned"], labels, names, class_names)
    if "discriminability" in analyses:
        report["discriminability"] = discriminability(objects["aligned"], labels, names)

    if "tsne" in analyses:
        chosen = [class_names.index(name) for name in tsne_classes] if tsne_classes else sorted(set(labels))[:10]
        subset = _tsne_subset(labels, chosen, tsne_max_per_class, seed)
        shown = f"{len(chosen)} of {len(class_names)} classes"
        figures = {
            "tsne_objects.png": (
                f"t-SNE of objects ({shown})",
                {"object_embeddings": objects["aligned"][subset], "object_labels": labels[subset]},
            ),
            "tsne_categories.png": (
                f"t-SNE of category names (all {len(class_names)})",
                {"category_embeddings": names, "category_labels": np.arange(len(class_names))},
            ),
            "tsne_objects_categories.png": (
                f"t-SNE of objects and category names ({shown})",
                {
                    "object_embeddings": objects["aligned"][subset],
                    "object_labels": labels[subset],
                    "category_embeddings": names[chosen],
                    "category_labels": np.asarray(chosen),
                },
            ),
        }
        for filename, (what, embeddings) in figures.items():
            plot_tsne(output_dir / filename, class_names, title=_figure_title(what, title), seed=seed, **embeddings)
            report["figures"].append(filename)

    if "confusion" in analyses:
        records = read_predictions(predictions)
        matrix, columns = confusion_matrix(records, class_names)
        # Evaluation writes `<dataset>.<scorer>.jsonl`: name the scorer whose answers are counted.
        scorer = Path(predictions).name.split(".")[-2] if str(predictions).endswith(".jsonl") else None
        what = "Confusion matrix" + (f" ({scorer} scorer)" if scorer else "")
        plot_confusion_matrix(
            output_dir / "confusion_matrix.png", matrix, class_names, columns, title=_figure_title(what, title)
        )
        report["figures"].append("confusion_matrix.png")
        present = {record["groundtruth"] for record in records}
        per_class = {name: float(matrix[i, i]) for i, name in enumerate(class_names) if name in present}
        report["confusion"] = {
            "num_predictions": len(records),
            "accuracy": float(np.mean([r["groundtruth"] == predicted_name(r) for r in records])),
            "per_class_accuracy": per_class,
        }

    (output_dir / "report.json").write_text(json.dumps(report, indent=2))
    (output_dir / "report.md").write_text(report_markdown(report, title))
    return report


def report_markdown(report: dict, title: str = "") -> str:
    """The report as markdown tables laid out like the paper's Tables 1, 8 and 10."""
    lines = [f"# Finedefics analyses{f': {title}' if title else ''}", ""]
    lines.append(f"{report['num_images']} images, {report['num_classes']} classes.")
    eos = " (last token after an appended EOS)" if report.get("object_probe_eos") else ""
    for key, caption in (
        ("object_probe", f"Linear probe on object features (Table 1a){eos}"),
        ("description_probe", "Linear probe on category description features (Table 1b)"),
        ("attribute_probe", "Linear probe on attribute description features (appendix, description quality)"),
    ):
        if key in report:
            lines += ["", f"## {caption}", "", "| Feature type | Acc. (%) |", "|---|---|"]
            lines += [f"| {pooling} | {accuracy * 100:.2f} |" for pooling, accuracy in report[key].items()]
    if "alignment" in report:
        lines += ["", "## Object-category alignment quality (Table 8)", "", "| Class | Mean cosine |", "|---|---|"]
        lines += [f"| {name} | {value:.3f} |" for name, value in report["alignment"]["per_class"].items()]
        lines.append(f"| **Overall** | **{report['alignment']['overall']:.3f}** |")
        alignment = report["alignment"]
        lines += [
            "",
            "The mean cosine moves with the whole space's geometry; whether objects sit nearer their own name than the "
            "others is what these say:",
            "",
            f"- gap, own name minus other names (mean over classes): {alignment['gap']:+.3f}",
            f"- object -> name top-1 among all {len(alignment['per_class'])} class names: "
            f"{100 * alignment['object_to_name_top1']:.1f} %",
        ]
    if "discriminability" in report:
        values = report["discriminability"]
        lines += [
            "",
            "## Discriminability (Table 10)",
            "",
            "| Metric | Value |",
            "|---|---|",
            f"| Inter-class distance for objects (higher is better) | {values['inter_class_distance_objects']:.4f} |",
            f"| Intra-class variance for objects (lower is better) | {values['intra_class_variance_objects']:.4f} |",
            f"| Inter-class distance for category names (higher is better) | "
            f"{values['inter_class_distance_categories']:.4f} |",
        ]
    if "confusion" in report:
        confusion = report["confusion"]
        worst = sorted(confusion["per_class_accuracy"].items(), key=lambda item: item[1])[:5]
        lines += [
            "",
            "## Confusion matrix (Figure 5)",
            "",
            f"Accuracy {percent(round(confusion['accuracy'] * confusion['num_predictions']), confusion['num_predictions']):.2f}% over {confusion['num_predictions']} predictions. "
            "Hardest classes: " + ", ".join(f"{name} ({value * 100:.1f}%)" for name, value in worst) + ".",
        ]
    if report["figures"]:
        lines += ["", "## Figures", ""] + [f"![{name}]({name})" for name in report["figures"]]
    return "\n".join(lines) + "\n"


def _figure_title(what: str, title: str) -> str:
    """What a figure plots, then for which model and data (`title`)."""
    return f"{what}\n{title}" if title else what
