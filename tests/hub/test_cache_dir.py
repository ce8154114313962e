"""One cache folder for everything hf-finedefics caches: `$HF_FINEDEFICS_CACHE`, else `$HF_HOME/finedefics`."""

from __future__ import annotations

import pytest
from huggingface_hub import constants

from dataset_builders.cache import default_cache_path, finedefics_cache_dir
from hf_finedefics.demo import default_run_dir
from hf_finedefics.testing import create_tiny_checkpoint
from hf_finedefics.world.pretraining import default_cache_dir


@pytest.fixture
def hf_home(tmp_path, monkeypatch):
    """A Hugging Face home of its own (as a Space with persistent storage sets HF_HOME), no HF_FINEDEFICS_CACHE."""
    monkeypatch.delenv("HF_FINEDEFICS_CACHE", raising=False)
    monkeypatch.setattr(constants, "HF_HOME", str(tmp_path / "hf-home"))
    return tmp_path / "hf-home"


def test_every_cache_lives_under_hf_home(hf_home):
    cache = hf_home / "finedefics"
    assert finedefics_cache_dir() == cache
    assert default_cache_path() == cache / "answers.sqlite"
    assert default_cache_dir() == cache
    assert default_run_dir() == cache / "default-run"
    assert create_tiny_checkpoint("idefics2").is_relative_to(cache / "tiny")


def test_hf_finedefics_cache_wins(hf_home, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_FINEDEFICS_CACHE", str(tmp_path / "mine"))
    assert finedefics_cache_dir() == tmp_path / "mine"
    assert default_cache_path() == tmp_path / "mine" / "answers.sqlite"
    assert default_run_dir() == tmp_path / "mine" / "default-run"
