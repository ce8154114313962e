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
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from dataset_builders.registry import REGISTRY, DatasetSpec, get_spec

# How many missing paths an error names before it stops listing.
_MISSING_SHOWN = 5


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


def load_mc_items(
    name: str, data_dir: str | os.PathLike, options_file: str | os.PathLike | None = None
) -> list[MultipleChoiceItem]:
    """Read the multiple-choice items of dataset `name`, each image resolved inside `data_dir`.

    `options_file` defaults to the shipped file of `name` (required for ``"imagefolder"``). Its format is
    ``{class_name: [{"image": relative_path, "options": [names], "groundtruth": class_name}, ...]}``.
    Raises `FileNotFoundError` before anything is scored if any image is missing, with the count and the
    first few paths, so a wrong folder or split never yields a silently wrong accuracy.
    """
    spec = get_dataset(name)
    options_file = Path(options_file) if options_file is not None else shipped_option_file(name)
    with open(options_file, encoding="utf-8") as file:
        classes = json.load(file)
    items = []
    for class_name, entries in classes.items():
        for entry in entries:
            if entry["groundtruth"] not in entry["options"]:
                raise ValueError(f"{options_file}: the options of {entry['image']} lack its class {class_name!r}.")
            items.append(
                MultipleChoiceItem(
                    image=spec.resolve(data_dir, entry["image"]),
                    options=tuple(entry["options"]),
                    groundtruth=entry["groundtruth"],
                    image_id=entry["image"],
                )
            )
    missing = [item.image for item in items if not item.image.is_file()]
    if missing:
        shown = ", ".join(str(path) for path in missing[:_MISSING_SHOWN])
        raise FileNotFoundError(
            f"{len(missing)} of {len(items)} {name} test images are missing under {data_dir} "
            f"(expected layout: {spec.layout}). First missing: {shown}"
        )
    return items
