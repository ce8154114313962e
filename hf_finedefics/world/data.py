"""World-pretraining examples: what a pretrained MLLM of the synthetic world has seen before any Finedefics stage.

The paper's starting point perceives attributes and knows about categories from text, but has its visual objects
misaligned with category names (sections 2.2-2.4). The examples reproduce exactly that situation:

* image -> attributes: a detailed caption in the style of the attribute descriptions (place, background, one
  sentence per attribute, as `describe_attributes` writes them) and one question per attribute type, about critters
  with random attribute combinations (most of them no category's), never naming a category. The paper's base can
  already write such captions; its stage I generation loss L_G^att on them only keeps that skill (section 3.2);
* text -> knowledge: every category's attributes and the category that has given attributes, without an image;
* the lettered multiple-choice format on both, with attribute values as the options of image questions and
  category names only in text-only questions, so the base answers with a letter as a chat-tuned MLLM does;
* plain text documents (category names, knowledge sentences, captions), each text ended by EOS and packed one after
  the other, as an LLM's pretraining text is. Every stage I embedding is read at an appended EOS
  (`hf_finedefics.embeddings`); a chat turn ends with <end_of_utterance>, so without these documents the EOS input
  row would never be trained and every object, description and name would be read at an untrained position.

No example pairs an image with a category name (`pairs_image_with_name` checks it, and pretraining asserts it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from dataset_builders.prompts import multiple_choice_answer, multiple_choice_prompt
from dataset_builders.sources.synthetic import (
    ATTRIBUTE_TYPES,
    SyntheticCategory,
    SyntheticFGVRConfig,
    category_neighbours,
    describe_drawn_critter,
    draw_critter,
)

from .config import WorldPretrainingConfig

# Seed-sequence key of the pretraining images, apart from the dataset's splits (1: train, 2: test).
_IMAGE_STREAM = 7
_BATCH_STREAM = 8
NUM_NAME_OPTIONS = 4
DOCUMENT_TEXTS = 4


@dataclass(frozen=True)
class WorldDocument:
    """Plain texts, each followed by EOS, packed into one sequence; every token is a target."""

    texts: tuple[str, ...]


@dataclass(frozen=True)
class WorldExample:
    """One user question (with the pretraining image `image`, or text-only when None) and its answer."""

    question: str
    answer: str
    image: int | None = None


def attribute_question(attribute_type: str, subject: str) -> str:
    """ "What colour is the critter in this image?" / "What colour is the Velkari?"."""
    return {
        "color": f"What colour is {subject}?",
        "shape": f"What shape is {subject}?",
        "texture": f"What pattern does the coat of {subject} have?",
        "size": f"What size is {subject}?",
    }[attribute_type]


def attribute_phrase(attributes: dict[str, str], superclass: str) -> str:
    """ "large red round critter with a striped coat"."""
    return (
        f"{attributes['size']} {attributes['color']} {attributes['shape']} {superclass} "
        f"with a {attributes['texture']} coat"
    )


def draw_world_images(
    synthetic: SyntheticFGVRConfig, world: WorldPretrainingConfig
) -> tuple[list[Image.Image], list[dict[str, str]], list[str]]:
    """`world.num_images` critters with uniformly drawn attribute combinations, each reproducible alone: the images,
    their attributes and their detailed captions."""
    values = synthetic.attribute_values
    images, attributes, captions = [], [], []
    for index in range(world.num_images):
        rng = np.random.default_rng(np.random.SeedSequence([synthetic.seed, world.seed, _IMAGE_STREAM, index]))
        drawn = {t: str(rng.choice(values[t])) for t in ATTRIBUTE_TYPES}
        image, nuisance, tone = draw_critter(synthetic, drawn, rng)
        images.append(image)
        attributes.append(drawn)
        captions.append(describe_drawn_critter(drawn, synthetic.superclass, nuisance, tone, rng))
    return images, attributes, captions


class WorldExamples:
    """Draws the examples of each pretraining step from (seed, step) alone, so a resumed run sees the same batches."""

    def __init__(
        self,
        categories: list[SyntheticCategory],
        image_attributes: list[dict[str, str]],
        image_captions: list[str],
        synthetic: SyntheticFGVRConfig,
        world: WorldPretrainingConfig,
    ):
        self.categories = categories
        self.image_attributes = image_attributes
        self.image_captions = image_captions
        self.values = synthetic.attribute_values
        self.superclass = synthetic.superclass
        self.world = world
        self.neighbours = category_neighbours(categories)

    def _multiple_choice(self, question: str, answer: str, options: list[str], rng: np.random.Generator) -> tuple:
        shown = [options[i] for i in rng.permutation(len(options))]
        return multiple_choice_prompt(shown, question=question), multiple_choice_answer(shown, shown.index(answer))

    def image_example(self, index: int, rng: np.random.Generator, multiple_choice: bool) -> WorldExample:
        attributes = self.image_attributes[index]
        subject = f"the {self.superclass} in this image"
        task = int(rng.integers(len(ATTRIBUTE_TYPES) + (0 if multiple_choice else 1)))
        if task == len(ATTRIBUTE_TYPES):
            return WorldExample(f"Describe the {self.superclass} in this image.", self.image_captions[index], index)
        attribute_type = ATTRIBUTE_TYPES[task]
        question, answer = attribute_question(attribute_type, subject), attributes[attribute_type]
        if multiple_choice:
            question, answer = self._multiple_choice(question, answer, list(self.values[attribute_type]), rng)
        return WorldExample(question, answer, index)

    def text_example(self, rng: np.random.Generator, multiple_choice: bool) -> WorldExample:
        category = self.categories[int(rng.integers(len(self.categories)))]
        task = int(rng.integers(len(ATTRIBUTE_TYPES) + 2))
        if task < len(ATTRIBUTE_TYPES):
            attribute_type = ATTRIBUTE_TYPES[task]
            question = attribute_question(attribute_type, f"the {category.name}")
            answer = category.attributes[attribute_type]
            options = list(self.values[attribute_type])
        elif task == len(ATTRIBUTE_TYPES):
            question = f"Describe the {category.name}."
            answer = f"The {category.name} is a {attribute_phrase(category.attributes, self.superclass)}."
            if not multiple_choice:
                return WorldExample(question, answer)
            # As multiple choice, the same knowledge the other way round: which name has these attributes.
            task += 1
        if task == len(ATTRIBUTE_TYPES) + 1:
            question = f"Which {self.superclass} is a {attribute_phrase(category.attributes, self.superclass)}?"
            answer = category.name
            options = [category.name] + [name for name, _ in self.neighbours[category.name][: NUM_NAME_OPTIONS - 1]]
        if multiple_choice:
            question, answer = self._multiple_choice(question, answer, options, rng)
        return WorldExample(question, answer)

    def document(self, rng: np.random.Generator) -> WorldDocument:
        """`DOCUMENT_TEXTS` texts, each a category's name, its attribute sentence or an image's caption."""
        texts = []
        for _ in range(DOCUMENT_TEXTS):
            kind = int(rng.integers(3))
            if kind == 2:
                texts.append(self.image_captions[int(rng.integers(len(self.image_captions)))])
                continue
            category = self.categories[int(rng.integers(len(self.categories)))]
            sentence = f"The {category.name} is a {attribute_phrase(category.attributes, self.superclass)}."
            texts.append(category.name if kind == 0 else sentence)
        return WorldDocument(tuple(texts))

    def batch(self, step: int) -> list[WorldExample | WorldDocument]:
        rng = np.random.default_rng(np.random.SeedSequence([self.world.seed, _BATCH_STREAM, step]))
        examples = []
        for _ in range(self.world.batch_size):
            if rng.random() < self.world.document_fraction:
                examples.append(self.document(rng))
                continue
            text_only = rng.random() < self.world.text_fraction
            multiple_choice = bool(rng.random() < self.world.multiple_choice_fraction)
            if text_only:
                examples.append(self.text_example(rng, multiple_choice))
            else:
                index = int(rng.integers(len(self.image_attributes)))
                examples.append(self.image_example(index, rng, multiple_choice))
        return examples

    def corpus(self) -> list[str]:
        """Text the world's tokenizer learns its words from: every category's sentences, the image questions and
        captions."""
        lines = []
        for category in self.categories:
            lines.append(f"The {category.name} is a {attribute_phrase(category.attributes, self.superclass)}.")
            lines += [attribute_question(t, f"the {category.name}") for t in ATTRIBUTE_TYPES]
        lines += [attribute_question(t, f"the {self.superclass} in this image") for t in ATTRIBUTE_TYPES]
        lines += self.image_captions[: 4 * len(self.categories)]
        return lines


def pairs_image_with_name(example: WorldExample | WorldDocument, categories: list[SyntheticCategory]) -> bool:
    """Whether an image example mentions a category name (world pretraining must never do so)."""
    if isinstance(example, WorldDocument):
        return False
    text = f"{example.question} {example.answer}".lower()
    return example.image is not None and any(category.name.lower() in text for category in categories)
