"""Stanford Cars (`car-196`): cars_train/, cars_test/, devkit/cars_meta.mat, devkit/cars_train_annos.mat and
cars_test_annos_withlabels.mat (at the root or in devkit/).

Train and test images share file names (00001.jpg exists in both folders), so every path is built from
the folder of its own split: the annotation file of one split never points into the other's folder.
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
    load_mat,
    matlab_strings,
    require_file,
)

SPLITS = ("train", "test")
IMAGE_FOLDERS = {"train": "cars_train", "test": "cars_test"}
ANNOTATION_FILES = {
    "train": ("devkit/cars_train_annos.mat", "cars_train_annos.mat"),
    "test": ("cars_test_annos_withlabels.mat", "devkit/cars_test_annos_withlabels.mat"),
}


def load_stanford_cars(
    data_dir: str | Path, split: str, max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
) -> datasets.Dataset:
    check_split("car-196", split, SPLITS)
    data_dir = Path(data_dir)
    meta_path = require_file(data_dir, "devkit/cars_meta.mat", "cars_meta.mat")
    class_names = matlab_strings(load_mat(meta_path, "class_names")["class_names"])
    annotations_path = require_file(data_dir, *ANNOTATION_FILES[split])
    annotations = load_mat(annotations_path, "annotations")["annotations"]
    image_folder = data_dir / IMAGE_FOLDERS[split]
    if not image_folder.is_dir():
        raise SourceFormatError(f"Missing image folder {image_folder} for the {split!r} split of car-196.")
    records = []
    for position, annotation in enumerate(annotations.ravel() if hasattr(annotations, "ravel") else [annotations]):
        if not hasattr(annotation, "fname") or not hasattr(annotation, "class"):
            raise SourceFormatError(
                f"{annotations_path}: annotation {position} lacks 'fname' or 'class' "
                "(the test split needs cars_test_annos_withlabels.mat, not cars_test_annos.mat)."
            )
        label = int(getattr(annotation, "class"))
        if not 1 <= label <= len(class_names):
            raise SourceFormatError(
                f"{annotations_path}: annotation {position} has class {label}, outside 1..{len(class_names)}."
            )
        records.append(SourceRecord(image_folder / Path(str(annotation.fname)).name, label - 1))
    return build_source_dataset(records, class_names, "car", "car-196", max_image_pixels=max_image_pixels)
