"""Batching (object, attribute, category) triples with hard negatives for stage I."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import datasets
import torch
from PIL import Image
from tqdm.auto import tqdm
from transformers import ProcessorMixin

from dataset_builders.images import to_rgb
from dataset_builders.prompts import ATTRIBUTE_GENERATION_INSTRUCTION, OPEN_SET_QUESTION

from .chat import adds_special_tokens, assistant_turn, closes_turn, split_last_turn, user_turn
from .embeddings import tokenize_texts

# Columns of the `triples` config that stage I reads.
TRIPLE_COLUMNS = ("image", "attribute", "category", "neg_attributes", "neg_categories")
TEXT_COLUMNS = ("attribute", "category")
NEGATIVE_COLUMNS = ("neg_attributes", "neg_categories")
# The object-category ablation (Table 3b) reads no attribute text.
ATTRIBUTE_COLUMNS = ("attribute", "neg_attributes")


def validate_triples(
    dataset: datasets.Dataset,
    name: str = "train_dataset",
    check_images: bool = True,
    objective: str = "attribute_augmented",
) -> int:
    """Check every row before any step runs; returns the number of hard negatives K.

    Raises a `ValueError` naming the dataset, row and column for a missing column, an empty description or
    category, rows with different K, or an image that cannot be decoded. With `objective="object_category"` the
    attribute columns are not needed (nor read).
    """
    skipped = ATTRIBUTE_COLUMNS if objective == "object_category" else ()
    required = [column for column in TRIPLE_COLUMNS if column not in skipped]
    missing = [column for column in required if column not in dataset.column_names]
    if missing:
        raise ValueError(f"{name} lacks the column(s) {missing}; it has {dataset.column_names}.")
    text_columns = [column for column in TEXT_COLUMNS if column not in skipped]
    negative_columns = [column for column in NEGATIVE_COLUMNS if column not in skipped]
    num_negatives = None
    texts = dataset.select_columns([*text_columns, *negative_columns])
    for row_index, row in enumerate(tqdm(texts, desc=f"Validating {name}", disable=len(dataset) < 10_000)):
        for column in text_columns:
            if not isinstance(row[column], str) or not row[column].strip():
                raise ValueError(f"{name} row {row_index}: column {column!r} is empty ({row[column]!r}).")
        lengths = {column: len(row[column] or []) for column in negative_columns}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"{name} row {row_index}: {lengths} hard negatives; both lists need the same length.")
        row_negatives = lengths["neg_categories"]
        if num_negatives is None:
            num_negatives = row_negatives
        elif row_negatives != num_negatives:
            raise ValueError(
                f"{name} row {row_index}: {row_negatives} hard negatives, earlier rows have "
                f"{num_negatives}; every row needs the same K."
            )
        for column in negative_columns:
            for position, text in enumerate(row[column]):
                if not isinstance(text, str) or not text.strip():
                    raise ValueError(f"{name} row {row_index}: {column}[{position}] is empty ({text!r}).")
    if check_images:
        _validate_images(dataset, name)
    return num_negatives or 0


def _validate_images(dataset: datasets.Dataset, name: str) -> None:
    images = dataset.select_columns(["image"])
    if isinstance(images.features["image"], datasets.Image):
        # Read the stored bytes/paths rather than decoding through datasets, so the error names the row.
        images = images.cast_column("image", datasets.Image(decode=False))
    for row_index, row in enumerate(tqdm(images, desc=f"Checking {name} images", disable=len(dataset) < 10_000)):
        image = row["image"]
        try:
            if isinstance(image, Image.Image):
                image.load()
            elif isinstance(image, dict):
                source = io.BytesIO(image["bytes"]) if image.get("bytes") else image["path"]
                with Image.open(source) as opened:
                    opened.load()
            else:
                raise TypeError(f"unsupported value of type {type(image).__name__}")
        except Exception as error:  # PIL raises many types for broken files
            where = image.get("path") if isinstance(image, dict) else None
            raise ValueError(
                f"{name} row {row_index}: the image{f' {where!r}' if where else ''} cannot be decoded ({error})."
            ) from error


@dataclass
class ContrastiveAlignmentCollator:
    """Collate stage I rows into model inputs.

    A row has `image` (PIL), `attribute`, `category`, `neg_attributes` (K str), `neg_categories` (K str) and
    optionally `label` (class id) and `superclass`. The batch holds:

    - the generation task (eq. 8's L_G^att): image + instruction as the prompt, the attribute description as
      the answer; `generation_labels` mask the prompt, image and padding tokens with -100 unless
      `loss_on_all_tokens`. With `objective="object_category"` (Table 3b) no attribute text is read: the
      answer is the category name (to the open-set question by default), and the attribute indices point at the
      category texts;
    - the image inputs (`pixel_values`, ...), used once for both the object embedding and generation;
    - every distinct text of the batch (attributes, categories and their hard negatives) tokenized once, with
      EOS appended, plus index tensors placing each row's texts.
    """

    processor: ProcessorMixin
    eos_token_id: int
    instruction: str | None = None  # default: the attribute instruction, or the open-set question (object_category)
    max_text_length: int | None = 256
    loss_on_all_tokens: bool = False
    default_superclass: str = "object"
    objective: str = "attribute_augmented"

    def __post_init__(self):
        self.tokenizer = self.processor.tokenizer
        self.object_category = self.objective == "object_category"
        if self.instruction is None:
            self.instruction = OPEN_SET_QUESTION if self.object_category else ATTRIBUTE_GENERATION_INSTRUCTION
        self.answer_column = "category" if self.object_category else "attribute"

    def _conversation(self, row: dict[str, Any]) -> tuple[str, str]:
        superclass = row.get("superclass") or self.default_superclass
        question = user_turn(self.instruction.format(superclass=superclass))
        return split_last_turn(self.processor, [question, assistant_turn(row[self.answer_column])])

    def _generation_inputs(self, rows: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        prompts, answers = zip(*(self._conversation(row) for row in rows))
        images = [[to_rgb(row["image"])] for row in rows]
        processed = self.processor(
            text=list(prompts),
            images=images,
            padding=True,
            add_special_tokens=adds_special_tokens(self.tokenizer, prompts),
            return_tensors="pt",
        )
        answer_ids = self.tokenizer(list(answers), add_special_tokens=False)["input_ids"]
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eos_token_id
        sequences, labels = [], []
        for prompt_ids, prompt_mask, answer in zip(processed["input_ids"], processed["attention_mask"], answer_ids):
            prompt_ids = prompt_ids[prompt_mask.bool()].tolist()
            if not closes_turn(self.tokenizer, answer):
                answer = [*answer, self.eos_token_id]
            sequences.append(prompt_ids + answer)
            labels.append((prompt_ids if self.loss_on_all_tokens else [-100] * len(prompt_ids)) + answer)
        length = max(map(len, sequences))
        input_ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), length), dtype=torch.long)
        generation_labels = torch.full((len(rows), length), -100, dtype=torch.long)
        for i, (sequence, label) in enumerate(zip(sequences, labels)):
            input_ids[i, : len(sequence)] = torch.tensor(sequence)
            attention_mask[i, : len(sequence)] = 1
            generation_labels[i, : len(label)] = torch.tensor(label)
        # Per-token outputs (Qwen's `mm_token_type_ids`, Gemma's `token_type_ids`) describe the prompt alone, not the
        # prompt + answer sequences built here: the backbone derives them from `input_ids` (multimodal_forward_inputs).
        per_token = ("input_ids", "attention_mask", "token_type_ids", "mm_token_type_ids")
        image_inputs = {key: value for key, value in processed.items() if key not in per_token}
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "generation_labels": generation_labels,
            **image_inputs,
        }

    def _text_inputs(self, rows: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        num_negatives = {len(row["neg_categories"]) for row in rows}
        if not self.object_category:
            num_negatives |= {len(row["neg_attributes"]) for row in rows}
        if len(num_negatives) != 1:
            raise ValueError(f"Rows of one batch have different numbers of hard negatives: {sorted(num_negatives)}.")
        # A text that appears several times in a step (a category shared by rows, a negative that is another
        # row's positive) is encoded once.
        texts: dict[str, int] = {}

        def index(values: Sequence[str]) -> list[int]:
            return [texts.setdefault(text, len(texts)) for text in values]

        category_index = index([row["category"] for row in rows])
        neg_category_index = [index(row["neg_categories"]) for row in rows]
        if self.object_category:
            attribute_index, neg_attribute_index = category_index, neg_category_index
        else:
            attribute_index = index([row["attribute"] for row in rows])
            neg_attribute_index = [index(row["neg_attributes"]) for row in rows]
        tokenized = tokenize_texts(self.tokenizer, list(texts), self.eos_token_id, self.max_text_length)
        return {
            "text_input_ids": tokenized["input_ids"],
            "text_attention_mask": tokenized["attention_mask"],
            "attribute_index": torch.tensor(attribute_index),
            "category_index": torch.tensor(category_index),
            "neg_attribute_index": torch.tensor(neg_attribute_index).view(len(rows), -1),
            "neg_category_index": torch.tensor(neg_category_index).view(len(rows), -1),
        }

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = {**self._generation_inputs(rows), **self._text_inputs(rows)}
        if all(row.get("label") is not None for row in rows):
            batch["class_labels"] = torch.tensor([row["label"] for row in rows])
        return batch
