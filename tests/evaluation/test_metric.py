import evaluate
import pytest

from hf_finedefics.metrics import FGVR_MULTIPLE_CHOICE

OPTIONS = [["Chihuahua", "Japanese_spaniel", "Maltese_dog", "toy_terrier"]] * 4


def test_metric_loads_offline_by_path_and_parses_answers(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    metric = evaluate.load(FGVR_MULTIPLE_CHOICE)
    result = metric.compute(
        predictions=["B", "D. toy terrier", "It is a Maltese dog.", "Chihuahua-like, not sure"],
        references=[1, 2, 2, 1],
        options=OPTIONS,
    )
    # B right; D wrong; named option right; names option A (Chihuahua) -> wrong, not a failure.
    assert result == {"accuracy": 0.5, "failure_rate": 0.0}


def test_metric_counts_unreadable_answers_as_failures():
    metric = evaluate.load(FGVR_MULTIPLE_CHOICE)
    result = metric.compute(predictions=["I don't know", "(A)"], references=[0, 0], options=OPTIONS[:2])
    assert result == {"accuracy": 0.5, "failure_rate": 0.5}
    with pytest.raises(ValueError, match="options for 1 questions"):
        metric.compute(predictions=["A", "B"], references=[0, 1], options=OPTIONS[:1])
