"""Oxford Flowers-102 (`flower-102`): jpg/image_%05d.jpg, imagelabels.mat, setid.mat."""

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
    require_file,
)

SPLITS = ("train", "val", "trainval", "test")
# setid.mat's field(s) per split; trainval (train + val) is the paper's training split.
SETID_FIELDS = {"train": ("trnid",), "val": ("valid",), "trainval": ("trnid", "valid"), "test": ("tstid",)}

# The 102 standard names, in label order (label 1 = pink primrose); the dataset itself ships only numbers.
FLOWER_NAMES = [
    "pink primrose", "hard-leaved pocket orchid", "canterbury bells", "sweet pea", "english marigold",
    "tiger lily", "moon orchid", "bird of paradise", "monkshood", "globe thistle", "snapdragon", "colt's foot",
    "king protea", "spear thistle", "yellow iris", "globe flower", "purple coneflower", "peruvian lily",
    "balloon flower", "giant white arum lily", "fire lily", "pincushion flower", "fritillary", "red ginger",
    "grape hyacinth", "corn poppy", "prince of wales feathers", "stemless gentian", "artichoke", "sweet william",
    "carnation", "garden phlox", "love in the mist", "mexican aster", "alpine sea holly", "ruby-lipped cattleya",
    "cape flower", "great masterwort", "siam tulip", "lenten rose", "barbeton daisy", "daffodil", "sword lily",
    "poinsettia", "bolero deep blue", "wallflower", "marigold", "buttercup", "oxeye daisy", "common dandelion",
    "petunia", "wild pansy", "primula", "sunflower", "pelargonium", "bishop of llandaff", "gaura", "geranium",
    "orange dahlia", "pink and yellow dahlia", "cautleya spicata", "japanese anemone", "black-eyed susan",
    "silverbush", "californian poppy", "osteospermum", "spring crocus", "bearded iris", "windflower", "tree poppy",
    "gazania", "azalea", "water lily", "rose", "thorn apple", "morning glory", "passion flower", "lotus",
    "toad lily", "anthurium", "frangipani", "clematis", "hibiscus", "columbine", "desert-rose", "tree mallow",
    "magnolia", "cyclamen", "watercress", "canna lily", "hippeastrum", "bee balm", "air plant", "foxglove",
    "bougainvillea", "camellia", "mallow", "mexican petunia", "bromelia", "blanket flower", "trumpet creeper",
    "blackberry lily",
]  # fmt: skip


def load_oxford_flowers(
    data_dir: str | Path, split: str, max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
) -> datasets.Dataset:
    check_split("flower-102", split, SPLITS)
    data_dir = Path(data_dir)
    labels_path = require_file(data_dir, "imagelabels.mat")
    setid_path = require_file(data_dir, "setid.mat")
    labels = [int(x) for x in load_mat(labels_path, "labels")["labels"].ravel()]
    fields = load_mat(setid_path, *SETID_FIELDS[split])
    image_numbers = [int(x) for name in SETID_FIELDS[split] for x in fields[name].ravel()]
    records = []
    for number in image_numbers:
        if not 1 <= number <= len(labels):
            raise SourceFormatError(f"{setid_path}: image number {number} has no label in {labels_path}.")
        label = labels[number - 1]
        if not 1 <= label <= len(FLOWER_NAMES):
            raise SourceFormatError(
                f"{labels_path}: label {label} of image {number} is outside 1..{len(FLOWER_NAMES)}."
            )
        records.append(SourceRecord(data_dir / "jpg" / f"image_{number:05d}.jpg", label - 1))
    return build_source_dataset(records, FLOWER_NAMES, "flower", "flower-102", max_image_pixels=max_image_pixels)
