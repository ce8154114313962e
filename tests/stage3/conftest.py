from __future__ import annotations

import pytest

from dataset_builders.build import build_synthetic_dataset
from dataset_builders.sources.synthetic import SyntheticFGVRConfig

SYNTHETIC = SyntheticFGVRConfig(num_categories=6, train_per_category=3, test_per_category=1)


@pytest.fixture(scope="session")
def dataset_folder(tmp_path_factory):
    """A built dataset folder (synthetic), with its `triples`, `instructions` and `rl` configs."""
    root = tmp_path_factory.mktemp("stage3-data")
    return build_synthetic_dataset(SYNTHETIC, root / "data", root / "source")
