"""The dataset registry: every dataset the project reads, with everything each part needs to know about it.

Sources (readers), evaluation (option files, where test images live), prompts (the noun a question asks about),
the model card (column titles) and the demo (category sets) all read this one table.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import datasets

# (data_dir, split, max_image_pixels=...) -> the split as a source dataset
Reader = Callable[..., "datasets.Dataset"]
# The pixel budget of an image, checked on its header before decoding: the readers skip (and count) larger images,
# and the demo refuses them, since decoding a 100 MP PNG takes gigabytes for no better description or answer. Here,
# in the registry every part reads and which imports nothing heavy, so the build options (`build_config`) and the
# source readers take it from one place.
DEFAULT_MAX_IMAGE_PIXELS = 40_000_000


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset: its name, how to read it and how to ask about it."""

    name: str  # registry key, e.g. "bird-200"
    display_name: str  # the column header of the paper's Table 2
    superclass: str | None  # the noun of the questions ("bird"); None: generic
    plural: str | None  # "Which of these {plural} is shown in the image?"
    option_file: str | None  # file name under `hf_finedefics/data/mc_options/`; None: the user brings one
    layout: str  # the native layout, for error messages
    reader: Reader | None = None  # reads a split of the native layout (None: evaluation only)
    splits: tuple[str, ...] = ()
    # The option files' leading folder and what it is in the native layout.
    option_prefix: str = "images/"
    native_prefix: str = "images/"
    # The split the paper trains on (`load_sources(..., split="train")` reads it).
    train_split: str = "train"
    # FOCI's question noun where it differs from `plural` (FOCI asks "Which of these aircrafts ...").
    foci_plural: str | None = None

    def resolve(self, data_dir: str | Path, relative_path: str) -> Path:
        """The image file of an option file's `relative_path` inside the user's copy of the dataset."""
        if self.option_prefix and relative_path.startswith(self.option_prefix):
            relative_path = self.native_prefix + relative_path[len(self.option_prefix) :]
        return Path(data_dir) / relative_path


def _reader(module: str, function: str) -> Reader:
    """The reader `function` of `dataset_builders.sources.<module>`, imported on its first call: the registry stays
    importable without `datasets` and torch (the command line's --help reads it)."""

    def read(*args, **kwargs):
        return getattr(importlib.import_module(f"dataset_builders.sources.{module}"), function)(*args, **kwargs)

    read.__name__ = read.__qualname__ = function
    return read


def _shipped(name: str) -> str:
    return f"{name}-ViT-L-14-laion2b_s32b_b82k-4.json"


# Table 2 order (Dog, Bird, Aircraft, Flower, Pet, Car), then Table 9, then the generic layouts.
REGISTRY: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in [
        DatasetSpec(
            "dog-120",
            "Dog-120",
            "dog",
            "dogs",
            _shipped("dog-120"),
            "Stanford Dogs: Images/<wnid>-<breed>/<wnid>_<n>.jpg",
            _reader("dogs", "load_stanford_dogs"),
            ("train", "test"),
            native_prefix="Images/",
        ),
        DatasetSpec(
            "bird-200",
            "Bird-200",
            "bird",
            "birds",
            _shipped("bird-200"),
            "CUB-200-2011 (the CUB_200_2011 folder): images/<nnn>.<Species>/<file>.jpg",
            _reader("cub", "load_cub"),
            ("train", "test"),
        ),
        DatasetSpec(
            "aircraft-102",
            "Aircraft-102",
            "aircraft",
            "aircraft",
            _shipped("aircraft-102"),
            "FGVC-Aircraft (the fgvc-aircraft-2013b folder): data/images/<id>.jpg",
            _reader("aircraft", "load_fgvc_aircraft"),
            ("train", "val", "trainval", "test"),
            native_prefix="data/images/",
            train_split="trainval",
            foci_plural="aircrafts",
        ),
        DatasetSpec(
            "flower-102",
            "Flower-102",
            "flower",
            "flowers",
            _shipped("flower-102"),
            "Oxford 102 Flowers: jpg/image_<nnnnn>.jpg",
            _reader("flowers", "load_oxford_flowers"),
            ("train", "val", "trainval", "test"),
            native_prefix="jpg/",
            train_split="trainval",
        ),
        DatasetSpec(
            "pet-37",
            "Pet-37",
            "pet",
            "pets",
            _shipped("pet-37"),
            "Oxford-IIIT Pet: images/<Breed>_<n>.jpg",
            _reader("pets", "load_oxford_pets"),
            ("trainval", "test"),
            train_split="trainval",
        ),
        DatasetSpec(
            "car-196",
            "Car-196",
            "car",
            "cars",
            _shipped("car-196"),
            "Stanford Cars: cars_test/<nnnnn>.jpg (the test split; cars_train holds different images of the same names)",
            _reader("cars", "load_stanford_cars"),
            ("train", "test"),
            native_prefix="cars_test/",
        ),
        DatasetSpec(
            "imagenet-adversarial",
            "ImageNet-A",
            None,
            None,
            _shipped("imagenet-adversarial"),
            "ImageNet-A (the imagenet-a folder): <wnid>/<file>.jpg",
            option_prefix="",
            native_prefix="",
        ),
        DatasetSpec(
            "imagenet-rendition",
            "ImageNet-R",
            None,
            None,
            _shipped("imagenet-rendition"),
            "ImageNet-R (the imagenet-r folder): <wnid>/<file>.jpg",
            option_prefix="",
            native_prefix="",
        ),
        DatasetSpec(
            "synthetic",
            "Synthetic critters",
            "critter",
            "critters",
            None,
            "the embedded default's generated world (dataset_builders.sources.synthetic): <split>/<Species>/<n>.png",
            _reader("synthetic", "load_synthetic"),
            ("train", "test"),
            option_prefix="",
            native_prefix="",
        ),
        DatasetSpec(
            "imagefolder",
            "ImageFolder",
            None,
            None,
            None,
            "<split>/<class>/<image> or <class>/<image>; option-file paths relative to the data directory",
            _reader("imagefolder", "load_image_folder"),
            option_prefix="",
            native_prefix="",
        ),
    ]
}

# The six FGVR benchmarks of the paper's Table 2, in its column order.
FGVR_BENCHMARKS = ("dog-120", "bird-200", "aircraft-102", "flower-102", "pet-37", "car-196")


def get_spec(name: str) -> DatasetSpec:
    if name not in REGISTRY:
        raise ValueError(f"Unknown dataset {name!r}; choose from {', '.join(REGISTRY)}.")
    return REGISTRY[name]


# Datasets `load_source` / `finedefics build-dataset` can read.
SOURCES: dict[str, DatasetSpec] = {name: spec for name, spec in REGISTRY.items() if spec.reader is not None}
