"""FGVC-Aircraft 2013b at variant level (`aircraft-102`): data/images/, data/images_variant_<split>.txt,
data/variants.txt. Variant names contain spaces and slashes ("Cessna 172", "F/A-18")."""

from __future__ import annotations

from pathlib import Path

import datasets

from ..registry import DEFAULT_MAX_IMAGE_PIXELS
from ._common import (
    SourceFormatError,
    SourceRecord,
    build_source_dataset,
    check_split,
    require_file,
)

SPLITS = ("train", "val", "trainval", "test")


def _lines(path: Path) -> list[str]:
    try:
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as error:
        raise SourceFormatError(f"Cannot read metadata file {path}: {error}") from error


def load_fgvc_aircraft(
    data_dir: str | Path, split: str, max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
) -> datasets.Dataset:
    check_split("aircraft-102", split, SPLITS)
    data_dir = Path(data_dir)
    # Accept both the archive root (fgvc-aircraft-2013b/) and its data/ folder.
    root = data_dir / "data" if (data_dir / "data").is_dir() else data_dir
    class_names = _lines(require_file(root, "variants.txt"))
    index = {name: label for label, name in enumerate(class_names)}
    split_file = require_file(root, f"images_variant_{split}.txt")
    records = []
    for line_number, line in enumerate(_lines(split_file), start=1):
        # "<image id> <variant>": the variant is everything after the first space.
        image_id, _, variant = line.partition(" ")
        if variant not in index:
            raise SourceFormatError(f"{split_file}, line {line_number}: variant {variant!r} is not in variants.txt.")
        records.append(SourceRecord(root / "images" / f"{image_id}.jpg", index[variant]))
    return build_source_dataset(records, class_names, "aircraft", "aircraft-102", max_image_pixels=max_image_pixels)
