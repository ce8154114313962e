"""Fixture datasets in the native layouts, made by code: a few tiny JPEGs per class."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

# dataset -> (path the option file writes, path in the native layout); {c} class index, {n} image index.
NATIVE_LAYOUTS = {
    "dog-120": ("images/n0{c}-breed{c}/n0{c}_{n}.jpg", "Images/n0{c}-breed{c}/n0{c}_{n}.jpg"),
    "bird-200": ("images/00{c}.Species_{c}/Species_{c}_{n}.jpg", "images/00{c}.Species_{c}/Species_{c}_{n}.jpg"),
    "aircraft-102": ("images/1{c}0{n}.jpg", "data/images/1{c}0{n}.jpg"),
    "flower-102": ("images/image_0{c}0{n}.jpg", "jpg/image_0{c}0{n}.jpg"),
    "pet-37": ("images/Breed{c}_{n}.jpg", "images/Breed{c}_{n}.jpg"),
    "car-196": ("images/0{c}0{n}.jpg", "cars_test/0{c}0{n}.jpg"),
    "imagefolder": ("test/class{c}/{n}.png", "test/class{c}/{n}.png"),
}
CLASS_NAMES = ["Japanese_spaniel", "Chihuahua", "Siamese", "Boeing 737", "Boeing 737-800"]
CLASS_COLORS = ["red", "green", "blue", "yellow", "purple"]


def make_native_dataset(name: str, root: Path, images_per_class: int = 2) -> Path:
    """Write `images_per_class` images per class where dataset `name` keeps its test images, and an option
    file in the shipped format (4 options per image, the class among them); return the option file."""
    option_template, native_template = NATIVE_LAYOUTS[name]
    classes = {}
    for c, class_name in enumerate(CLASS_NAMES):
        # The class itself and three others, rotating, so every position and class appears.
        options = [CLASS_NAMES[(c + offset) % len(CLASS_NAMES)] for offset in range(4)]
        entries = []
        for n in range(images_per_class):
            native = root / native_template.format(c=c, n=n)
            native.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (24 + 4 * n, 20), CLASS_COLORS[c]).save(native)
            entries.append({"image": option_template.format(c=c, n=n), "options": options, "groundtruth": class_name})
        classes[class_name] = entries
    options_file = root / f"{name}-options.json"
    options_file.write_text(json.dumps(classes))
    return options_file


@pytest.fixture
def native_dataset(tmp_path):
    def make(name: str, images_per_class: int = 2) -> tuple[Path, Path]:
        root = tmp_path / name
        return root, make_native_dataset(name, root, images_per_class)

    return make
