import json

import pytest
from transformers import AutoModelForImageTextToText, AutoProcessor

from hf_finedefics.evaluation import (
    LikelihoodScorer,
    build_report,
    evaluate_model,
    load_mc_items,
    score_items,
    summarize_results,
)
from hf_finedefics.testing import create_tiny_checkpoint


class CountingScorer:
    """Wraps a scorer, counting the questions it scores and raising after `fail_after` batches."""

    def __init__(self, scorer, fail_after: int | None = None):
        self.scorer, self.fail_after = scorer, fail_after
        self.processor, self.chat = scorer.processor, scorer.chat
        self.batches = self.questions = 0

    def score(self, images, chats, options):
        if self.fail_after is not None and self.batches == self.fail_after:
            raise KeyboardInterrupt
        self.batches += 1
        self.questions += len(images)
        return self.scorer.score(images, chats, options)


@pytest.fixture(scope="module")
def scorer():
    path = create_tiny_checkpoint("llava")
    model = AutoModelForImageTextToText.from_pretrained(path).eval()
    return LikelihoodScorer(model, AutoProcessor.from_pretrained(path))


def test_interrupted_run_resumes_without_rescoring(scorer, native_dataset, tmp_path):
    root, options_file = native_dataset("flower-102")
    items = load_mc_items("flower-102", root, options_file)
    reference = score_items(scorer, items, tmp_path / "reference.jsonl", superclass="flower", batch_size=4)

    results_path = tmp_path / "resumed.jsonl"
    with pytest.raises(KeyboardInterrupt):
        score_items(CountingScorer(scorer, fail_after=1), items, results_path, superclass="flower", batch_size=4)
    assert len(results_path.read_text().splitlines()) == 4
    # A line cut short by the interruption is dropped and its item scored again.
    with open(results_path, "a") as file:
        file.write('{"image": "images/image_0')
    resumed = CountingScorer(scorer)
    results = score_items(resumed, items, results_path, superclass="flower", batch_size=4)
    assert resumed.questions == len(items) - 4
    assert results == reference
    assert len(results_path.read_text().splitlines()) == len(items)

    finished = CountingScorer(scorer)
    assert score_items(finished, items, results_path, superclass="flower", batch_size=4) == reference
    assert finished.questions == 0


def test_cache_from_another_seed_is_refused(scorer, native_dataset, tmp_path):
    root, options_file = native_dataset("pet-37")
    items = load_mc_items("pet-37", root, options_file)
    score_items(scorer, items, tmp_path / "results.jsonl", superclass="pet", seed=0)
    with pytest.raises(ValueError, match="another seed"):
        score_items(scorer, items, tmp_path / "results.jsonl", superclass="pet", seed=1)


def _result(groundtruth, answer, prediction):
    return {"groundtruth": groundtruth, "options": ["w", "x", "y", "z"], "answer": answer, "prediction": prediction}


def test_summary_counts():
    results = [
        _result("Pug", 0, 0),
        _result("Pug", 1, 2),
        _result("Boxer", 3, 3),
        _result("Boxer", 2, None),
    ]
    summary = summarize_results(results)
    assert summary["num_items"] == 4
    assert summary["accuracy"] == 50.0
    assert summary["failure_rate"] == 25.0
    assert summary["per_class_accuracy"] == {"Boxer": 50.0, "Pug": 50.0}
    assert summary["predicted_positions"] == {"A": 25.0, "B": 0.0, "C": 25.0, "D": 25.0, "none": 25.0}
    assert summary["groundtruth_positions"] == {"A": 25.0, "B": 25.0, "C": 25.0, "D": 25.0}


def test_report_table_and_average():
    def summary(accuracy):
        return summarize_results([_result("Pug", 0, 0)] * accuracy + [_result("Pug", 0, 1)] * (100 - accuracy))

    summaries = {
        "finedefics": {
            "generation": {"car-196": summary(80), "dog-120": summary(70)},
            "likelihood": {"car-196": summary(90), "dog-120": summary(60)},
        },
        "idefics2": {"generation": {"car-196": summary(40)}},
    }
    report, markdown = build_report(summaries)
    assert report["datasets"] == ["dog-120", "car-196"]  # the paper's column order
    averages = {(row["model"], row["scorer"]): row["average_accuracy"] for row in report["rows"]}
    assert averages == {
        ("finedefics", "generation"): 75.0,
        ("finedefics", "likelihood"): 75.0,
        ("idefics2", "generation"): None,
    }
    assert "| Model | Scorer | Dog-120 | Car-196 | Avg. |" in markdown
    assert "| finedefics | generation | 70.00 | 80.00 | 75.00 |" in markdown
    assert "| idefics2 | generation | – | 40.00 | – |" in markdown
    # Before those details, Table 2's shape: per scorer, one row per model and one column per dataset.
    wide, details = markdown.split("## Every scorer and open-set measure")
    generation, likelihood = wide.split("## Multiple-choice accuracy (%), generation scorer")[1].split(
        "## Multiple-choice accuracy (%), likelihood scorer"
    )
    header = "| Model | Dog-120 | Car-196 | Avg. |"
    assert [line for line in generation.splitlines() if line.startswith("| ")] == [
        header,
        "| finedefics | 70.00 | 80.00 | 75.00 |",
        "| idefics2 | – | 40.00 | – |",
    ]
    assert [line for line in likelihood.splitlines() if line.startswith("| ")] == [
        header,
        "| finedefics | 60.00 | 90.00 | 75.00 |",
    ]
    assert "| Model | Scorer |" in details
    assert "side by side" not in markdown  # one protocol only
    assert json.loads(json.dumps(report)) == report


def test_model_name_with_a_path_separator_is_refused(scorer, tmp_path):
    with pytest.raises(ValueError, match="path separator"):
        evaluate_model(scorer.model, scorer.processor, {}, tmp_path, model_name="HuggingFaceM4/idefics2-8b")
