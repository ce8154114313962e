"""Open a dataset split given as a Hub id, a local dataset folder (`load_dataset`) or a `save_to_disk` folder."""

from __future__ import annotations

import os
from pathlib import Path

from datasets import ClassLabel, Dataset, DatasetDict, load_dataset, load_from_disk


def check_parquet_files(folder: str | os.PathLike) -> None:
    """Refuse a folder with a parquet file that cannot be read (a copy or a download cut short), naming the file:
    `datasets` fails on it with pyarrow's message alone, once it has loaded the others."""
    import pyarrow.parquet as pq

    for path in sorted(Path(folder).rglob("*.parquet")):
        try:
            pq.read_metadata(path)
        except (OSError, ValueError) as error:  # pyarrow's ArrowInvalid is a ValueError
            raise ValueError(f"{path} is not a readable parquet file ({error}); rebuild or copy it again.") from None


def load_dataset_split(name_or_path: str | os.PathLike, config: str | None = None, split: str = "train") -> Dataset:
    """One split of a dataset. A `save_to_disk` folder is recognised by its `state.json` / `dataset_dict.json`;
    a saved `DatasetDict` of configs may also hold the config as a sub-folder (`<folder>/<config>`)."""
    path = Path(name_or_path)
    if config is not None and (path / config).is_dir() and not (path / "dataset_dict.json").is_file():
        path = path / config
    if (path / "state.json").is_file() or (path / "dataset_dict.json").is_file():
        loaded = load_from_disk(str(path))
        if isinstance(loaded, DatasetDict):
            if split not in loaded:
                raise ValueError(f"{path} has splits {sorted(loaded)}, not {split!r}.")
            return loaded[split]
        return loaded
    if path.is_dir():
        check_parquet_files(path / config if config is not None and (path / config).is_dir() else path)
    return load_dataset(str(name_or_path), config, split=split)


def with_class_labels(name: str, *splits: Dataset) -> list[Dataset]:
    """`splits` of dataset `name` with a ClassLabel `label` column, as the analyses read them: their own when all
    have one, else one encoded from the `category` column over the classes of every split (an image folder with a
    metadata file, such as a run's `source/` folder, reads with `category` and no `label`)."""
    if all(isinstance(split.features.get("label"), ClassLabel) for split in splits):
        return list(splits)
    for split in splits:
        if "category" not in split.column_names:
            raise ValueError(
                f"{name} has no ClassLabel `label` column and no `category` column to make one from "
                f"(columns: {', '.join(split.column_names)})."
            )
    names = sorted({category for split in splits for category in split["category"]})
    index = {category: label for label, category in enumerate(names)}
    return [
        split.remove_columns([c for c in ("label",) if c in split.column_names])
        .add_column("label", [index[category] for category in split["category"]])
        .cast_column("label", ClassLabel(names=names))
        for split in splits
    ]
