"""Reading a generated answer back as one of the multiple-choice options.

The original FOCI / Finedefics parser counts an answer as letter X whenever the text starts with X, so
"Chihuahua" reads as C and "An Abyssinian" as A. This parser only reads a letter where the text uses it
as a letter (alone, bracketed, followed by punctuation, or after "answer is"), and otherwise looks for an
option's name in the text. Anything else is a failure (None), reported as the failure rate.
"""

from __future__ import annotations

import re

from dataset_builders.prompts import OPTION_LETTERS

# Markdown emphasis, quotes and brackets that models wrap around a bare letter: "**B**", "(C)", "'A'".
_WRAPPERS = r"[\s\"'`*_(\[{<]*"
_CLOSERS = r"[\s\"'`*_)\]}>.:,;!]*"
# The whole answer is one letter, any case: "B", "b.", "(C)", "**D**".
_BARE_LETTER = re.compile(rf"{_WRAPPERS}([A-Za-z]){_CLOSERS}")
# The answer starts with a letter used as a label: "D. Chihuahua", "(B) Pug", "c) ...", "A: ...", "B" on a
# line of its own. A letter followed by a space alone is not enough: "A Chihuahua", "An Abyssinian" are words.
_LEADING_LABEL = re.compile(
    r"[\s\"'`*_]*(?:\(([A-Za-z])\)|\[([A-Za-z])\]|([A-Za-z])[.):\]](?!\w)|([A-Z])(?=[ \t*]*\n))"
)
# "Answer: D", "The answer is A.", "the correct option is (C)", "Choice B". The letter must be a capital
# and end there, so "the answer is a Japanese spaniel" falls through to name matching.
_STATED_LETTER = re.compile(
    r"\b(?i:answer|option|choice)\b(?:\s+(?i:is|would\s+be|should\s+be))?\s*[:\-]?\s*[\"'`*_(\[]*([A-Z])(?![\w'-])"
)


def normalize_name(text: str) -> str:
    """Lower-case, underscores as spaces, single spaces: "Japanese_spaniel" and "Japanese spaniel" match."""
    return " ".join(text.replace("_", " ").lower().split())


def _letter_index(letter: str | None, num_options: int) -> int | None:
    if letter is None:
        return None
    index = OPTION_LETTERS.index(letter.upper())
    return index if index < num_options else None


def _named_option(text: str, options: list[str]) -> int | None:
    """The option whose name the text mentions, preferring the longest name (so "Boeing 737-800" wins over
    "Boeing 737"), then the earliest mention."""
    normalized_text = normalize_name(text)
    best: tuple[int, int, int] | None = None  # (-name length, position, option index)
    for index, option in enumerate(options):
        name = normalize_name(option)
        if not name:
            continue
        # Whole words only: option "Pug" must not match "pugnacious".
        match = re.search(rf"(?<![a-z0-9]){re.escape(name)}(?![a-z0-9])", normalized_text)
        if match and (best is None or (-len(name), match.start()) < best[:2]):
            best = (-len(name), match.start(), index)
    return None if best is None else best[2]


def parse_choice(text: str, options: list[str]) -> int | None:
    """Return the index of the option that `text` answers, or None when it names none.

    Letters are read from "B", "b.", "(C)", "Answer: D", "D. Chihuahua is ...", "The answer is A.";
    otherwise an answer naming an option ("It is a Japanese spaniel.") selects it, the longest matching
    name winning. "An Abyssinian" is option A only if Abyssinian is option A. Letters beyond the number
    of options are not answers.
    """
    if (match := _BARE_LETTER.fullmatch(text)) is not None:
        return _letter_index(match.group(1), len(options))
    if (match := _LEADING_LABEL.match(text)) is not None:
        letter = next(group for group in match.groups() if group)
        if (index := _letter_index(letter, len(options))) is not None:
            return index
    stated = _STATED_LETTER.search(text)
    if stated is not None and (index := _letter_index(stated.group(1), len(options))) is not None:
        return index
    return _named_option(text, options)


def foci_choice(text: str, options: list[str]) -> int | None:
    """FOCI's reading: the answer is the option whose letter it starts with (``answer.lower().startswith(
    letter.lower())``), so "Chihuahua" reads as C. Leading whitespace is dropped first, since decoders differ on
    whether the space after "Assistant:" belongs to the answer."""
    text = text.lstrip().lower()
    return next(
        (index for index, letter in enumerate(OPTION_LETTERS[: len(options)]) if text.startswith(letter.lower())), None
    )
