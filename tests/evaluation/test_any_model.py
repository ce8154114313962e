"""`finedefics evaluate` on an image-text-to-text family with no Finedefics backbone adapter (ViP-LLaVA): zero-shot
scoring needs only the model's processor, chat template, logits and `generate`."""

import json
from pathlib import Path

import pytest
from datasets import ClassLabel, Dataset, Features
from datasets import Image as ImageFeature
from PIL import Image

from hf_finedefics.backbones import supported_model_types
from hf_finedefics.cli import main as finedefics
from hf_finedefics.testing import UNREGISTERED_ARCHITECTURES, create_tiny_checkpoint

from .conftest import CLASS_NAMES, make_native_dataset

ARCHITECTURE = UNREGISTERED_ARCHITECTURES[0]


@pytest.fixture(scope="module")
def any_model(tmp_path_factory) -> Path:
    checkpoint = create_tiny_checkpoint(ARCHITECTURE, tmp_path_factory.mktemp("any") / ARCHITECTURE)
    assert json.loads((checkpoint / "config.json").read_text())["model_type"] not in supported_model_types()
    return checkpoint


def test_evaluate_scores_a_family_without_backbone_adapter(any_model, tmp_path):
    options_file = make_native_dataset("pet-37", tmp_path / "pet-37")
    finedefics(
        ["evaluate", "--model_name_or_path", str(any_model), "--sources", "pet-37", "--data_dir", str(tmp_path)]
        + ["--options_files", f"pet-37={options_file}", "--output_dir", str(tmp_path / "eval")]
        + ["--scorers", "generation", "likelihood", "name_likelihood", "--task", "multiple_choice", "open_set"]
        + ["--batch_size", "4", "--max_new_tokens", "3", "--model_name", "vip"]
    )

    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert [(row["model"], row["scorer"]) for row in report["rows"]][:3] == [
        ("vip", "generation"),
        ("vip", "likelihood"),
        ("vip", "name_likelihood"),
    ]
    predictions = tmp_path / "eval" / "predictions" / "vip"
    for scorer, field in (("likelihood", "letter_log_probs"), ("name_likelihood", "name_log_likelihoods")):
        records = [json.loads(line) for line in (predictions / f"pet-37.{scorer}.jsonl").read_text().splitlines()]
        assert len(records) == 2 * len(CLASS_NAMES)
        # Both likelihood scorers always answer, from four finite scores per question.
        assert all(record["prediction"] in range(4) and len(record[field]) == 4 for record in records)
        assert all(value is not None for record in records for value in record[field])
    generated = (predictions / "pet-37.generation.jsonl").read_text().splitlines()
    assert len(generated) == 2 * len(CLASS_NAMES)
    open_set = json.loads((tmp_path / "eval" / "summaries" / "vip" / "pet-37.open_set.json").read_text())
    assert open_set["num_items"] == 2 * len(CLASS_NAMES)


def test_analyze_names_the_family_it_cannot_analyze(any_model, tmp_path):
    features = Features({"image": ImageFeature(), "label": ClassLabel(names=CLASS_NAMES[:2])})
    images = [Image.new("RGB", (24, 20), color) for color in ("red", "green")]
    Dataset.from_dict({"image": images, "label": [0, 1]}, features=features).save_to_disk(tmp_path / "data")
    with pytest.raises(ValueError, match=rf"'{ARCHITECTURE}' has no Finedefics backbone adapter"):
        finedefics(
            ["analyze", "--model_name_or_path", str(any_model), "--dataset_name", str(tmp_path / "data")]
            + ["--dataset_split", "train", "--output_dir", str(tmp_path / "analysis"), "--analyses", "object_probe"]
        )
