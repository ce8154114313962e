"""The `rl` config of a built dataset folder: stage III prompts beside `triples` and `instructions`."""

from __future__ import annotations

from collections import Counter

import pytest
from datasets import load_dataset
from trl.data_utils import prepare_multimodal_messages

from dataset_builders.build_config import BuildConfig
from dataset_builders.prompts import OPTION_LETTERS, multiple_choice_prompt, open_set_prompt
from dataset_builders.rl import build_rl_prompts
from tests.stage3.conftest import SYNTHETIC


def test_rl_config_round_trips_through_load_dataset(dataset_folder):
    triples = load_dataset(str(dataset_folder), "triples", split="train")
    rl = load_dataset(str(dataset_folder), "rl", split="train")
    assert rl.num_rows == 2 * triples.num_rows
    assert Counter(rl["task"]) == {"multiple_choice": triples.num_rows, "open_set": triples.num_rows}
    for row in rl.select(range(6)):
        options = row["options"]
        assert len(set(options)) == 4
        assert row["category"] in options and OPTION_LETTERS[options.index(row["category"])] == row["answer"]
        assert row["option_letters"] == ["A", "B", "C", "D"]
        expected = (
            multiple_choice_prompt(options, row["superclass"])
            if row["task"] == "multiple_choice"
            else open_set_prompt(row["superclass"])
        )
        (user,) = row["prompt"]
        assert user["role"] == "user" and user["content"][1] == {"type": "text", "text": expected}
        # The prompt is what GRPOTrainer reads: its image placeholder takes the row's image.
        (filled,) = prepare_multimodal_messages(row["prompt"], row["images"])
        assert filled["content"][0]["image"].size == row["images"][0].size


def test_rl_options_are_shuffled_per_row_and_few_shot_keeps_k_per_class(dataset_folder):
    triples = load_dataset(str(dataset_folder), "triples", split="train")
    full = build_rl_prompts(triples, seed=3)
    few = build_rl_prompts(triples, seed=3, examples_per_class=2)
    assert few.num_rows == 2 * 2 * SYNTHETIC.num_categories
    assert set(Counter(few["category"]).values()) == {4}  # two images x two tasks per class
    # A row keeps its options whichever other rows are kept; the seed changes them.
    options_of = {(row["category"], tuple(row["options"])) for row in full.select_columns(["category", "options"])}
    assert all((c, tuple(o)) in options_of for c, o in zip(few["category"], few["options"]))
    assert build_rl_prompts(triples, seed=4)["options"] != full["options"]
    assert len({row[0] for row in full["options"]}) > 1  # the true name is not always first


def test_rl_examples_per_class_must_be_positive():
    with pytest.raises(ValueError, match="rl_examples_per_class"):
        BuildConfig(sources=["bird-200"], output_dir="out", negatives="random", rl_examples_per_class=0)
