"""The `rl` config: stage III (GRPO) prompts, built from the same training rows as `triples` and `instructions`.

Per image, one multiple-choice and one open-set prompt in TRL's conversational prompt format (`prompt` messages
with an image placeholder, `images` with the image) and no answer: GRPO samples the answers and the rewards
(`hf_finedefics.rewards`) judge them against the columns kept beside the prompt:

- `task`: "multiple_choice" or "open_set";
- `category` (the ground truth) and `superclass`;
- `options`: the category and its hard-negative categories, shuffled with a seed of their own per image (the
  order shown in the multiple-choice prompt; the open-set reward's candidate names);
- `option_letters` (the letter of each option) and `answer` (the letter of the ground truth).

`examples_per_class` keeps a few images per class (the few-shot regime of reinforcement fine-tuning).
"""

from __future__ import annotations

import random
from collections import defaultdict

import datasets

from .prompts import OPTION_LETTERS, multiple_choice_prompt, open_set_prompt

RL_FEATURES = datasets.Features(
    {
        "images": datasets.List(datasets.Image()),
        "prompt": [
            {
                "role": datasets.Value("string"),
                "content": [{"type": datasets.Value("string"), "text": datasets.Value("string")}],
            }
        ],
        "task": datasets.Value("string"),
        "category": datasets.Value("string"),
        "superclass": datasets.Value("string"),
        "options": datasets.List(datasets.Value("string")),
        "option_letters": datasets.List(datasets.Value("string")),
        "answer": datasets.Value("string"),
    }
)


def few_shot_rows(labels: list[int], examples_per_class: int | None, seed: int = 0) -> list[int]:
    """Indices of `examples_per_class` rows per label (all of a class with fewer), drawn with `seed`, in row
    order; every row when `examples_per_class` is None."""
    if examples_per_class is None:
        return list(range(len(labels)))
    if examples_per_class < 1:
        raise ValueError(f"examples_per_class must be at least 1, got {examples_per_class}.")
    by_label: dict[int, list[int]] = defaultdict(list)
    for index, label in enumerate(labels):
        by_label[label].append(index)
    generator = random.Random(seed)
    kept = [
        index
        for label in sorted(by_label)
        for index in generator.sample(by_label[label], min(examples_per_class, len(by_label[label])))
    ]
    return sorted(kept)


def _prompt(text: str) -> list[dict]:
    return [{"role": "user", "content": [{"type": "image", "text": None}, {"type": "text", "text": text}]}]


def build_rl_prompts(
    triples: datasets.Dataset, num_options: int = 4, seed: int = 0, examples_per_class: int | None = None
) -> datasets.Dataset:
    """Stage III data from the `triples` rows: a multiple-choice and an open-set prompt per kept image. Each
    image's options are shuffled by a generator seeded with (`seed`, its row index), so a row's order does not
    depend on which other rows the few-shot selection keeps."""
    keep = few_shot_rows(triples["label"], examples_per_class, seed)
    # Only the cheap columns are read; images stay encoded as stored.
    images = triples.cast_column("image", datasets.Image(decode=False))["image"]
    categories, superclasses, all_negatives = triples["category"], triples["superclass"], triples["neg_categories"]
    rows: dict[str, list] = {name: [] for name in RL_FEATURES}
    for index in keep:
        category, superclass, negatives = categories[index], superclasses[index], all_negatives[index]
        if len(negatives) < num_options - 1:
            raise ValueError(f"{num_options}-way questions need {num_options - 1} negatives, got {len(negatives)}.")
        options = [category, *negatives[: num_options - 1]]
        random.Random(f"{seed}:{index}").shuffle(options)
        for task, text in (
            ("multiple_choice", multiple_choice_prompt(options, superclass)),
            ("open_set", open_set_prompt(superclass)),
        ):
            rows["images"].append([images[index]])
            rows["prompt"].append(_prompt(text))
            rows["task"].append(task)
            rows["category"].append(category)
            rows["superclass"].append(superclass)
            rows["options"].append(options)
            rows["option_letters"].append(list(OPTION_LETTERS[: len(options)]))
            rows["answer"].append(OPTION_LETTERS[options.index(category)])
    return datasets.Dataset.from_dict(rows, features=RL_FEATURES)
