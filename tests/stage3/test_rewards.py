"""Every stage III reward against the table of answers and rewards in its docstring, for plain-text and for
conversational completions (the two forms TRL passes)."""

from __future__ import annotations

import re

import pytest

from hf_finedefics.evaluation.open_set import load_similarity_model
from hf_finedefics.rewards import (
    OpenSetSimilarityReward,
    completion_text,
    format_reward,
    multiple_choice_reward,
    open_set_reward,
)

DOGS = ["Papillon", "Maltese dog", "Japanese spaniel", "Chihuahua"]
_ROW = re.compile(r"^\s*\| `(.*)` +\| (\S+) +\|$")


def docstring_table(reward) -> list[tuple[str, float]]:
    """(completion, reward) rows of the table in `reward`'s docstring."""
    rows = [_ROW.match(line) for line in reward.__doc__.splitlines()]
    table = [(match.group(1), float(match.group(2))) for match in rows if match]
    assert len(table) >= 3, f"no table in the docstring of {reward}"
    return table


def both_forms(texts: list[str]) -> list[list]:
    """The completions as plain strings and as TRL's conversational completions."""
    return [texts, [[{"role": "assistant", "content": text}] for text in texts]]


@pytest.mark.parametrize("conversational", [False, True])
def test_multiple_choice_reward_table(conversational):
    texts, expected = zip(*docstring_table(multiple_choice_reward))
    completions = both_forms(list(texts))[conversational]
    n = len(texts)
    rewards = multiple_choice_reward([None] * n, completions, options=[DOGS] * n, answer=["D"] * n)
    assert rewards == list(expected)


@pytest.mark.parametrize("conversational", [False, True])
def test_open_set_reward_table(conversational):
    texts, expected = zip(*docstring_table(open_set_reward))
    completions = both_forms(list(texts))[conversational]
    n = len(texts)
    rewards = open_set_reward(
        [None] * n, completions, category=["Japanese spaniel"] * n, options=[DOGS] * n, contains_reward=0.5
    )
    assert rewards == list(expected)


@pytest.mark.parametrize("conversational", [False, True])
def test_format_reward_table(conversational):
    texts, expected = zip(*docstring_table(format_reward))
    assert format_reward([None] * len(texts), both_forms(list(texts))[conversational]) == list(expected)


def test_open_set_similarity_reward_table():
    reward = OpenSetSimilarityReward(load_similarity_model())
    texts, expected = zip(*docstring_table(OpenSetSimilarityReward))
    rewards = reward([None] * len(texts), list(texts), category=["Japanese_spaniel"] * len(texts))
    assert rewards == pytest.approx(list(expected), abs=1e-3)
    # A near miss earns partial credit, more than an unrelated answer.
    near, far = reward([None] * 2, ["Japanese chin", "Boeing 737"], category=["Japanese_spaniel"] * 2)
    assert 0.0 < far < near < 1.0


def test_each_task_reward_skips_the_other_task():
    """A row of the other task gets None (TRL leaves it out of the sum), not 0."""
    tasks = ["multiple_choice", "open_set"]
    completions = ["D", "Chihuahua"]
    columns = {"options": [DOGS, DOGS], "answer": ["D", None], "category": ["Chihuahua", "Chihuahua"], "task": tasks}
    assert multiple_choice_reward([None] * 2, completions, **columns) == [1.0, None]
    assert open_set_reward([None] * 2, completions, **columns) == [None, 1.0]
    similarity = OpenSetSimilarityReward(load_similarity_model())([None] * 2, completions, **columns)
    assert similarity[0] is None and similarity[1] == pytest.approx(1.0, abs=1e-3)


def test_completion_text_reads_content_parts():
    assert completion_text([{"role": "assistant", "content": [{"type": "text", "text": "D."}]}]) == "D."
