"""The embedded default's generated dataset: structure, determinism, option files, and that it is learnable."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from datasets import ClassLabel, DatasetDict, load_dataset
from PIL import Image

from dataset_builders.sources.synthetic import (
    ATTRIBUTE_TYPES,
    SUPPORTED_VALUES,
    SyntheticFGVRConfig,
    attribute_distance,
    category_neighbours,
    generate_synthetic_fgvr,
    save_contact_sheet,
    synthetic_categories,
    write_synthetic_fgvr,
)

SMALL = {"num_categories": 8, "train_per_category": 3, "test_per_category": 2}
ATTRIBUTE_WORDS = [value for values in SUPPORTED_VALUES.values() for value in values]


@pytest.fixture(scope="module")
def dataset() -> DatasetDict:
    return generate_synthetic_fgvr()


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_fgvr(tmp_path_factory.mktemp("synthetic"))


def _image_bytes(split) -> list[bytes]:
    return [image["bytes"] for image in split.with_format("arrow")["image"].to_pylist()]


def _folder_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()
    }


def test_default_shape_and_columns(dataset: DatasetDict) -> None:
    config = SyntheticFGVRConfig()
    categories = synthetic_categories()
    assert set(dataset) == {"train", "test"}
    assert 16 <= len(categories) <= 24
    for split, per_category in config.split_sizes.items():
        data = dataset[split]
        assert len(data) == per_category * len(categories)
        assert isinstance(data.features["label"], ClassLabel)
        assert data.features["label"].names == [c.name for c in categories]
        assert set(data.column_names) >= {
            "image",
            "label",
            "category",
            "superclass",
            "attributes",
            "attribute_description",
        }
        row = data[0]
        assert row["image"].size == (32, 32) and row["image"].mode == "RGB"
        assert row["superclass"] == "critter"
        assert row["category"] == categories[row["label"]].name
        assert row["attributes"] == categories[row["label"]].attributes
    assert generate_synthetic_fgvr(image_size=48, **SMALL)["test"][0]["image"].size == (48, 48)


def test_same_seed_gives_identical_bytes(tmp_path: Path) -> None:
    first, second = generate_synthetic_fgvr(seed=3, **SMALL), generate_synthetic_fgvr(seed=3, **SMALL)
    for split in first:
        assert _image_bytes(first[split]) == _image_bytes(second[split])
        assert first[split].remove_columns("image").to_list() == second[split].remove_columns("image").to_list()
    a = write_synthetic_fgvr(tmp_path / "a", seed=3, **SMALL)
    b = write_synthetic_fgvr(tmp_path / "b", seed=3, **SMALL)
    assert _folder_digest(a) == _folder_digest(b)


def test_distinct_seeds_differ() -> None:
    first, second = generate_synthetic_fgvr(seed=0, **SMALL), generate_synthetic_fgvr(seed=1, **SMALL)
    assert first["train"].features["label"].names != second["train"].features["label"].names
    assert set(_image_bytes(first["train"])).isdisjoint(_image_bytes(second["train"]))


@pytest.mark.parametrize("seed", range(8))
def test_names_are_unique_and_carry_no_attribute_words(seed: int) -> None:
    names = [c.name for c in synthetic_categories(seed=seed)]
    assert len(set(names)) == len(names)
    assert names == [c.name for c in synthetic_categories(seed=seed)]
    for name in names:
        assert name.isalpha() and name[0].isupper()
        assert not any(word.lower() in name.lower() for word in [*ATTRIBUTE_WORDS, "critter"]), name


@pytest.mark.parametrize(
    "overrides",
    [{"seed": s} for s in range(8)]
    + [
        {"num_categories": 4},
        {"num_categories": 24, "seed": 5},
        {"num_categories": 40, "colors": list(SUPPORTED_VALUES["color"]), "shapes": list(SUPPORTED_VALUES["shape"])},
    ],
)
def test_every_category_has_a_single_attribute_neighbour(overrides: dict) -> None:
    categories = synthetic_categories(**overrides)
    assert len({tuple(c.attributes.values()) for c in categories}) == len(categories)
    neighbours = category_neighbours(categories)
    for category in categories:
        ranked = neighbours[category.name]
        assert len(ranked) == len(categories) - 1
        assert [d for _, d in ranked] == sorted(d for _, d in ranked)
        assert ranked[0][1] == 1, category
    if len(categories) >= 16:
        # Every attribute type alone separates some pair of categories: all four are needed to recognise.
        separating = {
            next(t for t in ATTRIBUTE_TYPES if a.attributes[t] != b.attributes[t])
            for a in categories
            for b in categories
            if attribute_distance(a.attributes, b.attributes) == 1
        }
        assert separating == set(ATTRIBUTE_TYPES)


def test_descriptions_mention_attributes_but_no_category_name(dataset: DatasetDict) -> None:
    names = [name.lower() for name in dataset["train"].features["label"].names]
    descriptions = set()
    for split in dataset.values():
        for attributes, description in zip(split["attributes"], split["attribute_description"]):
            lowered = description.lower()
            assert description.count(".") == 5
            for value in attributes.values():
                assert value in lowered, (value, description)
            assert not any(name in lowered for name in names), description
            descriptions.add(description)
    assert len(descriptions) > len(names) * 10  # template variety, not one text per class


def test_splits_are_disjoint(dataset: DatasetDict) -> None:
    train, test = dataset["train"], dataset["test"]
    assert set(_image_bytes(train)).isdisjoint(_image_bytes(test))
    assert set(train["image_path"]).isdisjoint(test["image_path"])
    assert len(set(_image_bytes(train))) == len(train)


def test_written_folder_and_option_file(written: Path, dataset: DatasetDict) -> None:
    categories = synthetic_categories()
    by_name = {c.name: c.attributes for c in categories}
    options = json.loads((written / "options_test.json").read_text())
    assert set(options) == set(by_name)
    entries = [entry for items in options.values() for entry in items]
    assert sorted(e["image"] for e in entries) == sorted(dataset["test"]["image_path"])
    for class_name, items in options.items():
        for entry in items:
            assert entry["groundtruth"] == class_name == entry["options"][0]
            assert len(set(entry["options"])) == 4 and set(entry["options"]) <= set(by_name)
            assert (written / entry["image"]).is_file()
            distances = sorted(attribute_distance(by_name[class_name], by_name[o]) for o in entry["options"][1:])
            nearest = sorted(d for _, d in category_neighbours(categories)[class_name])[:3]
            assert distances == nearest
    # The PNG on disk is the dataset's image.
    row = dataset["test"][0]
    assert np.array_equal(np.asarray(Image.open(written / row["image_path"])), np.asarray(row["image"]))
    summary = json.loads((written / "synthetic_fgvr.json").read_text())
    assert [c["name"] for c in summary["categories"]] == list(by_name)
    # `load_dataset("imagefolder")` reads the layout with its metadata.
    loaded = load_dataset("imagefolder", data_dir=str(written))
    assert {split: len(data) for split, data in loaded.items()} == {s: len(d) for s, d in dataset.items()}
    assert sorted(loaded["test"]["attribute_description"]) == sorted(dataset["test"]["attribute_description"])


def _pixels(split) -> np.ndarray:
    return np.stack([np.asarray(image, dtype=np.float64).ravel() / 255 for image in split["image"]])


def test_attributes_are_visually_recoverable(dataset: DatasetDict) -> None:
    """A linear (kernel ridge) classifier on raw pixels, trained on train, scored on test: measured."""
    train, test = _pixels(dataset["train"]), _pixels(dataset["test"])
    mean = train.mean(axis=0)
    train, test = train - mean, test - mean
    solve = np.linalg.inv(train @ train.T + 10.0 * np.eye(len(train)))
    # Chance is 1/4 for colour, shape and texture and 1/3 for size; measured: ~0.9, ~0.7, ~0.65, ~0.85.
    minimum = {"color": 0.75, "shape": 0.45, "texture": 0.45, "size": 0.6}
    for attribute_type in ATTRIBUTE_TYPES:
        y_train = np.array([a[attribute_type] for a in dataset["train"]["attributes"]])
        y_test = np.array([a[attribute_type] for a in dataset["test"]["attributes"]])
        classes = np.unique(y_train)
        weights = train.T @ (solve @ (y_train[:, None] == classes[None]).astype(float))
        accuracy = float(np.mean(classes[(test @ weights).argmax(axis=1)] == y_test))
        assert accuracy >= minimum[attribute_type], (attribute_type, accuracy)


def test_contact_sheet(dataset: DatasetDict, tmp_path: Path) -> None:
    path = save_contact_sheet(dataset, tmp_path / "sheet.png", images_per_category=4, zoom=2)
    sheet = Image.open(path)
    rows = len(dataset["train"].features["label"].names)
    assert sheet.height >= rows * 64 and sheet.width >= 4 * 64


@pytest.mark.parametrize(
    "overrides",
    [{"colors": ["red", "teal"]}, {"sizes": ["small"]}, {"num_categories": 3}, {"num_categories": 10_000}],
)
def test_invalid_configs_fail(overrides: dict) -> None:
    with pytest.raises(ValueError):
        SyntheticFGVRConfig(**overrides)
