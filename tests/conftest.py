import os

import datasets
import pytest
from transformers import AutoImageProcessor, AutoModelForImageTextToText, AutoProcessor, AutoTokenizer

from dataset_builders.sources.synthetic import category_neighbours, generate_synthetic_fgvr, synthetic_categories
from hf_finedefics.testing import (
    PROCESSORLESS_ARCHITECTURES,
    TINY_ARCHITECTURES,
    TORCHVISION_ARCHITECTURES,
    create_tiny_checkpoint,
    paper_processor_kwargs,
)
from tests.architectures import TINY_ARCHITECTURE_PARAMS

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# What every tiny training run in the tests shares: a couple of CPU steps, logged, never saved or reported.
TINY_TRAINING_ARGS = dict(
    max_steps=2, warmup_steps=0, logging_steps=1, save_strategy="no", report_to="none", use_cpu=True
)


def synthetic_triples(num_negatives: int = 3, split: str = "train", **overrides) -> datasets.Dataset:
    """Stage I triples from the embedded synthetic dataset, hard negatives taken from its ground-truth
    nearest categories (each with one image description of that category)."""
    source = generate_synthetic_fgvr(**overrides)[split]
    neighbours = category_neighbours(synthetic_categories(**overrides))
    first_description = {}
    for row in source.select_columns(["category", "attribute_description"]):
        first_description.setdefault(row["category"], row["attribute_description"])

    def add_negatives(row):
        names = [name for name, _ in neighbours[row["category"]][:num_negatives]]
        return {"neg_categories": names, "neg_attributes": [first_description[name] for name in names]}

    triples = source.map(add_negatives).rename_column("attribute_description", "attribute")
    return triples.remove_columns([c for c in triples.column_names if c == "attributes"])


def tensorboard_scalars(folder) -> dict[str, float]:
    """The last value of every scalar TensorBoard reads from the event files in `folder`."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: events.Scalars(tag)[-1].value for tag in events.Tags()["scalars"]}


@pytest.fixture(scope="session", params=TINY_ARCHITECTURE_PARAMS)
def tiny_checkpoint(request, tmp_path_factory):
    return create_tiny_checkpoint(request.param, tmp_path_factory.mktemp(request.param))


@pytest.fixture
def tiny_model_and_processor(tiny_checkpoint):
    # The paper's processor settings (the tiny Idefics2 splits images by default, like the Hub's).
    processor = AutoProcessor.from_pretrained(tiny_checkpoint, **paper_processor_kwargs(tiny_checkpoint))
    return AutoModelForImageTextToText.from_pretrained(tiny_checkpoint), processor


@pytest.fixture(
    params=[name for name in TINY_ARCHITECTURES if name not in TORCHVISION_ARCHITECTURES]
    + list(PROCESSORLESS_ARCHITECTURES)
)
def tiny_model_tokenizer_and_image_processor(request):
    """The backbones below the processor, in every environment: those whose processor needs torchvision too."""
    path = create_tiny_checkpoint(request.param)
    return (
        AutoModelForImageTextToText.from_pretrained(path).eval(),
        AutoTokenizer.from_pretrained(path),
        AutoImageProcessor.from_pretrained(path, **paper_processor_kwargs(path)),
    )
