"""Build, pretrain and cache the small Idefics2 of the synthetic world (the embedded default's base model).

The base is cached like a downloaded model: under ``$HF_FINEDEFICS_CACHE`` (default ``$HF_HOME/finedefics``) in
``world/<key>``, where the key hashes everything that determines the weights (the world's dataset config minus its
split sizes, the `WorldPretrainingConfig`, the code version). It is pretrained in ``world/<key>.partial``, with a
resumable checkpoint every `save_steps`, and moved into place by one rename when done, so an interrupted build
resumes and a half-built folder is never loaded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import time
import warnings
from collections.abc import Callable
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

import torch
import transformers
from tqdm.auto import tqdm
from transformers import AutoModelForImageTextToText, Idefics2Config

from dataset_builders.cache import finedefics_cache_dir
from dataset_builders.sources.synthetic import SyntheticFGVRConfig, synthetic_categories

from ..chat import encode_answered_questions, render_answered_question
from .config import WorldPretrainingConfig
from .data import WorldDocument, WorldExample, WorldExamples, draw_world_images, pairs_image_with_name
from .tokenization import idefics2_processor

# Bump when the data or the training code changes what a config builds, so cached bases are rebuilt.
WORLD_VERSION = 3
MARKER = "world_base.json"
CHECKPOINT = "checkpoint.pt"
# Split sizes choose the dataset's images, not the world: they do not change the base.
_NOT_IN_KEY = ("train_per_category", "test_per_category")


def default_cache_dir() -> Path:
    return finedefics_cache_dir()


def world_key(synthetic: SyntheticFGVRConfig, world: WorldPretrainingConfig) -> str:
    """Hash of everything that determines the pretrained weights."""
    determined_by = {
        "version": WORLD_VERSION,
        "transformers": transformers.__version__,
        "synthetic": {k: v for k, v in dataclasses.asdict(synthetic).items() if k not in _NOT_IN_KEY},
        "world": dataclasses.asdict(world),
    }
    return hashlib.sha256(json.dumps(determined_by, sort_keys=True).encode()).hexdigest()[:16]


def build_world_model(processor: Any, synthetic: SyntheticFGVRConfig, world: WorldPretrainingConfig):
    """A randomly initialised Idefics2 of the configured size, with perceiver latents that can tell images apart."""
    tokenizer = processor.tokenizer
    config = Idefics2Config(
        text_config={
            "model_type": "mistral",
            "vocab_size": len(tokenizer),
            "hidden_size": world.text_hidden_size,
            "intermediate_size": world.text_intermediate_size,
            "num_hidden_layers": world.text_layers,
            "num_attention_heads": world.text_heads,
            "num_key_value_heads": world.text_kv_heads,
            "max_position_embeddings": 1024,
            "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "tie_word_embeddings": False,
        },
        vision_config={
            "hidden_size": world.vision_hidden_size,
            "intermediate_size": 2 * world.vision_hidden_size,
            "num_hidden_layers": world.vision_layers,
            "num_attention_heads": 2,
            "image_size": synthetic.image_size,
            "patch_size": world.patch_size,
        },
        perceiver_config={
            "hidden_size": world.text_hidden_size,
            "resampler_n_latents": world.num_latents,
            "resampler_depth": 1,
            "resampler_n_heads": 4,
            "resampler_head_dim": world.text_hidden_size // 4,
            "num_key_value_heads": 2,
        },
        image_token_id=processor.image_token_id,
        tie_word_embeddings=False,
    )
    model = AutoModelForImageTextToText.from_config(config)
    # Idefics2 initialises the latents to ones: identical latents give identical visual tokens, and the model
    # stayed blind to the image for 1,200 steps (REFERENCE.md section 6). Distinct latents fix that.
    torch.nn.init.normal_(model.model.connector.perceiver_resampler.latents, std=0.02)
    model.generation_config.eos_token_id = [
        tokenizer.eos_token_id,
        tokenizer.convert_tokens_to_ids("<end_of_utterance>"),
    ]
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def encode_examples(
    processor: Any, examples: list[WorldExample], images: list, render: Callable | None = None
) -> dict[str, torch.Tensor]:
    """Model inputs with labels on the answers only (the whole prompt, image tokens included, is masked); `render`:
    see `encode_answered_questions`."""
    inputs, answer_lengths = encode_answered_questions(
        processor,
        [
            (images[example.image] if example.image is not None else None, example.question, example.answer)
            for example in examples
        ],
        render,
    )
    labels = torch.full_like(inputs["input_ids"], -100)
    for row, (length, answer_length) in enumerate(zip(inputs["attention_mask"].sum(1).tolist(), answer_lengths)):
        labels[row, length - answer_length : length] = inputs["input_ids"][row, length - answer_length : length]
    inputs["labels"] = labels
    return inputs


def encode_documents(tokenizer: Any, documents: list[WorldDocument]) -> dict[str, torch.Tensor]:
    """Right-padded documents, each text followed by EOS, with every token a label (the EOS tokens included, so the
    text after one is predicted from it)."""
    texts = ["".join(f"{text}{tokenizer.eos_token}" for text in document.texts) for document in documents]
    inputs = tokenizer(texts, padding=True, padding_side="right", add_special_tokens=False, return_tensors="pt")
    inputs["labels"] = inputs["input_ids"].masked_fill(inputs["attention_mask"] == 0, -100)
    return dict(inputs)


def length_buckets(examples: list[WorldExample], count: int = 2) -> list[list[WorldExample]]:
    """The examples in `count` groups of similar text length, so that short questions are not padded to the length
    of the long captions they share a step with."""
    ordered = sorted(examples, key=lambda example: len(example.question) + len(example.answer))
    size = -(-len(ordered) // count)
    return [ordered[start : start + size] for start in range(0, len(ordered), size)]


def per_example_loss(model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean token loss of each example's answer, averaged over examples: short answers ("red") weigh as much as
    long captions, so perception questions are not drowned by descriptions."""
    labels = inputs["labels"]
    logits = model(**{k: v for k, v in inputs.items() if k != "labels"}).logits[:, :-1].float()
    targets = labels[:, 1:]
    losses = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets.clamp_min(0), reduction="none") * (
        targets != -100
    )
    return (losses.sum(1) / (targets != -100).sum(1).clamp_min(1)).mean()


@torch.no_grad()
def visual_token_spread(model: torch.nn.Module, processor: Any, images: list) -> float:
    """How much the visual tokens (connector outputs) vary across `images`, relative to their size: ~0 means the
    connector has collapsed to the same tokens for every image and the model cannot see."""
    pixels = processor.image_processor([[image] for image in images], return_tensors="pt")
    features = model.model.get_image_features(
        pixel_values=pixels["pixel_values"], pixel_attention_mask=pixels["pixel_attention_mask"]
    )
    tokens = getattr(features, "pooler_output", features)
    tokens = torch.stack(list(tokens)) if isinstance(tokens, (list, tuple)) else tokens
    tokens = tokens.reshape(len(images), -1).float()
    return (tokens.std(0).mean() / tokens.abs().mean().clamp_min(1e-12)).item()


def _learning_rate(world: WorldPretrainingConfig, step: int) -> float:
    if step < world.warmup_steps:
        return world.learning_rate * (step + 1) / world.warmup_steps
    progress = (step - world.warmup_steps) / max(1, world.max_steps - world.warmup_steps)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return world.learning_rate * (world.min_lr_ratio + (1 - world.min_lr_ratio) * cosine)


def pretrain_world(
    synthetic: SyntheticFGVRConfig, world: WorldPretrainingConfig, work_dir: str | os.PathLike, progress: bool = True
) -> Path:
    """Pretrain in `work_dir` (resuming from its checkpoint) and save the model folder to ``work_dir/model``.

    It runs on one thread whatever torch is set to: floating-point sums differ with the thread count, so the base
    would depend on the machine, which its cache key cannot see (the embedded default's Table 3 rows came out up to
    18 points apart with a base pretrained on 2 threads instead of 1)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _pretrain_world(synthetic, world, Path(work_dir), progress)
    finally:
        torch.set_num_threads(threads)


def _pretrain_world(
    synthetic: SyntheticFGVRConfig, world: WorldPretrainingConfig, work_dir: Path, progress: bool
) -> Path:
    work_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    categories = synthetic_categories(synthetic)
    images, attributes, captions = draw_world_images(synthetic, world)
    examples = WorldExamples(categories, attributes, captions, synthetic, world)
    processor = idefics2_processor(
        synthetic.image_size, world.num_latents, examples.corpus() * 4, vocab_size=world.vocab_size
    )
    with torch.random.fork_rng():
        torch.manual_seed(world.seed)
        model = build_world_model(processor, synthetic, world)
    image_pathway = [
        p for n, p in model.named_parameters() if n.startswith(("model.vision_model.", "model.connector."))
    ]
    in_image_pathway = {id(p) for p in image_pathway}
    param_groups = [
        {"params": [p for p in model.parameters() if id(p) not in in_image_pathway], "lr_ratio": 1.0},
        {"params": image_pathway, "lr_ratio": world.vision_lr_ratio},
    ]
    optimizer = torch.optim.AdamW(param_groups, lr=world.learning_rate, weight_decay=world.weight_decay)
    step, losses, spreads = 0, [], {}
    checkpoint_path = work_dir / CHECKPOINT
    if checkpoint_path.is_file():
        state = torch.load(checkpoint_path, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, losses, spreads = state["step"], state["losses"], state.get("spreads", {})
    # The same questions and captions recur every few steps: render each chat once.
    render = lru_cache(maxsize=None)(partial(render_answered_question, processor))
    model.train()
    with tqdm(total=world.max_steps, initial=step, desc="World pretraining", unit="step", disable=not progress) as bar:
        while step < world.max_steps:
            batch = examples.batch(step)
            leaked = [example for example in batch if pairs_image_with_name(example, categories)]
            if leaked:
                raise AssertionError(f"A world-pretraining example pairs an image with a category name: {leaked[0]}")
            for group in optimizer.param_groups:
                group["lr"] = _learning_rate(world, step) * group["lr_ratio"]
            loss = 0.0
            documents = [example for example in batch if isinstance(example, WorldDocument)]
            chats = [example for example in batch if not isinstance(example, WorldDocument)]
            encoded = [encode_examples(processor, bucket, images, render) for bucket in length_buckets(chats)]
            if documents:
                encoded.append(encode_documents(processor.tokenizer, documents))
            for inputs in encoded:
                # Each bucket is padded to its own longest sequence; weighted by its share of the batch.
                bucket_loss = per_example_loss(model, inputs) * len(inputs["input_ids"])
                (bucket_loss / len(batch)).backward()
                loss += bucket_loss.item() / len(batch)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            losses.append(round(loss, 4))
            bar.update(1)
            bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.3f}")
            if step % world.save_steps == 0 and step < world.max_steps:
                # Logged as it trains, so a collapsing connector shows in the first few hundred steps.
                model.eval()
                spreads[str(step)] = round(visual_token_spread(model, processor, images[:32]), 6)
                model.train()
                bar.write(f"World pretraining step {step}: visual token spread {spreads[str(step)]:.3g}")
                temporary = checkpoint_path.with_suffix(".tmp")
                torch.save(
                    {
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "step": step,
                        "losses": losses,
                        "spreads": spreads,
                    },
                    temporary,
                )
                os.replace(temporary, checkpoint_path)
    model.eval()
    spread = visual_token_spread(model, processor, images[:32])
    if spread < 1e-3:
        warnings.warn(
            f"World pretraining ended with visual tokens that do not depend on the image (relative spread {spread:.1e}):"
            " the connector collapsed and the base cannot perceive attributes.",
            stacklevel=2,
        )
    model_dir = work_dir / "model"
    model.save_pretrained(model_dir)
    processor.save_pretrained(model_dir)
    record = {
        "synthetic": dataclasses.asdict(synthetic),
        "world": dataclasses.asdict(world),
        "version": WORLD_VERSION,
        "parameters": sum(p.numel() for p in model.parameters()),
        "final_loss": sum(losses[-20:]) / max(1, len(losses[-20:])),
        "visual_token_spread": spread,
        "visual_token_spread_by_step": {**spreads, str(world.max_steps): spread},
        "losses": losses,
        "seconds_this_session": round(time.perf_counter() - started, 1),
    }
    (model_dir / MARKER).write_text(json.dumps(record, indent=1) + "\n")
    return model_dir


def ensure_world_base(
    synthetic: SyntheticFGVRConfig,
    world: WorldPretrainingConfig | None = None,
    *,
    rebuild: bool = False,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> Path:
    """The cached world base for this world (a model folder for `from_pretrained`), pretrained on first use.

    `rebuild` discards the cached base and any interrupted build, and pretrains from scratch.
    """
    world = world or WorldPretrainingConfig()
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "world"
    target = root / world_key(synthetic, world)
    work_dir = target.with_name(f"{target.name}.partial")
    if rebuild:
        shutil.rmtree(target, ignore_errors=True)
        shutil.rmtree(work_dir, ignore_errors=True)
    if (target / MARKER).is_file():
        return target
    model_dir = pretrain_world(synthetic, world, work_dir, progress=progress)
    model_dir.rename(target)
    shutil.rmtree(work_dir)
    return target


def load_world_record(base: str | os.PathLike) -> dict[str, Any]:
    """What a cached world base was built from, and its training losses."""
    return json.loads((Path(base) / MARKER).read_text())
