"""Any folder of class sub-folders: <data_dir>/<split>/<class>/<image> or, without split folders,
<data_dir>/<class>/<image> (then every split name reads the same images)."""

from __future__ import annotations

from pathlib import Path

import datasets

from ..registry import DEFAULT_MAX_IMAGE_PIXELS
from ._common import SourceFormatError, SourceRecord, build_source_dataset, human_readable

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def load_image_folder(
    data_dir: str | Path, split: str, superclass: str = "object", max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
) -> datasets.Dataset:
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise SourceFormatError(f"Image folder {data_dir} does not exist.")
    root = data_dir / split if (data_dir / split).is_dir() else data_dir
    class_dirs = sorted(path for path in root.iterdir() if path.is_dir() and not path.name.startswith("."))
    if not class_dirs:
        raise SourceFormatError(f"Image folder {root} has no class sub-folders.")
    class_names = [human_readable(path.name) for path in class_dirs]
    records = [
        SourceRecord(image, label)
        for label, class_dir in enumerate(class_dirs)
        for image in sorted(class_dir.rglob("*"))
        if image.suffix.lower() in IMAGE_SUFFIXES
    ]
    return build_source_dataset(
        records, class_names, superclass, f"imagefolder:{data_dir}", max_image_pixels=max_image_pixels
    )
