"""The prompts shared by training data and evaluation, so both speak to the model identically.

The multiple-choice format is the paper's Table 2 protocol (after FOCI): a dataset-specific question,
"Choices:" with lettered options, and an instruction to answer with the letter. Protocol "foci" asks with FOCI's
own nouns ("aircrafts"); "ours" with the registry's plural.
"""

from __future__ import annotations

import string
from typing import Literal

from .registry import REGISTRY

Protocol = Literal["ours", "foci"]
PROTOCOLS: tuple[Protocol, ...] = ("ours", "foci")

OPTION_LETTERS = string.ascii_uppercase

MULTIPLE_CHOICE_INSTRUCTION = "Answer with the letter from the given choices directly."
ATTRIBUTE_GENERATION_INSTRUCTION = "Describe the distinguishing attributes of the {superclass} in this image."
OPEN_SET_QUESTION = "What is the name of the {superclass} in this image?"
GENERIC_SUPERCLASS = "object"  # the noun of open questions about a dataset with no superclass (ImageNet-A/R)


def multiple_choice_question(superclass: str | None, protocol: Protocol = "ours") -> str:
    if protocol not in PROTOCOLS:
        raise ValueError(f"Unknown protocol {protocol!r}; choose from {', '.join(PROTOCOLS)}.")
    spec = next((spec for spec in REGISTRY.values() if spec.superclass == superclass and spec.plural), None)
    plural = None if spec is None else (spec.foci_plural or spec.plural) if protocol == "foci" else spec.plural
    return f"Which of these {plural or 'choices'} is shown in the image?"


def multiple_choice_prompt(
    options: list[str], superclass: str | None = None, protocol: Protocol = "ours", question: str | None = None
) -> str:
    """The user turn of a multiple-choice query; `options` are shown in the given order as A., B., ...
    `question` replaces the FGVR question (world pretraining asks about attributes in the same format)."""
    if not 2 <= len(options) <= len(OPTION_LETTERS):
        raise ValueError(f"A multiple-choice prompt needs 2 to {len(OPTION_LETTERS)} options, got {len(options)}.")
    lines = [question or multiple_choice_question(superclass, protocol), "Choices:"]
    lines += [f"{letter}. {option}" for letter, option in zip(OPTION_LETTERS, options)]
    lines.append(MULTIPLE_CHOICE_INSTRUCTION)
    return "\n".join(lines)


def multiple_choice_answer(options: list[str], answer_index: int) -> str:
    """The assistant turn for training data: the letter, then the name, like released models answer."""
    return f"{OPTION_LETTERS[answer_index]}. {options[answer_index]}"


def open_set_prompt(superclass: str | None) -> str:
    return OPEN_SET_QUESTION.format(superclass=superclass or GENERIC_SUPERCLASS)


def attribute_generation_prompt(superclass: str) -> str:
    return ATTRIBUTE_GENERATION_INSTRUCTION.format(superclass=superclass)
