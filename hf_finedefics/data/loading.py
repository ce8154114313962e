"""Open a dataset split given as a Hub id, a local dataset folder (`load_dataset`) or a `save_to_disk` folder."""

from __future__ import annotations

import os
from pathlib import Path

from datasets import Dataset, DatasetDict, load_dataset, load_from_disk


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
                raise KeyError(f"{path} has splits {sorted(loaded)}, not {split!r}.")
            return loaded[split]
        return loaded
    return load_dataset(str(name_or_path), config, split=split)
