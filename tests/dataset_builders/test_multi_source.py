"""The paper's training set: the six FGVR training splits built into one dataset with one label space."""

import json

import datasets
import pytest
import yaml

from dataset_builders import load_sources
from dataset_builders.attributes.ablations import noisy_descriptions, sentences, short_descriptions
from hf_finedefics.cli import main as finedefics

from . import layouts

# Each fixture's paper training split: CUB train (2 of 3 images per class are train... here 1 of 2), Dogs train,
# Aircraft trainval, Flowers train + val, Pets trainval, Cars train.
PAPER_TRAIN_ROWS = {"dog-120": 6, "bird-200": 3, "aircraft-102": 6, "flower-102": 6, "pet-37": 6, "car-196": 6}
SUPERCLASSES = {
    "dog-120": "dog",
    "bird-200": "bird",
    "aircraft-102": "aircraft",
    "flower-102": "flower",
    "pet-37": "pet",
    "car-196": "car",
}


@pytest.fixture(scope="module")
def six_sources(tmp_path_factory):
    """The six native-layout fixtures, each in its own folder: {name: folder}."""
    root = tmp_path_factory.mktemp("fgvr")
    return {
        "dog-120": layouts.make_dogs(root / "dogs"),
        "bird-200": layouts.make_cub(root / "cub"),
        "aircraft-102": layouts.make_aircraft(root / "aircraft"),
        "flower-102": layouts.make_flowers(root / "flowers"),
        "pet-37": layouts.make_pets(root / "pets"),
        "car-196": layouts.make_cars(root / "cars"),
    }


def test_load_sources_one_label_space(six_sources):
    combined = load_sources(six_sources, split="train")
    assert combined.column_names == ["image", "label", "category", "superclass", "source"]
    assert {name: combined["source"].count(name) for name in six_sources} == PAPER_TRAIN_ROWS
    names = combined.features["label"].names
    assert len(names) == 3 + 3 + 3 + 102 + 3 + 3  # Flowers-102 always names all 102 classes
    assert len(set(names)) == len(names)
    for row in combined.select_columns(["label", "category", "superclass", "source"]):
        # Bird 0 and dog 0 are different labels; the category stays the readable name.
        assert names[row["label"]] == f"{row['source']}/{row['category']}"
        assert row["superclass"] == SUPERCLASSES[row["source"]]
    # Another split is read by its own name in every source that has it.
    assert load_sources({"aircraft-102": six_sources["aircraft-102"]}, split="val").num_rows == 3


def test_build_the_six_sources_into_one_folder(six_sources, idefics2_path, tmp_path, caplog):
    attributes = tmp_path / "attributes.yaml"
    attributes.write_text(yaml.safe_dump({superclass: ["color"] for superclass in SUPERCLASSES.values()}))
    out = tmp_path / "finedefics-fgvr"
    args = [
        "build-dataset",
        "--sources", *six_sources,
        "--source_dirs", ",".join(f"{name}={folder}" for name, folder in six_sources.items()),
        "--llm", idefics2_path,
        "--vqa", idefics2_path,
        "--max_new_tokens", "4",
        "--attributes", str(attributes),
        "--negatives", "random",
        "--num_negatives", "2",
        "--cache", str(tmp_path / "answers.sqlite"),
        "--output_dir", str(out),
    ]  # fmt: skip
    finedefics(args)
    triples = datasets.load_dataset(str(out), "triples", split="train")
    assert triples.num_rows == sum(PAPER_TRAIN_ROWS.values())
    assert {name: triples["source"].count(name) for name in six_sources} == PAPER_TRAIN_ROWS
    names = triples.features["label"].names
    assert names == load_sources(six_sources).features["label"].names
    for row in triples.remove_columns("image"):
        # Negatives are mined within the row's own source, and the indices point at rows of that category.
        assert all(names[label].startswith(row["source"] + "/") for label in row["neg_labels"])
        assert [names[label].split("/", 1)[1] for label in row["neg_labels"]] == row["neg_categories"]
        assert [triples[j]["label"] for j in row["neg_indices"]] == row["neg_labels"]
        assert [triples[j]["attribute"] for j in row["neg_indices"]] == row["neg_attributes"]
    instructions = datasets.load_dataset(str(out), "instructions", split="train")
    assert instructions.num_rows == 2 * triples.num_rows
    questions = [messages[0]["content"][1]["text"] for messages in instructions["messages"]]
    # Each source's own wording.
    assert sum("Which of these aircraft is shown" in q for q in questions) == PAPER_TRAIN_ROWS["aircraft-102"]
    assert sum("Which of these flowers is shown" in q for q in questions) == PAPER_TRAIN_ROWS["flower-102"]
    assert sum("What is the name of the dog in this image?" in q for q in questions) == PAPER_TRAIN_ROWS["dog-120"]
    index = datasets.load_dataset(str(out), "hard_negatives", split="train")
    assert index["index"] == list(range(triples.num_rows)) and index["neg_labels"] == triples["neg_labels"]
    card = (out / "README.md").read_text()
    assert "aircraft-102 trainval" in card and "flower-102 trainval" in card and "bird-200 train" in card

    # Sources are built one by one and kept: a rerun reuses every part; changing a setting rebuilds them.
    settings = {name: (out / "sources" / name / "settings.json").stat().st_mtime_ns for name in six_sources}
    caplog.set_level("INFO", logger="dataset_builders.build")
    finedefics(args)
    assert {name: (out / "sources" / name / "settings.json").stat().st_mtime_ns for name in six_sources} == settings
    assert sum("reusing" in message for message in caplog.messages) == len(six_sources)
    assert datasets.load_dataset(str(out), "triples", split="train")["attribute"] == triples["attribute"]
    finedefics([*args, "--short_descriptions", "true"])
    short = datasets.load_dataset(str(out), "triples", split="train")
    assert all(len(sentences(text)) == 1 for text in short["attribute"])
    finedefics([*args, "--noisy_descriptions", "0.5"])
    # (The tiny model describes every image alike, so the noise itself is checked in test_description_ablations.)
    for name in six_sources:
        assert json.loads((out / "sources" / name / "settings.json").read_text())["noisy_descriptions"] == 0.5
    assert datasets.load_dataset(str(out), "triples", split="train").num_rows == triples.num_rows
    assert "noisy descriptions (Table 6c): 50% of sentences" in (out / "README.md").read_text()


def test_description_ablations():
    descriptions = [f"Class {label} sentence {i}. Second {i}. Third {i}." for i, label in enumerate([0, 0, 1, 1, 2])]
    labels = [0, 0, 1, 1, 2]
    assert short_descriptions(descriptions) == [f"Class {label} sentence {i}." for i, label in enumerate(labels)]
    noisy = noisy_descriptions(descriptions, labels, fraction=0.4, seed=0)
    replaced = 0
    for original, text, label in zip(descriptions, noisy, labels):
        for before, after in zip(sentences(original), sentences(text), strict=True):
            if before != after:
                replaced += 1
                # The replacement comes from a description of another category.
                donors = [d for d, other in zip(descriptions, labels) if other != label]
                assert any(after in sentences(donor) for donor in donors)
    assert replaced == round(0.4 * 15)
    assert noisy_descriptions(descriptions, labels, fraction=0.0) == descriptions
    assert noisy == noisy_descriptions(descriptions, labels, fraction=0.4, seed=0)
    with pytest.raises(ValueError, match="fraction"):
        noisy_descriptions(descriptions, labels, fraction=1.5)
