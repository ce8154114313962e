"""Readers for the six FGVR datasets in the layouts their authors distribute, plus any image folder.

Every reader returns a `datasets.Dataset` with columns `image` (Image), `label` (ClassLabel named by
category), `category` (str) and `superclass` (str).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import datasets

from ._common import DEFAULT_MAX_IMAGE_PIXELS, SourceFormatError, human_readable
from .aircraft import load_fgvc_aircraft
from .cars import load_stanford_cars
from .cub import load_cub, load_cub_attributes
from .dogs import load_stanford_dogs
from .flowers import FLOWER_NAMES, load_oxford_flowers
from .imagefolder import load_image_folder
from .pets import load_oxford_pets

SOURCES: dict[str, Callable[[str | Path, str], datasets.Dataset]] = {
    "bird-200": load_cub,
    "dog-120": load_stanford_dogs,
    "aircraft-102": load_fgvc_aircraft,
    "flower-102": load_oxford_flowers,
    "pet-37": load_oxford_pets,
    "car-196": load_stanford_cars,
    "imagefolder": load_image_folder,
}

SUPERCLASSES = {
    "bird-200": "bird",
    "dog-120": "dog",
    "aircraft-102": "aircraft",
    "flower-102": "flower",
    "pet-37": "pet",
    "car-196": "car",
}


def load_source(
    name: str,
    data_dir: str | Path,
    split: str = "train",
    superclass: str | None = None,
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
) -> datasets.Dataset:
    """Read `split` of the source dataset `name` from its native layout under `data_dir`.

    `superclass` overrides the super-category (required for meaning with `imagefolder`, whose default is "object").
    Unreadable images and images over `max_image_pixels` (read from the header) are skipped with a warning.
    """
    if name not in SOURCES:
        raise ValueError(f"Unknown source {name!r}; choose from {sorted(SOURCES)}.")
    if name == "imagefolder":
        return load_image_folder(data_dir, split, superclass=superclass or "object", max_image_pixels=max_image_pixels)
    dataset = SOURCES[name](data_dir, split, max_image_pixels=max_image_pixels)
    if superclass is not None:
        dataset = dataset.map(lambda _: {"superclass": superclass})
    return dataset


__all__ = [
    "DEFAULT_MAX_IMAGE_PIXELS",
    "FLOWER_NAMES",
    "SOURCES",
    "SUPERCLASSES",
    "SourceFormatError",
    "human_readable",
    "load_cub_attributes",
    "load_source",
]
