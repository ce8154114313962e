"""The model card is built with huggingface_hub's `ModelCard` / `ModelCardData`: a license, the evaluation as
model-index results, TRL's tags and the framework versions the adapter was trained with."""

from __future__ import annotations

import json

import huggingface_hub
import pytest
from huggingface_hub import ModelCard

from hf_finedefics.cli import main as cli
from hf_finedefics.evaluation.report import build_report, summarize_results
from hf_finedefics.hub import TRAINING_SUMMARY_NAME

from .conftest import publish_to_local_cache
from .test_push_adapter import BASE_REPO_ID, REPO_ID, _result, adapter_dir, tiny_base  # noqa: F401 (fixtures)

PUSH = ["push-adapter", "--repo-id", REPO_ID, "--model_name_or_path", BASE_REPO_ID]


@pytest.fixture
def two_model_report(tmp_path):
    """A report.json of two models: 3 of 4 right for finedefics-tiny on bird-200, 1 of 4 for the zero-shot base."""
    right = [_result("Pug", 0, 0), _result("Boxer", 1, 1), _result("Akita", 3, 3), _result("Pug", 0, None)]
    wrong = [_result("Pug", 0, 1), _result("Boxer", 1, 0), _result("Akita", 3, 3), _result("Pug", 0, None)]
    summaries = {
        "finedefics-tiny": {"generation": {"bird-200": summarize_results(right)}},
        "zero-shot": {"generation": {"bird-200": summarize_results(wrong)}},
    }
    path = tmp_path / "report.json"
    path.write_text(json.dumps(build_report(summaries)[0]))
    return path


def test_card_metadata_has_license_results_and_versions(adapter_dir, two_model_report, fake_hub):  # noqa: F811
    summary = json.loads((adapter_dir / TRAINING_SUMMARY_NAME).read_text())
    summary["framework_versions"]["PEFT"] = "0.0.1-as-trained"
    (adapter_dir / TRAINING_SUMMARY_NAME).write_text(json.dumps(summary))

    cli([*PUSH, "--adapter", str(adapter_dir), "--license", "apache-2.0", "--eval_report", str(two_model_report),
         "--eval_model", "finedefics-tiny"])  # fmt: skip

    # parsed back from the uploaded bytes, as the Hub reads them
    card = ModelCard(fake_hub.uploads[0].contents["README.md"].decode())
    assert card.data.license == "apache-2.0"
    (result,) = card.data.eval_results
    assert (result.dataset_type, result.dataset_name, result.metric_type) == ("bird-200", "Bird-200", "accuracy")
    assert result.metric_value == 75.0 and result.metric_name == "Accuracy (generation)"
    assert "generated_from_trainer" in card.data.tags and "sft" not in card.data.tags  # stage I is no SFT
    assert "- PEFT: 0.0.1-as-trained" in card.text  # the versions it was trained with, not today's
    assert "| finedefics-tiny | generation | 75.00 | 75.00 |" in card.text  # the table keeps every model


def test_a_report_of_several_models_needs_the_model_named(adapter_dir, two_model_report, fake_hub):  # noqa: F811
    cli([*PUSH, "--adapter", str(adapter_dir), "--eval_report", str(two_model_report)])
    card = fake_hub.uploads[0].card()
    assert card.data.eval_results is None
    assert "| zero-shot | generation | 25.00 | 25.00 |" in card.text


def test_license_defaults_to_the_cached_base_models(adapter_dir, fake_hub, tmp_path, monkeypatch):  # noqa: F811
    base = tmp_path / "base-card"
    base.mkdir()
    (base / "README.md").write_text("---\nlicense: apache-2.0\n---\n# Tiny base\n")
    cache = tmp_path / "hub-cache"
    publish_to_local_cache(cache, BASE_REPO_ID, base, {"README.md"})
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))

    cli([*PUSH, "--adapter", str(adapter_dir)])

    assert fake_hub.uploads[0].card().data.license == "apache-2.0"
