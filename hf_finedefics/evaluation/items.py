"""Multiple-choice test items: the shipped option files mapped onto each dataset's native layout.

The option files (see `hf_finedefics/data/mc_options/README.md`) name every test image by a path of the
form ``images/<file>`` whatever the dataset. Users keep the datasets as their authors distribute them, so
each dataset says where that path lives in its own layout and test split. Stanford Cars is the trap: its
train and test folders hold files of the same names, and ``images/00001.jpg`` means ``cars_test/00001.jpg``.
"""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from dataset_builders.registry import REGISTRY, DatasetSpec, get_spec

# How many missing paths an error names before it stops listing.
_MISSING_SHOWN = 5
# The option file a data folder may carry for its test split (the embedded default's generated world writes one).
FOLDER_OPTION_FILE = "options_test.json"


# Every dataset's option file and test layout come from the registry.
MultipleChoiceDataset = DatasetSpec
DATASETS = REGISTRY
get_dataset = get_spec


@dataclass(frozen=True)
class MultipleChoiceItem:
    """One test image with its candidate class names (in option-file order) and its true class."""

    image: Path
    options: tuple[str, ...]
    groundtruth: str
    image_id: str  # the path as the option file writes it: a stable key for caching and reports

    def shuffled_options(self, seed: int) -> list[str]:
        """The options in the order shown to the model. Seeded per image, so the order of an item does not
        depend on which other items are evaluated (the original shuffle was unseeded)."""
        options = list(self.options)
        random.Random(f"{seed}/{self.image_id}").shuffle(options)
        return options


def shipped_option_file(name: str) -> Path:
    """The option file of `name` shipped in the package."""
    spec = get_dataset(name)
    if spec.option_file is None:
        raise ValueError(f"{name!r} has no shipped option file; pass one (see `build_option_file`).")
    return Path(str(resources.files("hf_finedefics") / "data" / "mc_options" / spec.option_file))


def read_option_file(path: str | os.PathLike) -> list[dict]:
    """The entries of an option file, checked: every problem names the file, and the entry where it applies.

    All items must have the same number of options: accuracies of 3- and 4-way questions are not comparable,
    so a file mixing them is refused rather than silently averaged.
    """
    try:
        classes = json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"Option file {path} is not valid JSON: {error}") from error
    if not isinstance(classes, dict) or not classes:
        raise ValueError(
            f"Option file {path} must map each class name to a list of "
            '{"image": path, "options": [class names], "groundtruth": class name} entries; '
            f"got {type(classes).__name__} {str(classes)[:100]}."
        )
    entries = []
    for class_name, class_entries in classes.items():
        if not isinstance(class_entries, list):
            raise ValueError(f"Option file {path}: the entries of class {class_name!r} must be a list.")
        for index, entry in enumerate(class_entries):
            where = f"Option file {path}: entry {index} of class {class_name!r}"
            if not isinstance(entry, dict):
                raise ValueError(f"{where} must be an object with image, options and groundtruth, got {entry!r}.")
            for key in ("image", "options", "groundtruth"):
                if key not in entry:
                    raise ValueError(f"{where} has no {key!r}.")
            if not isinstance(entry["image"], str):
                raise ValueError(f"{where}: 'image' must be a path relative to the dataset, got {entry['image']!r}.")
            if not isinstance(entry["options"], list) or not all(isinstance(o, str) for o in entry["options"]):
                raise ValueError(f"{where}: 'options' must be a list of class names, got {entry['options']!r}.")
            if len(set(entry["options"])) != len(entry["options"]):  # a question whose choices are one name
                raise ValueError(f"{where}: the options of {entry['image']} repeat a class: {entry['options']}.")
            if entry["groundtruth"] not in entry["options"]:
                raise ValueError(f"{where}: the options of {entry['image']} lack its class {entry['groundtruth']!r}.")
            entries.append(entry)
    sizes = Counter(len(entry["options"]) for entry in entries)
    if len(sizes) > 1:
        first = len(entries[0]["options"])
        odd = next(entry for entry in entries if len(entry["options"]) != first)
        counts = ", ".join(f"{size}-way: {count}" for size, count in sorted(sizes.items()))
        raise ValueError(
            f"Option file {path} mixes items of different sizes ({counts}), e.g. {odd['image']} has "
            f"{len(odd['options'])} options where {entries[0]['image']} has {first} options: "
            "n-way accuracies are only comparable for one n."
        )
    return entries


def default_option_file(name: str, data_dir: str | os.PathLike) -> Path | None:
    """The option file `name` is evaluated with when none is given: the shipped one, else the folder's own
    `options_test.json` (as `finedefics run` writes into `<run>/source/`), else None."""
    if get_dataset(name).option_file is not None:
        return shipped_option_file(name)
    carried = Path(data_dir) / FOLDER_OPTION_FILE
    return carried if carried.is_file() else None


def load_mc_items(
    name: str, data_dir: str | os.PathLike, options_file: str | os.PathLike | None = None
) -> list[MultipleChoiceItem]:
    """Read the multiple-choice items of dataset `name`, each image resolved inside `data_dir`.

    `options_file` defaults to `default_option_file` (the shipped file of `name`, else the folder's
    ``options_test.json``). Its format is
    ``{class_name: [{"image": relative_path, "options": [names], "groundtruth": class_name}, ...]}``.
    Raises `FileNotFoundError` before anything is scored if any image is missing, with the count and the
    first few paths, so a wrong folder or split never yields a silently wrong accuracy.
    """
    spec = get_dataset(name)
    if options_file is None and (options_file := default_option_file(name, data_dir)) is None:
        raise ValueError(
            f"{name!r} has no shipped option file and {Path(data_dir) / FOLDER_OPTION_FILE} does not exist: pass "
            f"one (--options_files {name}=PATH) or build one (--clip_model, `build_option_file`)."
        )
    options_file = Path(options_file)
    items = [
        MultipleChoiceItem(
            image=spec.resolve(data_dir, entry["image"]),
            options=tuple(entry["options"]),
            groundtruth=entry["groundtruth"],
            image_id=entry["image"],
        )
        for entry in read_option_file(options_file)
    ]
    missing = [item.image for item in items if not item.image.is_file()]
    if missing:
        shown = ", ".join(str(path) for path in missing[:_MISSING_SHOWN])
        raise FileNotFoundError(
            f"{len(missing)} of {len(items)} {name} test images are missing under {data_dir} "
            f"(expected layout: {spec.layout}). First missing: {shown}"
        )
    return items
