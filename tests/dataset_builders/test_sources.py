import json
import logging
import os
import re

import numpy as np
import pytest
from PIL import Image, ImageFile

from dataset_builders import load_cub_attributes, load_source
from dataset_builders.sources import FLOWER_NAMES, SourceFormatError, folder_fingerprint
from hf_finedefics.evaluation import shipped_option_file

from . import layouts


def normalise(name: str) -> str:
    return re.sub(r"[\s_]+", " ", name).strip().lower()


def mc_option_names(source: str) -> set[str]:
    """Class names of the evaluation option file of `source` (the names our readers must produce)."""
    return {normalise(name) for name in json.loads(shipped_option_file(source).read_text())}


def palette_index(image) -> int:
    """Which palette colour `layouts.write_image` painted the bottom-right corner with (JPEG shifts it a little)."""
    corner = np.asarray(image.convert("RGB"), dtype=float)[-1, -1]
    return int(np.argmin([np.abs(corner - np.array(colour)).sum() for colour in layouts.PALETTE]))


def check_rows(dataset, expected_rows: int, superclass: str) -> None:
    assert dataset.num_rows == expected_rows
    assert dataset.column_names[:4] == ["image", "label", "category", "superclass"]
    names = dataset.features["label"].names
    for row in dataset:
        assert row["category"] == names[row["label"]]
        assert row["superclass"] == superclass
        assert palette_index(row["image"]) == row["label"]


def test_cub_splits_names_and_attributes(tmp_path):
    data_dir = layouts.make_cub(tmp_path)
    train, test = load_source("bird-200", data_dir, "train"), load_source("bird-200", data_dir, "test")
    check_rows(train, 3, "bird")
    check_rows(test, 3, "bird")
    assert train.features["label"].names == ["Black footed Albatross", "Laysan Albatross", "Sooty Albatross"]
    assert {normalise(n) for n in train.features["label"].names} <= mc_option_names("bird-200")
    assert not set(train["cub_image_id"]) & set(test["cub_image_id"])

    attributes = load_cub_attributes(data_dir)
    # layouts marks attribute k present for class k-1 only.
    first_test_image = test[0]
    assert attributes[first_test_image["cub_image_id"]] == [("bill shape", "curved (up or down)")]
    assert attributes[test[2]["cub_image_id"]] == [("wing color", "white")]


def test_dogs_reads_mat_lists(tmp_path):
    data_dir = layouts.make_dogs(tmp_path)
    train = load_source("dog-120", data_dir, "train")
    check_rows(train, 6, "dog")
    check_rows(load_source("dog-120", data_dir, "test"), 3, "dog")
    assert train.features["label"].names == ["Chihuahua", "Japanese spaniel", "Shih-Tzu"]
    assert {normalise(n) for n in train.features["label"].names} <= mc_option_names("dog-120")


@pytest.mark.parametrize("split, rows", [("train", 3), ("val", 3), ("trainval", 6), ("test", 3)])
def test_aircraft_variant_names_with_spaces_and_slashes(tmp_path, split, rows):
    data_dir = layouts.make_aircraft(tmp_path)
    dataset = load_source("aircraft-102", data_dir, split)
    check_rows(dataset, rows, "aircraft")
    assert dataset.features["label"].names == layouts.AIRCRAFT_VARIANTS
    assert {normalise(n) for n in layouts.AIRCRAFT_VARIANTS} <= mc_option_names("aircraft-102")


def test_flowers_standard_names(tmp_path):
    data_dir = layouts.make_flowers(tmp_path)
    for split in ("train", "val", "test"):
        check_rows(load_source("flower-102", data_dir, split), 3, "flower")
    check_rows(load_source("flower-102", data_dir, "trainval"), 6, "flower")  # the paper trains on train + val
    assert load_source("flower-102", data_dir, "train").features["label"].names == FLOWER_NAMES
    assert len(FLOWER_NAMES) == 102
    assert {normalise(n) for n in FLOWER_NAMES} == mc_option_names("flower-102")


def test_pets_breed_names(tmp_path):
    data_dir = layouts.make_pets(tmp_path)
    train = load_source("pet-37", data_dir, "trainval")  # the dataset's own split names
    check_rows(train, 6, "pet")
    with pytest.raises(ValueError, match="no split 'train'"):
        load_source("pet-37", data_dir, "train")
    check_rows(load_source("pet-37", data_dir, "test"), 3, "pet")
    assert train.features["label"].names == ["Abyssinian", "American Pit Bull Terrier", "Great Pyrenees"]
    assert {normalise(n) for n in train.features["label"].names} <= mc_option_names("pet-37")


def test_cars_never_mix_train_and_test_files(tmp_path):
    data_dir = layouts.make_cars(tmp_path)
    train, test = load_source("car-196", data_dir, "train"), load_source("car-196", data_dir, "test")
    # Same file names in both splits, different classes: the colour check proves each row read its own split.
    check_rows(train, 6, "car")
    check_rows(test, 6, "car")
    raw_train = train.cast_column("image", train.features["image"].__class__(decode=False))["image"]
    raw_test = test.cast_column("image", test.features["image"].__class__(decode=False))["image"]
    assert all("cars_train" in item["path"] for item in raw_train)
    assert all("cars_test" in item["path"] for item in raw_test)
    assert train[0]["label"] != test[0]["label"]
    assert train.features["label"].names == layouts.CAR_CLASSES
    assert {normalise(n) for n in layouts.CAR_CLASSES} <= mc_option_names("car-196")


def test_image_folder(tmp_path):
    data_dir = layouts.make_image_folder(tmp_path / "train", ["blue_jay", "red_finch"])
    dataset = load_source("imagefolder", tmp_path, "train", superclass="bird")
    check_rows(dataset, 6, "bird")
    assert dataset.features["label"].names == ["blue jay", "red finch"]
    assert data_dir.exists()


def test_folder_fingerprint_follows_the_file_list_sizes_and_mtimes(tmp_path):
    data_dir = layouts.make_image_folder(tmp_path / "birds", ["jay", "wren"], 2)
    first = folder_fingerprint(data_dir)
    assert folder_fingerprint(data_dir) == first  # nothing changed: a rebuild reuses
    layouts.make_image_folder(data_dir, ["finch"], 1)
    added = folder_fingerprint(data_dir)
    (data_dir / "jay" / "0.png").unlink()
    removed = folder_fingerprint(data_dir)
    image = data_dir / "wren" / "1.png"
    os.utime(image, ns=(image.stat().st_atime_ns, image.stat().st_mtime_ns + 1_000_000_000))  # replaced in place
    assert len({first, added, removed, folder_fingerprint(data_dir)}) == 4


def test_missing_metadata_names_the_file(tmp_path):
    data_dir = layouts.make_cub(tmp_path)
    (data_dir / "train_test_split.txt").unlink()
    with pytest.raises(SourceFormatError, match="train_test_split.txt"):
        load_source("bird-200", data_dir, "train")


def test_unreadable_metadata_names_file_line_and_value(tmp_path):
    data_dir = layouts.make_cub(tmp_path)
    (data_dir / "image_class_labels.txt").write_text("1 one\n")
    with pytest.raises(SourceFormatError, match=r"image_class_labels.txt, line 1: .*'one'"):
        load_source("bird-200", data_dir, "train")


def test_car_test_split_without_labels_is_explained(tmp_path):
    data_dir = layouts.make_cars(tmp_path)
    (data_dir / "cars_test_annos_withlabels.mat").unlink()
    with pytest.raises(SourceFormatError, match="cars_test_annos_withlabels.mat"):
        load_source("car-196", data_dir, "test")


def test_corrupt_images_are_skipped_and_counted(tmp_path, caplog):
    data_dir = layouts.make_pets(tmp_path)
    (data_dir / "images" / "Abyssinian_1.jpg").write_bytes(b"not a jpeg")
    truncated = data_dir / "images" / "great_pyrenees_2.jpg"
    truncated.write_bytes(truncated.read_bytes()[:40])
    with caplog.at_level(logging.WARNING):
        dataset = load_source("pet-37", data_dir, "trainval")
    assert dataset.num_rows == 4
    assert "skipped 2 of 6 images" in caplog.text


def test_images_over_the_pixel_budget_are_skipped_before_decoding(tmp_path, caplog, monkeypatch):
    """A 40 MP+ image (here 8000x5001, 14 KB as a 1-bit PNG) is refused from its header, never decoded, and
    counted like corrupt ones; the default budget is the demo's 40 MP."""
    data_dir = layouts.make_image_folder(tmp_path / "data", ["wren", "jay"], 2)
    Image.new("1", (8000, 5001), 1).save(data_dir / "wren" / "huge.png")
    (data_dir / "wren" / "broken.png").write_bytes(b"not a png")
    decoded = []
    load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda image: decoded.append(image.size) or load(image))
    with caplog.at_level(logging.WARNING):
        dataset = load_source("imagefolder", data_dir, "train", "bird")
    assert dataset.num_rows == 4
    assert (8000, 5001) not in decoded
    assert "skipped 2 of 6 images: 1 unreadable (first: " in caplog.text
    assert f"1 over the 40 MP pixel budget (first: {data_dir / 'wren' / 'huge.png'}, 8000x5001)" in caplog.text

    small_budget = load_source("imagefolder", data_dir, "train", "bird", max_image_pixels=16 * 17)
    assert small_budget.num_rows == 2  # 16x16 images stay, 17x17 ones go


def test_class_left_without_images_is_named(tmp_path, caplog):
    data_dir = layouts.make_image_folder(tmp_path / "data", ["wren", "jay", "robin"], 2)
    for image in (data_dir / "jay").iterdir():
        image.write_bytes(b"broken")
    with caplog.at_level(logging.WARNING):
        dataset = load_source("imagefolder", data_dir, "train", "bird")
    assert dataset.num_rows == 4
    assert "1 class(es) have no readable image left: jay" in caplog.text


def test_unknown_source_and_split(tmp_path):
    with pytest.raises(ValueError, match="Unknown source 'birds'"):
        load_source("birds", tmp_path, "train")
    with pytest.raises(ValueError, match="no split 'val'"):
        load_source("bird-200", layouts.make_cub(tmp_path), "val")
