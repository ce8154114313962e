"""Readers for the six FGVR datasets in the layouts their authors distribute, plus any image folder.

Every reader returns a `datasets.Dataset` with columns `image` (Image), `label` (ClassLabel named by
category), `category` (str) and `superclass` (str). `load_sources` reads several into one dataset with one label
space (the paper trains on the six training sets together).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import datasets

from ..registry import DEFAULT_MAX_IMAGE_PIXELS
from ._common import SourceFormatError, human_readable
from .cub import load_cub_attributes
from .flowers import FLOWER_NAMES
from .imagefolder import load_image_folder


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
    from ..registry import SOURCES  # the registry imports the readers of this package

    if name not in SOURCES:
        raise ValueError(f"Unknown source {name!r}; choose from {', '.join(SOURCES)}.")
    if name == "imagefolder":
        return load_image_folder(data_dir, split, superclass=superclass or "object", max_image_pixels=max_image_pixels)
    dataset = SOURCES[name].reader(data_dir, split, max_image_pixels=max_image_pixels)
    if superclass is not None:
        dataset = dataset.map(lambda _: {"superclass": superclass})
    return dataset


# Columns every reader writes (some add their own, e.g. CUB's image ids); a combined dataset keeps these.
SOURCE_COLUMNS = ("image", "label", "category", "superclass")
# One label space over several sources: class names are "<source>/<category>".
LABEL_SEPARATOR = "/"


def parse_pairs(text: str | None) -> dict[str, str]:
    """'a=1,b=2' -> {'a': '1', 'b': '2'} (the `--source_dirs` / `--options_files` flags)."""
    if not text:
        return {}
    pairs = [entry.split("=", 1) for entry in text.split(",") if entry.strip()]
    if any(len(pair) != 2 for pair in pairs):
        raise ValueError(f"Expected 'name=path,...', got {text!r}.")
    return {name.strip(): value.strip() for name, value in pairs}


def source_folders(
    names: list[str], data_dir: str | os.PathLike | None, source_dirs: dict[str, str] | None = None
) -> dict[str, Path]:
    """Each source's folder: `source_dirs[name]`, else `data_dir/<name>`."""
    source_dirs = source_dirs or {}
    if unknown := set(source_dirs) - set(names):
        raise ValueError(f"source_dirs names {sorted(unknown)}, which are not among the sources {names}.")
    folders = {}
    for name in names:
        if name not in source_dirs and data_dir is None:
            raise ValueError(
                f"No folder for {name}: pass --data_dir ROOT (holding {name}/) or --source_dirs {name}=PATH."
            )
        folders[name] = Path(source_dirs.get(name) or Path(data_dir) / name)
        if name not in source_dirs and not folders[name].is_dir():
            raise FileNotFoundError(
                f"{folders[name]} does not exist: --data_dir ROOT holds each dataset as ROOT/<name>; for a folder "
                f"elsewhere, or one that is the dataset itself (such as a run's source/), pass --source_dirs {name}=PATH."
            )
    return folders


def folder_fingerprint(folder: str | os.PathLike) -> str:
    """A hash of every file under `folder` with its size and modification time: what a build read from a source
    folder changes with it (a class added, an image removed or replaced), and reading it costs no image decode."""
    folder = Path(folder)
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            stat = path.stat()
            digest.update(f"{path.relative_to(folder).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def paper_split(name: str, split: str) -> str:
    """`split`, except that "train" means the split the paper trains on (Aircraft, Flowers and Pets: trainval)."""
    from ..registry import SOURCES

    return SOURCES[name].train_split if split == "train" and name in SOURCES else split


def combine_sources(parts: dict[str, datasets.Dataset]) -> datasets.Dataset:
    """Datasets read by `load_source`, one per source, as one dataset: a `source` column, and `label` one ClassLabel
    over every (source, category) pair, named "<source>/<category>" (so bird 5 and dog 5 stay apart)."""
    names, offsets = [], {}
    for source, part in parts.items():
        offsets[source] = len(names)
        names += [f"{source}{LABEL_SEPARATOR}{category}" for category in part.features["label"].names]
    first = next(iter(parts.values())).features
    features = datasets.Features(
        {
            **{column: first[column] for column in SOURCE_COLUMNS},
            "label": datasets.ClassLabel(names=names),
            "source": datasets.Value("string"),
        }
    )
    relabelled = [
        part.select_columns(list(SOURCE_COLUMNS))
        .cast_column("label", datasets.Value("int64"))
        .map(
            lambda batch, source=source: {
                "label": [label + offsets[source] for label in batch["label"]],
                "source": [source] * len(batch["label"]),
            },
            batched=True,
            features=features,
            desc=f"Relabelling {source}",
        )
        for source, part in parts.items()
    ]
    return datasets.concatenate_datasets(relabelled)


def load_sources(sources: dict[str, str | os.PathLike], split: str = "train") -> datasets.Dataset:
    """Read several sources ({name: folder in its native layout}) into one dataset: the columns of `load_source`
    plus `source`; `label` is one ClassLabel over every (source, category) pair, `category` the readable name.

    `split="train"` reads each source's paper training split (CUB, Dogs and Cars train; Aircraft trainval; Flowers
    train + val; Pets trainval: 38,525 images for the six); any other split is read by that name.
    """
    if not sources:
        raise ValueError("load_sources needs at least one source.")
    return combine_sources(
        {name: load_source(name, folder, paper_split(name, split)) for name, folder in sources.items()}
    )


__all__ = [
    "DEFAULT_MAX_IMAGE_PIXELS",
    "LABEL_SEPARATOR",
    "SOURCE_COLUMNS",
    "combine_sources",
    "folder_fingerprint",
    "load_sources",
    "paper_split",
    "parse_pairs",
    "source_folders",
    "FLOWER_NAMES",
    "SourceFormatError",
    "human_readable",
    "load_cub_attributes",
    "load_source",
]
