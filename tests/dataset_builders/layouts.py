"""Tiny copies of each source dataset in its native layout, made by code (real file formats, .mat via scipy)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

# Distinct colours so a test can tell which file a row was read from.
PALETTE = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30), (30, 200, 200), (200, 30, 200)]


def write_image(path: Path, color: tuple[int, int, int], size: int = 16) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.zeros((size, size, 3), dtype=np.uint8)
    pixels[...] = color
    pixels[: size // 2, : size // 2] = 255 - np.array(color, dtype=np.uint8)  # some structure for the encoders
    Image.fromarray(pixels).save(path, quality=95)
    return path


def write_cell_mat(path: Path, **fields: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, fields)


def cell(strings: list[str]) -> np.ndarray:
    array = np.empty((len(strings), 1), dtype=object)
    for i, value in enumerate(strings):
        array[i, 0] = value
    return array


CUB_CLASSES = ["001.Black_footed_Albatross", "002.Laysan_Albatross", "003.Sooty_Albatross"]
CUB_ATTRIBUTES = ["has_bill_shape::curved_(up_or_down)", "has_wing_color::blue", "has_wing_color::white"]


def make_cub(root: Path, images_per_class: int = 2) -> Path:
    """CUB_200_2011/: the first image of each class is test, the others train; attributes.txt beside the folder."""
    data = root / "CUB_200_2011"
    images, labels, splits, attribute_lines = [], [], [], []
    image_id = 0
    for class_index, class_folder in enumerate(CUB_CLASSES):
        for j in range(images_per_class):
            image_id += 1
            relative = f"{class_folder}/{class_folder.split('.', 1)[1]}_{j:04d}_{image_id}.jpg"
            write_image(data / "images" / relative, PALETTE[class_index])
            images.append(f"{image_id} {relative}")
            labels.append(f"{image_id} {class_index + 1}")
            splits.append(f"{image_id} {int(j > 0)}")
            for attribute_id in range(1, len(CUB_ATTRIBUTES) + 1):
                present = int(attribute_id == class_index + 1)
                attribute_lines.append(f"{image_id} {attribute_id} {present} 4 1.5")
    (data / "images.txt").write_text("\n".join(images) + "\n")
    (data / "classes.txt").write_text("".join(f"{i + 1} {name}\n" for i, name in enumerate(CUB_CLASSES)))
    (data / "image_class_labels.txt").write_text("\n".join(labels) + "\n")
    (data / "train_test_split.txt").write_text("\n".join(splits) + "\n")
    (root / "attributes.txt").write_text("".join(f"{i + 1} {name}\n" for i, name in enumerate(CUB_ATTRIBUTES)))
    (data / "attributes").mkdir()
    (data / "attributes" / "image_attribute_labels.txt").write_text("\n".join(attribute_lines) + "\n")
    return data


DOG_FOLDERS = ["n02085620-Chihuahua", "n02085782-Japanese_spaniel", "n02086240-Shih-Tzu"]


def make_dogs(root: Path) -> Path:
    files = {"train": [], "test": []}
    labels = {"train": [], "test": []}
    for label, folder in enumerate(DOG_FOLDERS, start=1):
        for j, split in enumerate(("train", "train", "test")):
            relative = f"{folder}/{folder.split('-')[0]}_{j}.jpg"
            write_image(root / "Images" / relative, PALETTE[label - 1])
            files[split].append(relative)
            labels[split].append(label)
    for split in ("train", "test"):
        write_cell_mat(
            root / "lists" / f"{split}_list.mat",
            file_list=cell(files[split]),
            annotation_list=cell([f.removesuffix(".jpg") for f in files[split]]),
            labels=np.array(labels[split], dtype=np.uint8).reshape(-1, 1),
        )
    write_cell_mat(
        root / "lists" / "file_list.mat",
        file_list=cell(files["train"] + files["test"]),
        labels=np.array(labels["train"] + labels["test"], dtype=np.uint8).reshape(-1, 1),
    )
    return root


AIRCRAFT_VARIANTS = ["707-320", "F/A-18", "Cessna 172"]


def make_aircraft(root: Path) -> Path:
    data = root / "fgvc-aircraft-2013b" / "data"
    (data / "images").mkdir(parents=True)
    (data / "variants.txt").write_text("\n".join(AIRCRAFT_VARIANTS) + "\n")
    lines = {"train": [], "val": [], "test": []}
    image_id = 1000000
    for label, variant in enumerate(AIRCRAFT_VARIANTS):
        for split in ("train", "val", "test"):
            image_id += 1
            write_image(data / "images" / f"{image_id}.jpg", PALETTE[label])
            lines[split].append(f"{image_id} {variant}")
    lines["trainval"] = lines["train"] + lines["val"]
    for split, split_lines in lines.items():
        (data / f"images_variant_{split}.txt").write_text("\n".join(split_lines) + "\n")
    return root / "fgvc-aircraft-2013b"


def make_flowers(root: Path, num_classes: int = 3) -> Path:
    labels, setid = [], {"trnid": [], "valid": [], "tstid": []}
    number = 0
    for label in range(1, num_classes + 1):
        for field in setid:
            number += 1
            write_image(root / "jpg" / f"image_{number:05d}.jpg", PALETTE[label - 1])
            labels.append(label)
            setid[field].append(number)
    scipy.io.savemat(root / "imagelabels.mat", {"labels": np.array([labels], dtype=np.uint8)})
    scipy.io.savemat(root / "setid.mat", {key: np.array([value], dtype=np.uint16) for key, value in setid.items()})
    return root


PET_BREEDS = ["Abyssinian", "american_pit_bull_terrier", "great_pyrenees"]


def make_pets(root: Path) -> Path:
    lines = {"trainval": [], "test": []}
    for label, breed in enumerate(PET_BREEDS, start=1):
        species = 1 if breed[0].isupper() else 2
        for j, split in enumerate(("trainval", "trainval", "test")):
            stem = f"{breed}_{j + 1}"
            write_image(root / "images" / f"{stem}.jpg", PALETTE[label - 1])
            lines[split].append(f"{stem} {label} {species} {label}")
    (root / "annotations").mkdir()
    for split, split_lines in lines.items():
        (root / "annotations" / f"{split}.txt").write_text("\n".join(split_lines) + "\n")
    return root


CAR_CLASSES = ["AM General Hummer SUV 2000", "Ram C/V Cargo Van Minivan 2012", "Suzuki Aerio Sedan 2007"]


def _car_annotations(rows: list[tuple[int, str]]) -> np.ndarray:
    dtype = [(name, "O") for name in ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname")]
    return np.array([(1, 1, 10, 10, label, fname) for label, fname in rows], dtype=dtype).reshape(1, -1)


def make_cars(root: Path) -> Path:
    """Train and test both contain 00001.jpg.. but with different classes (and colours) at each name."""
    rows = {"train": [], "test": []}
    for split, offset in (("train", 0), ("test", 1)):
        for i in range(len(CAR_CLASSES) * 2):
            label = (i + offset) % len(CAR_CLASSES)
            fname = f"{i + 1:05d}.jpg"
            write_image(root / f"cars_{split}" / fname, PALETTE[label])
            rows[split].append((label + 1, fname))
    (root / "devkit").mkdir()
    scipy.io.savemat(root / "devkit" / "cars_meta.mat", {"class_names": cell(CAR_CLASSES).reshape(1, -1)})
    scipy.io.savemat(root / "devkit" / "cars_train_annos.mat", {"annotations": _car_annotations(rows["train"])})
    scipy.io.savemat(root / "cars_test_annos_withlabels.mat", {"annotations": _car_annotations(rows["test"])})
    return root


def make_image_folder(root: Path, classes: list[str], images_per_class: int = 3) -> Path:
    for label, name in enumerate(classes):
        for j in range(images_per_class):
            write_image(root / name / f"{j}.png", PALETTE[label % len(PALETTE)], size=16 + j)
    return root
