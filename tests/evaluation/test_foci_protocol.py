"""FOCI's protocol (the paper's Table 2) beside ours: its question text, its answer reading and one report."""

import json

import pytest
from transformers import AutoProcessor

from hf_finedefics.chat import multiple_choice_chat
from hf_finedefics.cli import main as finedefics
from hf_finedefics.evaluation import GenerationScorer, foci_choice, format_question
from hf_finedefics.testing import create_tiny_checkpoint

from .conftest import CLASS_NAMES, make_native_dataset

OPTIONS = ["Japanese_spaniel", "Chihuahua", "Boeing 737-800", "Pug"]


def test_format_question_is_focis_text():
    # REFERENCE.md section 5: f"{query}\nChoices:\n{A. opt ...}\nAnswer with the letter from the given choices
    # directly.", query "Which of these {aircrafts|cars|flowers|pets} is shown in the image?" (birds/dogs alike),
    # option names exactly as in the option file.
    assert format_question("aircraft-102", OPTIONS) == (
        "Which of these aircrafts is shown in the image?\n"
        "Choices:\n"
        "A. Japanese_spaniel\n"
        "B. Chihuahua\n"
        "C. Boeing 737-800\n"
        "D. Pug\n"
        "Answer with the letter from the given choices directly."
    )
    nouns = {
        "car-196": "cars",
        "flower-102": "flowers",
        "pet-37": "pets",
        "bird-200": "birds",
        "dog-120": "dogs",
    }
    for name, noun in nouns.items():
        assert format_question(name, ["Pug", "Boxer"], protocol="foci") == (
            f"Which of these {noun} is shown in the image?\nChoices:\nA. Pug\nB. Boxer\n"
            "Answer with the letter from the given choices directly."
        )
    # Ours: the registry's plural and readable names.
    assert format_question("aircraft-102", OPTIONS, protocol="ours").startswith(
        "Which of these aircraft is shown in the image?\nChoices:\nA. Japanese spaniel\n"
    )
    with pytest.raises(ValueError, match="protocol"):
        format_question("pet-37", OPTIONS, protocol="paper")


def test_focis_reading():
    options = ["Abyssinian", "Bengal", "Chihuahua", "Pug"]
    assert foci_choice("C", options) == 2
    assert foci_choice(" b. Bengal", options) == 1
    # FOCI reads a word by its first letter; ours does not.
    assert foci_choice("Chihuahua is shown", options) == 2
    assert foci_choice("An Abyssinian", options) == 0
    assert foci_choice("Pug", options) is None  # P is not a shown letter
    assert foci_choice("", options) is None


def test_foci_generation_defaults():
    path = create_tiny_checkpoint("llava")
    processor = AutoProcessor.from_pretrained(path)
    assert GenerationScorer(None, processor, protocol="foci").max_new_tokens == 10
    assert GenerationScorer(None, processor).max_new_tokens == 32
    chat = multiple_choice_chat(processor, OPTIONS, "aircraft", protocol="foci")
    assert format_question("aircraft-102", OPTIONS) in chat


def test_evaluate_both_protocols_into_one_report(tmp_path):
    options_file = make_native_dataset("aircraft-102", tmp_path / "data" / "aircraft-102")
    common = [
        "evaluate",
        "--model_name_or_path",
        str(create_tiny_checkpoint("llava")),
        "--sources",
        "aircraft-102",
        "--data_dir",
        str(tmp_path / "data"),
        "--options_files",
        f"aircraft-102={options_file}",
        "--output_dir",
        str(tmp_path / "eval"),
        "--scorers",
        "generation",
        "--model_name",
        "tiny",
        "--batch_size",
        "5",
    ]
    finedefics([*common, "--max_new_tokens", "4"])
    finedefics([*common, "--protocol", "foci"])

    predictions = tmp_path / "eval" / "predictions" / "tiny"
    foci = [json.loads(line) for line in (predictions / "aircraft-102.generation@foci.jsonl").read_text().splitlines()]
    assert len(foci) == 2 * len(CLASS_NAMES)
    for record in foci:
        expected = foci_choice(record["response"], record["options"])
        assert record["prediction"] == expected
    # Option names are shown as in the option file (underscores kept).
    assert any("Japanese_spaniel" in record["options"] for record in foci)

    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert [(row["scorer"], row["protocol"]) for row in report["rows"]] == [
        ("generation", "ours"),
        ("generation", "foci"),
    ]
    markdown = (tmp_path / "eval" / "report.md").read_text()
    assert "| Model | Scorer | Aircraft-102 | Avg. |" in markdown
    assert "our protocol / FOCI's, side by side" in markdown
    assert "| tiny | generation (foci protocol) |" in markdown
    ours, foci_row = report["rows"]
    pair = f"{ours['average_accuracy']:.2f} / {foci_row['average_accuracy']:.2f}"
    assert pair in markdown
