import json
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image
from transformers import AutoModelForImageTextToText, CLIPModel, CLIPProcessor

from hf_finedefics.cli import main as finedefics
from hf_finedefics.evaluation import build_option_file, load_mc_items, scan_imagefolder
from hf_finedefics.testing import create_tiny_checkpoint
from tests.conftest import tensorboard_scalars

from .conftest import CLASS_NAMES, make_native_dataset


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_evaluate_from_yaml_with_flag_override(tmp_path):
    data_dir = tmp_path / "data"
    options = {name: make_native_dataset(name, data_dir / name) for name in ("bird-200", "car-196")}
    config = {
        "model_name_or_path": str(create_tiny_checkpoint("llava")),
        "sources": ["bird-200", "car-196"],
        "data_dir": str(data_dir),
        "options_files": ",".join(f"{name}={path}" for name, path in options.items()),
        "output_dir": str(tmp_path / "eval"),
        "scorers": ["generation"],
        "batch_size": 4,
        "max_new_tokens": 4,
    }
    (tmp_path / "eval.yaml").write_text(yaml.safe_dump(config))
    finedefics(
        [
            "evaluate",
            "--config",
            str(tmp_path / "eval.yaml"),
            "--scorers",
            "generation",
            "likelihood",
            "--model_name",
            "tiny",
        ]
    )

    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert report["datasets"] == ["bird-200", "car-196"]
    assert [(row["model"], row["scorer"]) for row in report["rows"]] == [
        ("tiny", "generation"),
        ("tiny", "likelihood"),
    ]
    for row in report["rows"]:
        accuracies = [row["datasets"][name]["accuracy"] for name in report["datasets"]]
        assert row["average_accuracy"] == pytest.approx(sum(accuracies) / 2, abs=0.01)
    markdown = (tmp_path / "eval" / "report.md").read_text()
    assert "| Model | Scorer | Bird-200 | Car-196 | Avg. |" in markdown
    predictions = _read_jsonl(tmp_path / "eval" / "predictions" / "tiny" / "car-196.generation.jsonl")
    assert len(predictions) == 2 * len(CLASS_NAMES)
    assert all("response" in record for record in predictions)


def test_missing_images_fail_before_the_model_loads(tmp_path):
    options_file = make_native_dataset("car-196", tmp_path / "car-196")
    next((tmp_path / "car-196" / "cars_test").iterdir()).unlink()
    with pytest.raises(FileNotFoundError, match="1 of 10 car-196 test images are missing"):
        finedefics(
            ["evaluate", "--model_name_or_path", str(tmp_path / "no-such-model"), "--sources", "car-196"]
            + ["--data_dir", str(tmp_path)]
            + ["--options_files", f"car-196={options_file}"]
        )


@pytest.mark.parametrize(
    "change, message",
    [
        ({"options": [CLASS_NAMES[0]] * 4}, rf"entry 0 of class '{CLASS_NAMES[0]}': the options of .* repeat a class"),
        ({"image": 5}, rf"entry 0 of class '{CLASS_NAMES[0]}': 'image' must be a path relative to the dataset, got 5"),
    ],
    ids=["options-all-one-name", "image-a-number"],
)
def test_option_files_that_cannot_be_meant_are_refused_before_the_model_loads(tmp_path, change, message):
    """Four options of one name scored 0.00 %; a number for an image failed deep inside the scoring."""
    options_file = make_native_dataset("car-196", tmp_path / "car-196")
    classes = json.loads(options_file.read_text())
    classes[CLASS_NAMES[0]][0] |= change
    options_file.write_text(json.dumps(classes))
    with pytest.raises(ValueError, match=rf"Option file {options_file}: {message}"):
        finedefics(
            ["evaluate", "--model_name_or_path", str(tmp_path / "no-such-model"), "--sources", "car-196"]
            + ["--data_dir", str(tmp_path), "--options_files", f"car-196={options_file}"]
        )


@pytest.mark.parametrize("flag", ["--batch_size", "--max_new_tokens"])
def test_sizes_below_one_are_refused_naming_the_option(tmp_path, capsys, flag):
    with pytest.raises(SystemExit):
        finedefics(["evaluate", "--model_name_or_path", str(tmp_path / "no-such-model"), "--sources", "car-196",
                    "--data_dir", str(tmp_path), flag, "0"])  # fmt: skip
    assert f"{flag.removeprefix('--')} must be at least 1, got 0" in capsys.readouterr().err


def _lora_adapter(model_path: Path, output_dir: Path) -> Path:
    from peft import LoraConfig, get_peft_model

    model = AutoModelForImageTextToText.from_pretrained(model_path)
    # Random (non-zero) LoRA weights, so scores with and without the adapter must differ.
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(model, config).save_pretrained(output_dir)
    return output_dir


def test_imagefolder_with_clip_options_and_adapter(tmp_path):
    make_native_dataset("imagefolder", tmp_path / "folder")
    model_path = create_tiny_checkpoint("idefics2")
    adapter = _lora_adapter(model_path, tmp_path / "adapter")
    common = [
        "evaluate",
        "--model_name_or_path",
        str(model_path),
        "--sources",
        "imagefolder",
        "--source_dirs",
        f"imagefolder={tmp_path / 'folder'}",
    ]
    common += ["--clip_model", str(create_tiny_checkpoint("clip")), "--superclass", "bird", "--scorers", "likelihood"]
    finedefics([*common, "--output_dir", str(tmp_path / "eval")])
    finedefics([*common, "--output_dir", str(tmp_path / "eval"), "--adapter", str(adapter)])

    built = json.loads((tmp_path / "eval" / "options" / "imagefolder.json").read_text())
    assert sum(len(entries) for entries in built.values()) == 2 * len(CLASS_NAMES)
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert [row["model"] for row in report["rows"]] == [model_path.name, f"{model_path.name}+adapter"]
    base, adapted = (
        _read_jsonl(tmp_path / "eval" / "predictions" / name / "imagefolder.likelihood.jsonl")
        for name in (model_path.name, f"{model_path.name}+adapter")
    )
    assert [record["options"] for record in base] == [record["options"] for record in adapted]
    assert [record["letter_log_probs"] for record in base] != [record["letter_log_probs"] for record in adapted]


def test_clip_options_are_the_most_similar_classes_with_the_truth_swapped_in(tmp_path):
    make_native_dataset("imagefolder", tmp_path)
    images = scan_imagefolder(tmp_path)
    # Candidates beyond the folder's classes, so CLIP often ranks the true class out of the top 4.
    names = sorted({label for _, label in images}) + [f"distractor {index}" for index in range(7)]
    clip_path = create_tiny_checkpoint("clip")
    option_file = build_option_file(images, tmp_path, clip_path, tmp_path / "options.json", class_names=names)
    assert json.loads((tmp_path / "options.json").read_text()) == option_file

    # Reference similarities from the full CLIP forward, with the prompt written out here.
    model, processor = CLIPModel.from_pretrained(clip_path).eval(), CLIPProcessor.from_pretrained(clip_path)
    texts = [f"an image of a {name.replace('_', ' ')}" for name in names]
    pictures = [Image.open(tmp_path / path).convert("RGB") for path, _ in images]
    with torch.no_grad():
        similarity = model(
            **processor(text=texts, images=pictures, padding=True, return_tensors="pt")
        ).logits_per_image
    by_image = {entry["image"]: entry for entries in option_file.values() for entry in entries}
    swapped = 0
    for (path, label), row in zip(images, similarity):
        expected = [names[index] for index in row.topk(4).indices.tolist()]
        if label not in expected:
            expected[-1] = label
            swapped += 1
        assert by_image[path] == {"image": path, "options": expected, "groundtruth": label}
    assert swapped > 0  # the swap rule was exercised
    # The built file is a valid option file for the generic layout.
    assert len(load_mc_items("imagefolder", tmp_path, tmp_path / "options.json")) == len(images)


def test_evaluate_both_tasks_into_one_report(tmp_path, capsys):
    data_dir = tmp_path / "data"
    options_file = make_native_dataset("pet-37", data_dir / "pet-37")
    finedefics(
        ["evaluate", "--model_name_or_path", str(create_tiny_checkpoint("llava")), "--model_name", "tiny"]
        + ["--sources", "pet-37", "--data_dir", str(data_dir), "--options_files", f"pet-37={options_file}"]
        + ["--output_dir", str(tmp_path), "--task", "multiple_choice", "open_set", "--scorers", "likelihood"]
        + ["--batch_size", "10", "--max_new_tokens", "4", "--report_to", "tensorboard"]
    )
    report = json.loads((tmp_path / "report.json").read_text())
    assert [(row["model"], row["scorer"]) for row in report["rows"]] == [("tiny", "likelihood")]
    (open_set,) = report["open_set_rows"]
    # Both tasks' results reach TensorBoard, as the report has them.
    scalars = tensorboard_scalars(tmp_path / "runs" / "tiny")
    assert scalars["test/pet-37/likelihood"] == pytest.approx(report["rows"][0]["datasets"]["pet-37"]["accuracy"])
    assert scalars["test/pet-37/open_set_top5"] == pytest.approx(open_set["datasets"]["pet-37"]["top5"])
    assert len(scalars) == 1 + 5  # the accuracy, and the four open-set measures with the mean cosine
    assert open_set["datasets"]["pet-37"]["similarity_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    answers = _read_jsonl(tmp_path / "predictions" / "tiny" / "pet-37.open_set.jsonl")
    assert {record["question"] for record in answers} == {"What is the name of the pet in this image?"}
    markdown = (tmp_path / "report.md").read_text()
    assert "| tiny | likelihood |" in markdown and "| tiny | open-set nearest top-5 |" in markdown
    assert (tmp_path / "open_set_per_class.md").is_file()
    # Refused as the command line is parsed, before any data is read.
    with pytest.raises(SystemExit):
        finedefics(["evaluate", "--model_name_or_path", "unused", "--sources", "pet-37", "--task", "open"])
    assert "Unknown tasks ['open']" in capsys.readouterr().err


def test_a_run_stage_folder_is_labelled_by_its_variant(tmp_path):
    from hf_finedefics.scripts.evaluate import model_label
    from hf_finedefics.world.pretraining import MARKER

    (tmp_path / "84289009cb24c713").mkdir()
    (tmp_path / "84289009cb24c713" / MARKER).write_text("{}")
    assert model_label(str(tmp_path / "84289009cb24c713")) == "world-base"

    assert model_label("finedefics-default/finedefics/stage2/") == "finedefics"
    assert model_label("finedefics-default/contrastive_object_category/stage1") == "contrastive_object_category-stage1"
    assert (
        model_label("outputs/my-adapter") == "my-adapter" and model_label("HuggingFaceM4/idefics2-8b") == "idefics2-8b"
    )
