"""World pretraining: the data never names what an image shows, the cache key, and resume after interruption."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForImageTextToText

from dataset_builders.sources.synthetic import SyntheticFGVRConfig, synthetic_categories
from hf_finedefics.world import (
    WorldExamples,
    WorldPretrainingConfig,
    ensure_world_base,
    pairs_image_with_name,
    pretrain_world,
    world_key,
)
from hf_finedefics.world.data import WorldDocument, WorldExample, draw_world_images
from hf_finedefics.world.perception import embedding_spread
from hf_finedefics.world.pretraining import (
    build_world_model,
    encode_documents,
    encode_examples,
    per_example_loss,
)
from hf_finedefics.world.tokenization import idefics2_processor

# Seconds to pretrain on 2 cores, yet every part of the real model and loop runs.
TINY_WORLD = {
    "text_hidden_size": 32,
    "text_layers": 1,
    "text_heads": 2,
    "text_kv_heads": 1,
    "text_intermediate_size": 64,
    "vision_hidden_size": 16,
    "vision_layers": 1,
    "num_latents": 4,
    "vocab_size": 400,
    "num_images": 8,
    "max_steps": 4,
    "batch_size": 4,
    "save_steps": 2,
    "warmup_steps": 1,
}
SMALL_SYNTHETIC = SyntheticFGVRConfig(num_categories=5, train_per_category=2, test_per_category=1)


def test_no_example_pairs_an_image_with_a_category_name():
    synthetic = SyntheticFGVRConfig()
    world = WorldPretrainingConfig(num_images=64)
    categories = synthetic_categories(synthetic)
    _, attributes, captions = draw_world_images(synthetic, world)
    examples = WorldExamples(categories, attributes, captions, synthetic, world)
    batches = [example for step in range(60) for example in examples.batch(step)]
    assert not [example for example in batches if pairs_image_with_name(example, categories)]
    drawn = [example for example in batches if isinstance(example, WorldExample)]
    # The check is not vacuous: text-only examples do name categories, images and lettered formats are there.
    assert pairs_image_with_name(WorldExample("What colour is it?", categories[0].name, image=0), categories)
    texts = [example for example in drawn if example.image is None]
    assert any(any(c.name in f"{e.question} {e.answer}" for c in categories) for e in texts)
    images = [example for example in drawn if example.image is not None]
    assert len(images) > len(texts) > 0
    assert any("Choices:" in example.question for example in images)
    assert any("Choices:" in example.question and categories[0].name in example.question for example in texts)
    # Image questions with options offer attribute values only.
    for example in images:
        if "Choices:" in example.question:
            offered = {line[3:] for line in example.question.splitlines() if line[1:3] == ". "}
            assert offered <= {v for vs in synthetic.attribute_values.values() for v in vs}
    # Batches depend on (seed, step) only, which is what makes resuming exact.
    assert examples.batch(7) == WorldExamples(categories, attributes, captions, synthetic, world).batch(7)


def test_cache_key_rebuilds_only_when_the_world_changes(tmp_path):
    world = WorldPretrainingConfig(**TINY_WORLD)
    base = ensure_world_base(SMALL_SYNTHETIC, world, cache_dir=tmp_path, progress=False)
    marker = base / "world_base.json"
    built = marker.stat().st_mtime_ns
    record = json.loads(marker.read_text())
    assert len(record["losses"]) == world.max_steps
    assert record["visual_token_spread"] > 1e-3  # the image reaches the language model
    # Logged at every checkpoint, so a collapsing connector shows early.
    assert record["visual_token_spread_by_step"].keys() == {"2", "4"}
    assert not list(tmp_path.glob("*.partial"))  # the work folder is gone once the base is in place

    # Unchanged world (split sizes only pick dataset images): the same folder, not pretrained again.
    same = dataclasses.replace(SMALL_SYNTHETIC, test_per_category=3)
    assert ensure_world_base(same, WorldPretrainingConfig(**TINY_WORLD), cache_dir=tmp_path) == base
    assert marker.stat().st_mtime_ns == built

    # A changed world config or world builds a new base beside it.
    longer = WorldPretrainingConfig(**{**TINY_WORLD, "max_steps": 5})
    other_world = dataclasses.replace(SMALL_SYNTHETIC, seed=1)
    assert (
        len({world_key(SMALL_SYNTHETIC, world), world_key(SMALL_SYNTHETIC, longer), world_key(other_world, world)})
        == 3
    )
    assert ensure_world_base(SMALL_SYNTHETIC, longer, cache_dir=tmp_path, progress=False) != base

    # The flag rebuilds in place.
    assert ensure_world_base(SMALL_SYNTHETIC, world, cache_dir=tmp_path, rebuild=True, progress=False) == base
    assert marker.stat().st_mtime_ns != built


def test_interrupted_pretraining_resumes_to_the_same_weights(tmp_path, monkeypatch):
    world = WorldPretrainingConfig(**TINY_WORLD)
    straight = pretrain_world(SMALL_SYNTHETIC, world, tmp_path / "straight", progress=False)

    original_batch = WorldExamples.batch

    def interrupt_at_step_3(self, step):
        if step == 3:
            raise KeyboardInterrupt
        return original_batch(self, step)

    monkeypatch.setattr(WorldExamples, "batch", interrupt_at_step_3)
    with pytest.raises(KeyboardInterrupt):
        pretrain_world(SMALL_SYNTHETIC, world, tmp_path / "resumed", progress=False)
    assert torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)["step"] == 2
    assert not (tmp_path / "resumed" / "model").exists()
    monkeypatch.setattr(WorldExamples, "batch", original_batch)

    resumed = pretrain_world(SMALL_SYNTHETIC, world, tmp_path / "resumed", progress=False)
    expected, actual = load_file(straight / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert expected.keys() == actual.keys()
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], msg=name)
    losses = [json.loads((path / "world_base.json").read_text())["losses"] for path in (straight, resumed)]
    assert losses[0] == losses[1] and len(losses[0]) == world.max_steps


def test_perceiver_latents_are_distinct(tmp_path):
    base = ensure_world_base(SMALL_SYNTHETIC, WorldPretrainingConfig(**TINY_WORLD), cache_dir=tmp_path, progress=False)
    latents = load_file(base / "model.safetensors")["model.connector.perceiver_resampler.latents"]
    assert torch.cdist(latents, latents).fill_diagonal_(1.0).min() > 0


def test_image_pathway_trains_at_its_lower_rate(tmp_path):
    """At the full rate the connector collapsed to image-independent visual tokens (issue 10)."""
    world = WorldPretrainingConfig(**TINY_WORLD)
    assert world.vision_lr_ratio < 1
    pretrain_world(SMALL_SYNTHETIC, world, tmp_path, progress=False)
    groups = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["optimizer"]["param_groups"]
    language, image = groups
    assert image["lr"] == pytest.approx(world.vision_lr_ratio * language["lr"])
    model = AutoModelForImageTextToText.from_pretrained(tmp_path / "model")
    names = [name for name, _ in model.named_parameters()]
    assert len(image["params"]) == sum(name.startswith(("model.vision_model.", "model.connector.")) for name in names)
    assert len(language["params"]) + len(image["params"]) == len(names)


def test_the_base_does_not_depend_on_the_thread_count(tmp_path):
    """Float sums differ with torch's thread count (3.7e-9 on these tiny weights, up to 18 Table 3 points at the
    default's size): pretraining runs single-threaded, so every machine builds the base its cache key names."""
    world = WorldPretrainingConfig(**TINY_WORLD)
    threads = torch.get_num_threads()
    weights = {}
    try:
        for count in (1, 2):
            torch.set_num_threads(count)
            folder = pretrain_world(SMALL_SYNTHETIC, world, tmp_path / str(count), progress=False)
            assert torch.get_num_threads() == count
            weights[count] = load_file(folder / "model.safetensors")
    finally:
        torch.set_num_threads(threads)
    for name, tensor in weights[1].items():
        assert torch.equal(tensor, weights[2][name]), name


def test_pretraining_trains_the_eos_position_every_embedding_is_read_at():
    """Stage I reads every object, description and name at an appended EOS. Chat turns end with <end_of_utterance>,
    so only the plain documents (texts ended by EOS, packed) put EOS at an input position whose output is trained:
    without them the EOS embedding row gets no gradient at all."""
    synthetic, world = SMALL_SYNTHETIC, WorldPretrainingConfig(**TINY_WORLD)
    categories = synthetic_categories(synthetic)
    images, attributes, captions = draw_world_images(synthetic, world)
    examples = WorldExamples(categories, attributes, captions, synthetic, world)
    batches = [example for step in range(40) for example in examples.batch(step)]
    documents = [example for example in batches if isinstance(example, WorldDocument)]
    chats = [example for example in batches if isinstance(example, WorldExample)]
    assert 0 < len(documents) < len(chats)
    names = {category.name for category in categories}
    assert any(text in names for document in documents for text in document.texts)  # names alone, as stage I reads
    processor = idefics2_processor(synthetic.image_size, world.num_latents, examples.corpus(), world.vocab_size)
    model = build_world_model(processor, synthetic, world)
    eos = processor.tokenizer.eos_token_id

    def eos_row_gradient(inputs):
        model.zero_grad()
        per_example_loss(model, inputs).backward()
        return model.get_input_embeddings().weight.grad[eos].abs().sum().item()

    assert eos_row_gradient(encode_examples(processor, chats[:8], images)) == 0.0
    encoded = encode_documents(processor.tokenizer, documents[:4])
    ends = (encoded["input_ids"] == eos).sum(1)
    assert ends.tolist() == [len(document.texts) for document in documents[:4]]
    assert eos_row_gradient(encoded) > 0.0


def test_the_world_seed_sets_the_world_and_its_base(tmp_path):
    """Different world seeds draw different categories and names; one world seed gives bit-identical data and base."""
    worlds = {seed: dataclasses.replace(SMALL_SYNTHETIC, seed=seed) for seed in (0, 1)}
    names = {seed: [c.name for c in synthetic_categories(world)] for seed, world in worlds.items()}
    assert names[0] != names[1]
    world = WorldPretrainingConfig(**TINY_WORLD)
    bases = [pretrain_world(worlds[0], world, tmp_path / str(index), progress=False) for index in range(2)]
    first, second = (load_file(base / "model.safetensors") for base in bases)
    assert all(torch.equal(first[name], second[name]) for name in first)
    other = pretrain_world(
        worlds[1], WorldPretrainingConfig(**{**TINY_WORLD, "seed": 1}), tmp_path / "1", progress=False
    )
    assert not torch.equal(load_file(other / "model.safetensors")["lm_head.weight"], first["lm_head.weight"])


def test_embedding_spread_by_hand():
    embeddings = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    spread = embedding_spread(embeddings, [0, 0, 1])
    # Within class 0: cos(x, x + y) = 1/sqrt(2); across: (x, y) = 0 and (x + y, y) = 1/sqrt(2), each twice.
    assert spread == pytest.approx({"within": 1 / np.sqrt(2), "across": 1 / (2 * np.sqrt(2))})
    assert np.isnan(embedding_spread(embeddings, [0, 1, 2])["within"])
