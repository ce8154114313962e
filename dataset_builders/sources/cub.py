"""CUB-200-2011 (`bird-200`): images.txt, classes.txt, image_class_labels.txt, train_test_split.txt, images/.

Also reads CUB's per-image attribute annotations (312 binary attributes), used by the paper's
ground-truth upper-bound variant.
"""

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
    parse_int,
    read_lines,
    require_file,
)

SPLITS = ("train", "test")
# CUB's certainty scale: 1 not visible, 2 guessing, 3 probably, 4 definitely.
MIN_CERTAIN = 3


def _id_table(path: Path, min_fields: int = 2) -> dict[int, list[str]]:
    table = {}
    for line_number, fields in enumerate(read_lines(path), start=1):
        if len(fields) < min_fields:
            raise SourceFormatError(f"{path}, line {line_number}: expected {min_fields} fields, got {fields}.")
        table[parse_int(fields[0], path, line_number, "id")] = fields[1:]
    return table


def _image_table(data_dir: Path) -> tuple[dict[int, str], dict[int, int], dict[int, bool], list[str]]:
    images_file = require_file(data_dir, "images.txt")
    classes_file = require_file(data_dir, "classes.txt")
    labels_file = require_file(data_dir, "image_class_labels.txt")
    split_file = require_file(data_dir, "train_test_split.txt")
    classes = _id_table(classes_file)
    class_names = [human_readable(classes[class_id][0]) for class_id in sorted(classes)]
    paths = {image_id: fields[0] for image_id, fields in _id_table(images_file).items()}
    labels = {
        image_id: parse_int(fields[0], labels_file, image_id, "class id") - 1
        for image_id, fields in _id_table(labels_file).items()
    }
    is_train = {
        image_id: parse_int(fields[0], split_file, image_id, "is_training_image") == 1
        for image_id, fields in _id_table(split_file).items()
    }
    for name, table, path in (("labels", labels, labels_file), ("splits", is_train, split_file)):
        missing = paths.keys() - table.keys()
        if missing:
            raise SourceFormatError(f"{path} has no {name} for image id(s) {sorted(missing)[:5]}.")
    return paths, labels, is_train, class_names


def load_cub(data_dir: str | Path, split: str, max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> datasets.Dataset:
    """CUB rows of `split`, with CUB's own image id in the extra column `cub_image_id`."""
    check_split("bird-200", split, SPLITS)
    data_dir = Path(data_dir)
    paths, labels, is_train, class_names = _image_table(data_dir)
    ids = [image_id for image_id in sorted(paths) if is_train[image_id] == (split == "train")]
    records = [SourceRecord(data_dir / "images" / paths[image_id], labels[image_id]) for image_id in ids]
    extra = {"cub_image_id": (datasets.Value("int64"), ids)}
    return build_source_dataset(
        records, class_names, "bird", "bird-200", extra_columns=extra, max_image_pixels=max_image_pixels
    )


def load_cub_attributes(data_dir: str | Path, min_certainty: int = MIN_CERTAIN) -> dict[int, list[tuple[str, str]]]:
    """CUB's per-image attribute annotations as {image id: [(attribute, value), ...]}.

    Only attributes marked present with at least `min_certainty` (3 = "probably") are kept. Attribute
    names come from attributes.txt ("has_bill_shape::curved_(up_or_down)" -> ("bill shape", "curved (up or
    down)")), which CUB ships either next to the dataset folder or in attributes/.
    """
    data_dir = Path(data_dir)
    names_file = require_file(data_dir, "attributes.txt", "attributes/attributes.txt", "../attributes.txt")
    labels_file = require_file(data_dir, "attributes/image_attribute_labels.txt")
    names = {}
    for attribute_id, fields in _id_table(names_file).items():
        key, _, value = fields[0].partition("::")
        if not value:
            raise SourceFormatError(
                f"{names_file}: attribute {attribute_id} {fields[0]!r} is not 'has_<name>::<value>'."
            )
        names[attribute_id] = (human_readable(key.removeprefix("has_")), human_readable(value))
    annotations: dict[int, list[tuple[str, str]]] = {}
    for line_number, fields in enumerate(read_lines(labels_file), start=1):
        # Lines are "<image> <attribute> <is_present> <certainty> <time>"; a few real lines carry an extra field.
        if len(fields) < 4:
            raise SourceFormatError(f"{labels_file}, line {line_number}: expected at least 4 fields, got {fields}.")
        image_id, attribute_id, present, certainty = (
            parse_int(value, labels_file, line_number, field)
            for value, field in zip(fields[:4], ("image id", "attribute id", "is_present", "certainty id"))
        )
        if attribute_id not in names:
            raise SourceFormatError(f"{labels_file}, line {line_number}: unknown attribute id {attribute_id}.")
        annotations.setdefault(image_id, [])
        if present == 1 and certainty >= min_certainty:
            annotations[image_id].append(names[attribute_id])
    return annotations
