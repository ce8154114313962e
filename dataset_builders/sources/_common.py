"""Shared pieces of the source readers: metadata checks, `.mat` loading, and the final `datasets.Dataset`."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
from PIL import Image

from ..registry import DEFAULT_MAX_IMAGE_PIXELS

logger = logging.getLogger(__name__)


class SourceFormatError(ValueError):
    """A metadata file of a source dataset is missing, unreadable or does not say what its format promises."""


@dataclass(frozen=True)
class SourceRecord:
    """One image of a source dataset before it becomes a `datasets` row."""

    path: Path
    label: int


def require_file(data_dir: Path, *candidates: str) -> Path:
    """Return the first existing `data_dir / candidate`, or fail naming what was looked for."""
    for candidate in candidates:
        path = data_dir / candidate
        if path.is_file():
            return path
    tried = ", ".join(str(data_dir / c) for c in candidates)
    raise SourceFormatError(f"Missing metadata file: {tried} does not exist.")


def read_lines(path: Path) -> list[list[str]]:
    """Non-empty lines of a whitespace-separated text file, each split once per field."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise SourceFormatError(f"Cannot read metadata file {path}: {error}") from error
    return [line.split() for line in text.splitlines() if line.strip()]


def parse_int(value: str, path: Path, line_number: int, field: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise SourceFormatError(f"{path}, line {line_number}: {field} must be an integer, got {value!r}.") from None


def load_mat(path: Path, *keys: str) -> dict[str, np.ndarray]:
    """Load `keys` from a MATLAB file (scipy), failing with the file and the missing key."""
    import scipy.io

    try:
        content = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)
    except (OSError, ValueError, TypeError) as error:
        raise SourceFormatError(f"Cannot read MATLAB file {path}: {error}") from error
    missing = [key for key in keys if key not in content]
    if missing:
        raise SourceFormatError(f"MATLAB file {path} lacks the field(s) {missing}; found {sorted(content)}.")
    return {key: content[key] for key in keys}


def matlab_strings(array: np.ndarray) -> list[str]:
    """A MATLAB cell array of strings (possibly nested one level deeper) as a flat list of str."""
    return [str(item.item() if isinstance(item, np.ndarray) and item.size == 1 else item) for item in np.ravel(array)]


def human_readable(name: str) -> str:
    """Category names as people write them: "001.Black_footed_Albatross" -> "Black footed Albatross"."""
    name = re.sub(r"^\d+\.", "", name.strip())
    return re.sub(r"\s+", " ", name.replace("_", " ")).strip()


def check_split(name: str, split: str, available: Iterable[str]) -> None:
    available = list(available)
    if split not in available:
        raise ValueError(f"Source {name!r} has no split {split!r}; choose from {available}.")


def image_problem(path: Path, max_pixels: int) -> str | None:
    """Why `path` cannot be used, or None: "unreadable" (not an image, truncated, corrupt) or its size "WxH" when
    its header declares more than `max_pixels` pixels (checked before decoding, which could take gigabytes).
    Decoding the rest catches truncated files that `verify()` lets through."""
    try:
        with Image.open(path) as image:
            if image.width * image.height > max_pixels:
                return f"{image.width}x{image.height}"
            image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return "unreadable"
    return None


def build_source_dataset(
    records: list[SourceRecord],
    class_names: list[str],
    superclass: str,
    source_name: str,
    extra_columns: dict[str, tuple[datasets.Value, list]] | None = None,
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
) -> datasets.Dataset:
    """Turn records into the common source schema, dropping (and counting) unreadable images and images over
    `max_image_pixels`; classes left without any image are named in the warning.

    `extra_columns` maps a column name to its feature and one value per record (kept aligned with the records).
    """
    if not records:
        raise SourceFormatError(f"Source {source_name!r} listed no images for this split.")
    for record in records:
        if not 0 <= record.label < len(class_names):
            raise SourceFormatError(
                f"{source_name}: image {record.path} has label {record.label}, outside 0..{len(class_names) - 1}."
            )
    problems = [image_problem(record.path, max_image_pixels) for record in records]
    readable = [problem is None for problem in problems]
    if not all(readable):
        unreadable = [record.path for record, problem in zip(records, problems) if problem == "unreadable"]
        too_large = [
            (record.path, problem) for record, problem in zip(records, problems) if problem not in (None, "unreadable")
        ]
        parts = [f"{len(unreadable)} unreadable (first: {unreadable[0]})"] if unreadable else []
        if too_large:
            budget = f"{max_image_pixels / 1e6:g} MP"
            parts.append(
                f"{len(too_large)} over the {budget} pixel budget (first: {too_large[0][0]}, {too_large[0][1]})"
            )
        logger.warning(
            "%s: skipped %d of %d images: %s.", source_name, readable.count(False), len(records), "; ".join(parts)
        )
        emptied = sorted(
            {class_names[record.label] for record in records}
            - {class_names[record.label] for record, ok in zip(records, readable) if ok}
        )
        if emptied:
            logger.warning(
                "%s: %d class(es) have no readable image left: %s.", source_name, len(emptied), ", ".join(emptied)
            )
    if not any(readable):
        raise SourceFormatError(f"Source {source_name!r}: none of its {len(records)} images could be used.")
    kept = [record for record, ok in zip(records, readable) if ok]
    features = {
        "image": datasets.Image(),
        "label": datasets.ClassLabel(names=class_names),
        "category": datasets.Value("string"),
        "superclass": datasets.Value("string"),
    }
    columns = {
        "image": [os.fspath(record.path) for record in kept],
        "label": [record.label for record in kept],
        "category": [class_names[record.label] for record in kept],
        "superclass": [superclass] * len(kept),
    }
    for name, (feature, values) in (extra_columns or {}).items():
        features[name] = feature
        columns[name] = [value for value, ok in zip(values, readable) if ok]
    return datasets.Dataset.from_dict(columns, features=datasets.Features(features))
