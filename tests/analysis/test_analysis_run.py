from __future__ import annotations

import json

import numpy as np
import pytest
from datasets import ClassLabel, Dataset, Features, Value
from datasets import Image as ImageFeature
from PIL import Image

from hf_finedefics.analysis import ANALYSES, run_analysis
from hf_finedefics.cli import main as cli
from hf_finedefics.modeling import load_finedefics_model
from hf_finedefics.testing import create_tiny_checkpoint, paper_processor_kwargs
from tests.architectures import TINY_ARCHITECTURE_PARAMS

CLASSES = ["Chihuahua", "Japanese spaniel", "Maltese dog"]
COLORS = [(200, 40, 40), (40, 200, 40), (40, 40, 200)]


COLOR_WORDS = ["red", "green", "blue"]
SHAPES = ["round", "square", "pointed", "long", "short", "curled"]


def labelled_images(per_class: int = 6, seed: int = 0) -> Dataset:
    """What a build's `triples` hold: `image`, ClassLabel `label`, `category` and an `attribute` description; each
    class has its own colour plus noise, and its descriptions name that colour."""
    rng = np.random.default_rng(seed)
    rows = {"image": [], "label": [], "category": [], "attribute": []}
    for label, color in enumerate(COLORS):
        for i in range(per_class):
            pixels = np.clip(np.array(color) + rng.normal(0, 25, (32, 32, 3)), 0, 255).astype(np.uint8)
            rows["image"].append(Image.fromarray(pixels))
            rows["label"].append(label)
            rows["category"].append(CLASSES[label])
            rows["attribute"].append(f"The dog has {COLOR_WORDS[label]} fur and {SHAPES[i % len(SHAPES)]} ears.")
    features = Features(
        {
            "image": ImageFeature(),
            "label": ClassLabel(names=CLASSES),
            "category": Value("string"),
            "attribute": Value("string"),
        }
    )
    return Dataset.from_dict(rows, features=features)


def predictions_file(path):
    records = [
        {"image": "a.jpg", "groundtruth": "Chihuahua", "options": CLASSES, "prediction": 0},
        {"image": "b.jpg", "groundtruth": "Chihuahua", "options": CLASSES, "prediction": 2},
        {"image": "c.jpg", "groundtruth": "Maltese dog", "options": CLASSES, "prediction": None},
    ]
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


@pytest.mark.parametrize("architecture", TINY_ARCHITECTURE_PARAMS)
def test_all_analyses_on_a_tiny_model(architecture, tmp_path):
    checkpoint = create_tiny_checkpoint(architecture)
    model, processor = load_finedefics_model(checkpoint, processor_kwargs=paper_processor_kwargs(checkpoint))
    report = run_analysis(
        model,
        processor,
        labelled_images(),
        tmp_path,
        analyses=ANALYSES,
        predictions=predictions_file(tmp_path / "predictions.jsonl"),
        num_descriptions=4,
        max_new_tokens=6,
        tsne_max_per_class=4,
    )
    for probe in ("object_probe", "description_probe"):
        assert set(report[probe]) == {"last", "mean"}
        assert all(0.0 <= accuracy <= 1.0 for accuracy in report[probe].values())
    # Table 1's last-token object feature is the last visual token unless EOS is asked for.
    assert report["object_probe_eos"] is False
    # The appendix's description-quality probe: 9 of 18 descriptions train it, 9 test it.
    assert report["attribute_probe"]["last"] in {i / 9 for i in range(10)}
    assert set(report["alignment"]["per_class"]) == set(CLASSES)
    assert -1.0 <= report["alignment"]["overall"] <= 1.0
    assert report["discriminability"]["intra_class_variance_objects"] >= 0.0
    assert report["confusion"]["accuracy"] == pytest.approx(1 / 3)
    assert report["confusion"]["per_class_accuracy"] == {"Chihuahua": 0.5, "Maltese dog": 0.0}
    descriptions = json.loads((tmp_path / "descriptions.json").read_text())
    assert {name: len(texts) for name, texts in descriptions.items()} == dict.fromkeys(CLASSES, 4)
    assert json.loads((tmp_path / "report.json").read_text()) == report
    markdown = (tmp_path / "report.md").read_text()
    assert "Table 1a" in markdown and "Table 8" in markdown and "Table 10" in markdown
    assert "description quality" in markdown and "appended EOS" not in markdown
    for figure in ("tsne_objects.png", "tsne_categories.png", "tsne_objects_categories.png", "confusion_matrix.png"):
        assert figure in report["figures"]
        assert (tmp_path / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (tmp_path / figure).stat().st_size > 5000


def test_analyze_cli(tmp_path):
    data_dir = tmp_path / "data"
    labelled_images(per_class=4).save_to_disk(data_dir)
    output_dir = tmp_path / "analysis"
    cli(
        [
            "analyze",
            "--model_name_or_path",
            str(create_tiny_checkpoint("llava")),
            "--dataset_name",
            str(data_dir),
            "--dataset_split",
            "train",
            "--output_dir",
            str(output_dir),
            "--analyses",
            "object_probe",
            "attribute_probe",
            "alignment",
            "discriminability",
            "--object_eos",
            "true",
            "--predictions",
            str(predictions_file(tmp_path / "predictions.jsonl")),
        ]
    )
    report = json.loads((output_dir / "report.json").read_text())
    assert {"object_probe", "attribute_probe", "alignment", "discriminability", "confusion"} <= set(report)
    assert report["object_probe_eos"] is True
    assert "after an appended EOS" in (output_dir / "report.md").read_text()
    assert "description_probe" not in report
    assert report["figures"] == ["confusion_matrix.png"]
