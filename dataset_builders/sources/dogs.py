"""Stanford Dogs (`dog-120`): Images/<wnid>-<Breed>/..., lists/{train,test,file}_list.mat."""

from __future__ import annotations

from pathlib import Path

import datasets

from ..registry import DEFAULT_MAX_IMAGE_PIXELS
from ._common import (
    SourceFormatError,
    SourceRecord,
    build_source_dataset,
    check_split,
    human_readable,
    load_mat,
    matlab_strings,
    require_file,
)

SPLITS = ("train", "test")


def _class_names(file_list: list[str], labels: list[int], path: Path) -> list[str]:
    """Breed names by label, from the folder names ("n02085620-Chihuahua" -> "Chihuahua")."""
    names: dict[int, str] = {}
    for relative_path, label in zip(file_list, labels):
        folder = relative_path.split("/", 1)[0]
        wnid, separator, breed = folder.partition("-")
        if not separator:
            raise SourceFormatError(f"{path}: folder {folder!r} is not '<wnid>-<Breed>'.")
        names.setdefault(label, human_readable(breed))
    if sorted(names) != list(range(1, len(names) + 1)):
        raise SourceFormatError(f"{path}: labels are not 1..{len(names)}.")
    return [names[label] for label in range(1, len(names) + 1)]


def load_stanford_dogs(
    data_dir: str | Path, split: str, max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
) -> datasets.Dataset:
    check_split("dog-120", split, SPLITS)
    data_dir = Path(data_dir)
    # Class names come from the full list so that both splits share one label space.
    all_path = require_file(data_dir, "lists/file_list.mat", "file_list.mat")
    everything = load_mat(all_path, "file_list", "labels")
    class_names = _class_names(
        matlab_strings(everything["file_list"]), [int(x) for x in everything["labels"].ravel()], all_path
    )
    split_path = require_file(data_dir, f"lists/{split}_list.mat", f"{split}_list.mat")
    content = load_mat(split_path, "file_list", "labels")
    file_list = matlab_strings(content["file_list"])
    labels = [int(x) for x in content["labels"].ravel()]
    if len(file_list) != len(labels):
        raise SourceFormatError(f"{split_path}: {len(file_list)} files but {len(labels)} labels.")
    records = [SourceRecord(data_dir / "Images" / path, label - 1) for path, label in zip(file_list, labels)]
    return build_source_dataset(records, class_names, "dog", "dog-120", max_image_pixels=max_image_pixels)
