"""Readers for the six FGVR datasets in the layouts their authors distribute, plus any image folder.

Every reader returns a `datasets.Dataset` with columns `image` (Image), `label` (ClassLabel named by
category), `category` (str) and `superclass` (str).
"""

from __future__ import annotations

from pathlib import Path

import datasets

from ._common import SourceFormatError, human_readable
from .cub import load_cub_attributes
from .flowers import FLOWER_NAMES
from .imagefolder import load_image_folder


def load_source(
    name: str, data_dir: str | Path, split: str = "train", superclass: str | None = None
) -> datasets.Dataset:
    """Read `split` of the source dataset `name` from its native layout under `data_dir`.

    `superclass` overrides the super-category (required for meaning with `imagefolder`, whose default is "object").
    """
    from ..registry import SOURCES  # the registry imports the readers of this package

    if name not in SOURCES:
        raise ValueError(f"Unknown source {name!r}; choose from {', '.join(SOURCES)}.")
    if name == "imagefolder":
        return load_image_folder(data_dir, split, superclass=superclass or "object")
    dataset = SOURCES[name].reader(data_dir, split)
    if superclass is not None:
        dataset = dataset.map(lambda _: {"superclass": superclass})
    return dataset


__all__ = [
    "FLOWER_NAMES",
    "SourceFormatError",
    "human_readable",
    "load_cub_attributes",
    "load_source",
]
