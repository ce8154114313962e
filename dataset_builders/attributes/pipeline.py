"""Attribute description construction (paper section 3.1): discovery -> extraction -> summarization.

1. Discovery: the LLM lists useful attributes for telling apart the categories of each super-category.
2. Extraction: the VQA model answers, per image, a general question and one question per attribute.
3. Summarization: the LLM condenses those answers into a five-sentence description of the image.

Every answer goes through the `AnswerCache` first, keyed by (image content hash, prompt, model), and is
written back as soon as it arrives: rerunning a killed build only asks for what is missing. Empty, oversized or
degenerate replies (`reply_problem`) are refused, never cached, and such an answer found in the cache is asked again.
Images are processed in chunks, extraction then summarization per chunk, so a kill loses at most one
batch of work.
"""

from __future__ import annotations

import ast
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import datasets
from tqdm.auto import tqdm

from ..build_config import ATTRIBUTE_TYPE_KEYWORDS
from ..cache import AnswerCache, answer_key, content_hash
from .backends import GenerationBackend, GenerationRequest, reply_problem
from .prompts import AttributePrompts

logger = logging.getLogger(__name__)


def parse_attribute_list(text: str, max_attributes: int = 30) -> list[str]:
    """The attributes named in an LLM reply: the first Python list in it, else one item per line or comma.

    Bullets and numbering are stripped, items are lower-cased and de-duplicated in order.
    """
    items: list[str] = []
    match = re.search(r"\[[^\[\]]*\]", text, flags=re.DOTALL)
    if match:
        try:
            parsed = ast.literal_eval(match.group(0))
            items = [str(item) for item in parsed if isinstance(item, str)]
        except (ValueError, SyntaxError, MemoryError, RecursionError):  # a degenerate reply can nest too deep
            items = [item.strip(" '\"") for item in match.group(0)[1:-1].split(",")]
    if not items:
        items = re.split(r"[\n,;]", text)
    cleaned = []
    for item in items:
        item = re.sub(r"^\s*(?:[-*\u2022]|\d+[.)])\s*", "", item).strip(" '\"`.:").lower()
        item = re.sub(r"\s+", " ", item)
        if item and len(item.split()) <= 6 and item not in cleaned:
            cleaned.append(item)
    return cleaned[:max_attributes]


def remove_attribute_types(attributes: list[str], types: list[str]) -> list[str]:
    """Drop every attribute of the given types ("color", "shape", "texture", "size") for the ablation."""
    unknown = set(types) - set(ATTRIBUTE_TYPE_KEYWORDS)
    if unknown:
        raise ValueError(f"Unknown attribute type(s) {sorted(unknown)}; choose from {list(ATTRIBUTE_TYPE_KEYWORDS)}.")
    keywords = [word for kind in types for word in ATTRIBUTE_TYPE_KEYWORDS[kind]]
    return [attribute for attribute in attributes if not any(word in attribute for word in keywords)]


def image_bytes(image: dict) -> bytes:
    """The encoded bytes of a `datasets.Image(decode=False)` value (read from its file when not inline)."""
    if image.get("bytes") is not None:
        return image["bytes"]
    return Path(image["path"]).read_bytes()


@dataclass
class ImageAnswers:
    """Everything the VQA model said about one image, and the resulting description."""

    general: str
    attributes: dict[str, str]
    description: str


class AttributeDescriber:
    """Runs the three construction steps with an LLM and a VQA backend (which may be the same model).

    Args:
        llm: backend for discovery and summarization (text only).
        vqa: backend for extraction (image + question).
        cache: answer cache; a fresh default cache file when None.
        prompts: prompt templates.
        attributes: per super-category attribute lists that replace discovery (e.g. edited by hand).
        removed_attribute_types: attribute types left out (the paper's Table 5 ablation).
        max_attributes: upper bound on discovered attributes per super-category.
        chunk_size: images per unit of work (and the most work a kill can lose).
    """

    def __init__(
        self,
        llm: GenerationBackend,
        vqa: GenerationBackend,
        cache: AnswerCache | None = None,
        prompts: AttributePrompts | None = None,
        attributes: dict[str, list[str]] | None = None,
        removed_attribute_types: list[str] | None = None,
        max_attributes: int = 30,
        chunk_size: int = 64,
    ):
        self.llm = llm
        self.vqa = vqa
        self.cache = cache if cache is not None else AnswerCache()
        self.prompts = prompts or AttributePrompts()
        self.fixed_attributes = attributes or {}
        self.removed_attribute_types = list(removed_attribute_types or [])
        remove_attribute_types([], self.removed_attribute_types)  # validate early
        self.max_attributes = max_attributes
        self.chunk_size = chunk_size
        self.discovered: dict[str, list[str]] = {}

    def answer(self, backend: GenerationBackend, requests: list[tuple[str | None, GenerationRequest]]) -> list[str]:
        """Answer (image hash, request) pairs from the cache, asking `backend` only for what is missing (or cached
        but no answer, as a build before replies were checked could store)."""
        keys = [answer_key(image_hash, request.prompt, backend.cache_id) for image_hash, request in requests]
        by_key = {key: request for key, (_, request) in zip(keys, requests)}
        answers = {}
        for key, answer in self.cache.get_many(keys).items():
            if problem := reply_problem(answer, backend.max_answer_chars):
                logger.warning(
                    "Cached answer of %s to %s is %s: asking again.", backend.model_id, by_key[key], problem
                )
            else:
                answers[key] = answer
        missing = [(key, request) for key, request in by_key.items() if key not in answers]
        for start in range(0, len(missing), backend.batch_size):
            batch = missing[start : start + backend.batch_size]
            # Each answer is saved as it arrives: a request that keeps failing loses no other answer.
            for position, answer in backend.iter_answers([request for _, request in batch]):
                key, request = batch[position]
                if problem := reply_problem(answer, backend.max_answer_chars):
                    raise ValueError(f"{backend.model_id} gave {problem} to {request}, which is refused (not cached).")
                self.cache.put_many({key: answer})
                answers[key] = answer
        return [answers[key] for key in keys]

    def discover_attributes(self, superclass: str) -> list[str]:
        """Step 1: the attributes that tell the categories of `superclass` apart."""
        if superclass not in self.discovered:
            if superclass in self.fixed_attributes:
                attributes = list(self.fixed_attributes[superclass])
            else:
                prompt = self.prompts.discovery_prompt(superclass)
                reply = self.answer(self.llm, [(None, GenerationRequest(prompt))])[0]
                attributes = parse_attribute_list(reply, self.max_attributes)
                if not attributes:
                    raise ValueError(
                        f"The LLM {self.llm.model_id} named no attributes for {superclass!r} (reply: {reply[:200]!r}); "
                        "give them explicitly with an attributes file."
                    )
            self.discovered[superclass] = remove_attribute_types(attributes, self.removed_attribute_types)
            logger.info("Attributes for %s: %s", superclass, self.discovered[superclass])
        return self.discovered[superclass]

    def _describe_chunk(self, images: list[bytes], superclasses: list[str]) -> list[ImageAnswers]:
        hashes = [content_hash(data) for data in images]
        questions = []  # (image position, attribute or None for the general question, request)
        for position, (data, superclass) in enumerate(zip(images, superclasses)):
            questions.append((position, None, GenerationRequest(self.prompts.general_question, data)))
            for attribute in self.discover_attributes(superclass):
                prompt = self.prompts.attribute_prompt(attribute, superclass)
                questions.append((position, attribute, GenerationRequest(prompt, data)))
        replies = self.answer(self.vqa, [(hashes[position], request) for position, _, request in questions])
        general = [""] * len(images)
        per_attribute: list[dict[str, str]] = [{} for _ in images]
        for (position, attribute, _), reply in zip(questions, replies):
            if attribute is None:
                general[position] = reply
            else:
                per_attribute[position][attribute] = reply
        summaries = [
            (
                hashes[i],
                GenerationRequest(self.prompts.summarization_prompt(superclasses[i], general[i], per_attribute[i])),
            )
            for i in range(len(images))
        ]
        descriptions = self.answer(self.llm, summaries)
        return [ImageAnswers(*fields) for fields in zip(general, per_attribute, descriptions)]

    def iter_describe(self, dataset: datasets.Dataset) -> Iterator[ImageAnswers]:
        """Steps 2 and 3 for every row of a source dataset (columns `image`, `superclass`), in order."""
        raw = dataset.cast_column("image", datasets.Image(decode=False)).select_columns(["image", "superclass"])
        for superclass in sorted(set(raw["superclass"])):
            self.discover_attributes(superclass)
        with tqdm(total=raw.num_rows, desc="Attribute descriptions", unit="img") as progress:
            for start in range(0, raw.num_rows, self.chunk_size):
                chunk = raw[start : start + self.chunk_size]
                yield from self._describe_chunk([image_bytes(image) for image in chunk["image"]], chunk["superclass"])
                progress.update(len(chunk["image"]))

    def describe(self, dataset: datasets.Dataset) -> list[str]:
        """The five-sentence attribute description of every row of `dataset`."""
        return [answers.description for answers in self.iter_describe(dataset)]

    def describe_by_class(self, dataset: datasets.Dataset) -> list[str]:
        """The tag-based baseline: one description per category from the LLM alone (no image), given to
        every image of that category."""
        class_names = dataset.features["label"].names
        pairs = sorted(set(zip(dataset["label"], dataset["superclass"])))
        by_class: dict[tuple[int, str], str] = {}
        for label, superclass in tqdm(pairs, desc="Tag-based class descriptions"):
            category = class_names[label]
            attributes = self.discover_attributes(superclass)
            questions = [
                GenerationRequest(self.prompts.tag_general_question.format(category=category, superclass=superclass))
            ]
            questions += [
                GenerationRequest(
                    self.prompts.tag_attribute_question.format(attribute=a, category=category, superclass=superclass)
                )
                for a in attributes
            ]
            replies = self.answer(self.llm, [(None, question) for question in questions])
            prompt = self.prompts.summarization_prompt(superclass, replies[0], dict(zip(attributes, replies[1:])))
            by_class[label, superclass] = self.answer(self.llm, [(None, GenerationRequest(prompt))])[0]
        return [by_class[pair] for pair in zip(dataset["label"], dataset["superclass"])]
