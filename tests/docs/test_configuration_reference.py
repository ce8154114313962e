"""docs/configuration.md is generated from the code: the committed file must be what the generator writes now."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

GENERATOR = Path(__file__).resolve().parents[2] / "docs" / "generate_config_reference.py"


@pytest.fixture(scope="module")
def generator():
    spec = importlib.util.spec_from_file_location("generate_config_reference", GENERATOR)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_reference_is_up_to_date(generator):
    committed = generator.OUTPUT.read_text(encoding="utf-8")
    assert committed == generator.render(), "run `python docs/generate_config_reference.py` and commit the result"
