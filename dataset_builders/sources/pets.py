"""Oxford-IIIT Pet (`pet-37`): images/, annotations/trainval.txt, annotations/test.txt."""

from __future__ import annotations

from pathlib import Path

import datasets

from ..registry import DEFAULT_MAX_IMAGE_PIXELS
from ._common import (
    SourceFormatError,
    SourceRecord,
    build_source_dataset,
    check_split,
    parse_int,
    read_lines,
    require_file,
)

SPLITS = ("trainval", "test")


def breed_name(image_stem: str) -> str:
    """ "american_pit_bull_terrier_12" -> "American Pit Bull Terrier" (cat files are already capitalised)."""
    words = image_stem.rsplit("_", 1)[0].split("_")
    return " ".join(word[:1].upper() + word[1:] for word in words)


def load_oxford_pets(
    data_dir: str | Path, split: str, max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
) -> datasets.Dataset:
    check_split("pet-37", split, SPLITS)
    data_dir = Path(data_dir)
    names: dict[int, str] = {}
    rows = []
    # Read both lists so class names are complete whatever the split.
    for list_split in SPLITS:
        path = require_file(data_dir, f"annotations/{list_split}.txt")
        for line_number, fields in enumerate(read_lines(path), start=1):
            if fields[0].startswith("#"):
                continue
            if len(fields) < 2:
                raise SourceFormatError(
                    f"{path}, line {line_number}: expected '<image> <class id> ...', got {fields}."
                )
            label = parse_int(fields[1], path, line_number, "class id") - 1
            names.setdefault(label, breed_name(fields[0]))
            if list_split == split:
                rows.append((fields[0], label))
    if sorted(names) != list(range(len(names))):
        raise SourceFormatError(f"{data_dir / 'annotations'}: class ids are not 1..{len(names)}.")
    class_names = [names[label] for label in range(len(names))]
    records = [SourceRecord(data_dir / "images" / f"{stem}.jpg", label) for stem, label in rows]
    return build_source_dataset(records, class_names, "pet", "pet-37", max_image_pixels=max_image_pixels)
