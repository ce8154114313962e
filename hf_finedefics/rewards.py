"""Rewards of stage III, reinforcement fine-tuning with TRL's `GRPOTrainer`.

Every reward has TRL's signature `reward(prompts, completions, **columns) -> list[float | None]`: `columns` are the
`rl` dataset's columns (`task`, `category`, `options`, `answer`, ...), one value per completion. A completion is a
string (plain-text prompts) or a list of message dicts (conversational prompts, the `rl` data). A reward returns
None for the rows it does not judge (the multiple-choice reward on open-set rows and vice versa): TRL then leaves
it out of that row's weighted sum instead of counting it as 0.

When the answer is written as `<think>...</think><answer>...</answer>`, the accuracy rewards read the `<answer>`
part only; `format_reward` rewards that shape itself.
"""

from __future__ import annotations

import re
from typing import Any

from dataset_builders.prompts import OPTION_LETTERS

from .chat import display_class_name
from .evaluation.open_set import normalize_answer, score_open_set
from .evaluation.parsing import parse_choice

Completion = str | list[dict[str, Any]]

FORMAT_INSTRUCTION = (
    "First think about the distinguishing features inside <think> </think> tags, then give the final answer inside "
    "<answer> </answer> tags."
)
_THINK_ANSWER = re.compile(r"\s*<think>(.*?)</think>\s*<answer>(.*?)</answer>\s*", re.DOTALL)
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def completion_text(completion: Completion) -> str:
    """The text of a completion: the string itself, or the content of the last message of a conversational
    completion (a string, or the text parts of a content list)."""
    if isinstance(completion, str):
        return completion
    content = completion[-1]["content"] if completion else ""
    if isinstance(content, str):
        return content
    return "".join(part.get("text") or "" for part in content if part.get("type") == "text")


def final_answer(completion: Completion) -> str:
    """What the accuracy rewards read: the `<answer>` part when there is one, else the whole completion."""
    text = completion_text(completion)
    match = _ANSWER.search(text)
    return match.group(1).strip() if match else text.strip()


def _judged(task: list[str] | None, index: int, kind: str) -> bool:
    return task is None or task[index] == kind


def multiple_choice_reward(
    prompts: list[Any],
    completions: list[Completion],
    options: list[list[str]],
    answer: list[str | None],
    task: list[str] | None = None,
    **kwargs: Any,
) -> list[float | None]:
    """1.0 when the answer reads, with the evaluation's robust parser (`parse_choice`), as the option of the correct
    letter `answer`; 0.0 for another option or an answer naming none; None on rows whose `task` is not
    "multiple_choice". With options Papillon, Maltese dog, Japanese spaniel, Chihuahua and answer D:

    | completion                                              | reward |
    |---------------------------------------------------------|--------|
    | `D`                                                     | 1.0    |
    | `D. Chihuahua`                                          | 1.0    |
    | `The answer is D.`                                      | 1.0    |
    | `It is a Chihuahua.`                                    | 1.0    |
    | `<think>Big ears, tiny body.</think><answer>D</answer>` | 1.0    |
    | `B`                                                     | 0.0    |
    | `A Maltese dog.`                                        | 0.0    |
    | `E`                                                     | 0.0    |
    | `I am not sure.`                                        | 0.0    |
    | ``                                                      | 0.0    |
    """
    rewards: list[float | None] = []
    for index, completion in enumerate(completions):
        if not _judged(task, index, "multiple_choice"):
            rewards.append(None)
            continue
        choice = parse_choice(final_answer(completion), options[index])
        rewards.append(float(choice is not None and choice == OPTION_LETTERS.index(answer[index])))
    return rewards


def open_set_reward(
    prompts: list[Any],
    completions: list[Completion],
    category: list[str],
    options: list[list[str]] | None = None,
    task: list[str] | None = None,
    contains_reward: float = 0.5,
    **kwargs: Any,
) -> list[float | None]:
    """1.0 when the answer is the true `category` after the open-set normaliser (case, punctuation, underscores,
    articles and plurals ignored), `contains_reward` when it names the category among other words (and no longer
    candidate name, as `score_open_set` reads it), else 0.0; None on rows whose `task` is not "open_set". The row's
    `options` (the category and its hard negatives) are the candidate names. With category Japanese spaniel,
    candidates Papillon, Maltese dog, Japanese spaniel, Chihuahua and `contains_reward` 0.5:

    | completion                                                               | reward |
    |--------------------------------------------------------------------------|--------|
    | `Japanese spaniel`                                                       | 1.0    |
    | `The Japanese_spaniels.`                                                 | 1.0    |
    | `It is a Japanese spaniel.`                                              | 0.5    |
    | `<think>Silky coat, flat face.</think><answer>Japanese spaniel</answer>` | 1.0    |
    | `A Maltese dog.`                                                         | 0.0    |
    | `Spaniel`                                                                | 0.0    |
    | ``                                                                       | 0.0    |
    """
    rewards: list[float | None] = []
    for index, completion in enumerate(completions):
        if not _judged(task, index, "open_set"):
            rewards.append(None)
            continue
        candidates = list(dict.fromkeys([category[index], *(options[index] if options else [])]))
        scores = score_open_set(final_answer(completion), category[index], candidates)
        rewards.append(1.0 if scores["exact"] else contains_reward if scores["contains"] else 0.0)
    return rewards


class OpenSetSimilarityReward:
    """The cosine similarity between the answer and the true `category` name, embedded by a sentence-transformers
    model (the open-set evaluation's mean cosine); 0.0 for an empty answer, None on rows whose `task` is not
    "open_set". Partial credit for near misses ("Japanese chin" for Japanese spaniel). With category Japanese
    spaniel:

    | completion                                                   | reward |
    |--------------------------------------------------------------|--------|
    | `Japanese spaniel`                                           | 1.0    |
    | `<think>Flat face.</think><answer>Japanese spaniel</answer>` | 1.0    |
    | ``                                                           | 0.0    |
    """

    __name__ = "open_set_similarity_reward"  # TRL logs each reward under its callable's name

    def __init__(self, similarity_model: Any):
        self.similarity_model = similarity_model

    def __call__(
        self,
        prompts: list[Any],
        completions: list[Completion],
        category: list[str],
        task: list[str] | None = None,
        **kwargs: Any,
    ) -> list[float | None]:
        judged = [index for index in range(len(completions)) if _judged(task, index, "open_set")]
        answers = [final_answer(completions[index]) for index in judged]
        answered = [position for position, text in enumerate(answers) if normalize_answer(text)]
        rewards: list[float | None] = [None] * len(completions)
        for index in judged:
            rewards[index] = 0.0
        if not answered:
            return rewards
        encode = dict(convert_to_tensor=True, normalize_embeddings=True)
        answer_embeddings = self.similarity_model.encode([answers[position] for position in answered], **encode)
        truths = [display_class_name(category[judged[position]]) for position in answered]
        truth_embeddings = self.similarity_model.encode(truths, **encode)
        cosines = (answer_embeddings * truth_embeddings).sum(dim=-1).float().cpu().tolist()
        for position, cosine in zip(answered, cosines):
            rewards[judged[position]] = round(cosine, 4)
        return rewards


def format_reward(prompts: list[Any], completions: list[Completion], **kwargs: Any) -> list[float]:
    """1.0 when the whole completion is `<think>...</think><answer>...</answer>` with text in both (spaces around
    them allowed), else 0.0, on every row:

    | completion                                        | reward |
    |---------------------------------------------------|--------|
    | `<think>Big ears.</think><answer>D</answer>`      | 1.0    |
    | ` <think>Big ears.</think> <answer>D</answer> `   | 1.0    |
    | `D`                                               | 0.0    |
    | `<answer>D</answer>`                              | 0.0    |
    | `<think></think><answer>D</answer>`               | 0.0    |
    | `<think>Big ears.</think><answer></answer>`       | 0.0    |
    | `<think>Big ears.</think><answer>D</answer> Done` | 0.0    |
    """
    rewards = []
    for completion in completions:
        match = _THINK_ANSWER.fullmatch(completion_text(completion))
        rewards.append(float(match is not None and all(part.strip() for part in match.groups())))
    return rewards
