"""Tiny, randomly initialised checkpoints of the real architectures.

Nothing can be downloaded here, so tests and the embedded default run on real model classes
(`Idefics2ForConditionalGeneration`, `LlavaForConditionalGeneration`, `CLIPModel`) shrunk to a few
hundred thousand parameters, each saved as an ordinary local model folder with a processor whose
tokenizer is built in-process and carries the special tokens and chat template of the real model.
Everything downstream loads them with `from_pretrained` exactly like a Hub checkpoint: this module is
the only place that knows they are tiny.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Literal

import torch
from transformers import (
    AutoModelForImageTextToText,
    CLIPConfig,
    CLIPModel,
    CLIPProcessor,
    Idefics2Config,
    LlavaConfig,
    LlavaProcessor,
)
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

from .world.tokenization import LLAVA_CHAT_TEMPLATE, byte_level_tokenizer, idefics2_processor

TinyArchitecture = Literal["idefics2", "llava"]
TINY_ARCHITECTURES: tuple[TinyArchitecture, ...] = ("idefics2", "llava")
# The processor settings of the paper (one whole image per sample) for each tiny architecture.
PAPER_PROCESSOR_KWARGS: dict[str, dict] = {"idefics2": {"do_image_splitting": False}, "llava": {}, "clip": {}}

# Bump when the tiny configs change so cached folders are rebuilt.
_TINY_VERSION = 3
_IMAGE_SIZE = 32
_PATCH_SIZE = 8
_MARKER = "tiny_checkpoint.json"


def _vision_config(**extra) -> dict:
    return {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": _IMAGE_SIZE,
        "patch_size": _PATCH_SIZE,
        **extra,
    }


def _text_config(model_type: str, vocab_size: int, pad_token_id: int, eos_token_id: int) -> dict:
    return {
        "model_type": model_type,
        "vocab_size": vocab_size,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 1024,
        "pad_token_id": pad_token_id,
        "bos_token_id": 1,
        "eos_token_id": eos_token_id,
        "tie_word_embeddings": False,
        # Trained LLMs have LM-head rows large enough for confident predictions; with the default 0.02 a
        # 64-dim head caps every logit near 1, and adapters (which never touch the head) could not learn.
        "initializer_range": 0.2,
    }


def _idefics2(output_dir: Path) -> None:
    # Splits images into 4 crops + the whole image by default, like HuggingFaceM4/idefics2-8b's processor: every
    # path that follows the paper must turn it off (`processor_kwargs={"do_image_splitting": False}`).
    processor = idefics2_processor(_IMAGE_SIZE, image_seq_len=8, do_image_splitting=True)
    tokenizer = processor.tokenizer
    config = Idefics2Config(
        text_config=_text_config("mistral", len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id),
        vision_config=_vision_config(),
        perceiver_config={
            "hidden_size": 64,
            "resampler_n_latents": 8,
            "resampler_depth": 1,
            "resampler_n_heads": 2,
            "resampler_head_dim": 16,
            "num_key_value_heads": 1,
        },
        image_token_id=processor.image_token_id,
        tie_word_embeddings=False,
    )
    model = AutoModelForImageTextToText.from_config(config)
    model.generation_config.eos_token_id = [
        tokenizer.eos_token_id,
        tokenizer.convert_tokens_to_ids("<end_of_utterance>"),
    ]
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(output_dir)
    processor.save_pretrained(output_dir)


def _llava(output_dir: Path) -> None:
    tokenizer = byte_level_tokenizer(
        ["<unk>", "<s>", "</s>", "<image>", "<pad>"],
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        extra_special_tokens={"image_token": "<image>"},
    )
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": _IMAGE_SIZE}, crop_size={"height": _IMAGE_SIZE, "width": _IMAGE_SIZE}
    )
    processor = LlavaProcessor(
        image_processor,
        tokenizer,
        patch_size=_PATCH_SIZE,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=LLAVA_CHAT_TEMPLATE,
    )
    config = LlavaConfig(
        text_config=_text_config("llama", len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id),
        vision_config=_vision_config(model_type="clip_vision_model", projection_dim=32),
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        tie_word_embeddings=False,
    )
    model = AutoModelForImageTextToText.from_config(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(output_dir)
    processor.save_pretrained(output_dir)


def _clip(output_dir: Path) -> None:
    tokenizer = byte_level_tokenizer(
        ["<|endoftext|>", "<|startoftext|>"],
        bos_token="<|startoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        pad_token="<|endoftext|>",
    )
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": _IMAGE_SIZE}, crop_size={"height": _IMAGE_SIZE, "width": _IMAGE_SIZE}
    )
    config = CLIPConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": 77,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        vision_config=_vision_config(),
        projection_dim=32,
    )
    CLIPModel(config).save_pretrained(output_dir)
    CLIPProcessor(image_processor, tokenizer).save_pretrained(output_dir)


_BUILDERS = {"idefics2": _idefics2, "llava": _llava, "clip": _clip}


def paper_processor_kwargs(checkpoint: str | os.PathLike) -> dict:
    """The `processor_kwargs` that give the paper's one whole image per sample for a tiny checkpoint folder."""
    marker = json.loads((Path(checkpoint) / _MARKER).read_text())
    return dict(PAPER_PROCESSOR_KWARGS[marker["architecture"]])


def create_tiny_checkpoint(
    architecture: TinyArchitecture | Literal["clip"], output_dir: str | os.PathLike | None = None, seed: int = 0
) -> Path:
    """Save a tiny randomly initialised checkpoint of `architecture` and return its folder.

    Without `output_dir` the folder lives in a cache (``$HF_FINEDEFICS_CACHE`` or
    ``~/.cache/hf_finedefics``) keyed by architecture, seed and version, and is built once.
    The folder loads with `AutoModelForImageTextToText` / `AutoProcessor` (or `CLIPModel` /
    `CLIPProcessor` for ``"clip"``).
    """
    if architecture not in _BUILDERS:
        raise ValueError(f"Unknown tiny architecture {architecture!r}; choose from {sorted(_BUILDERS)}.")
    if output_dir is None:
        cache = Path(os.environ.get("HF_FINEDEFICS_CACHE", Path.home() / ".cache" / "hf_finedefics"))
        output_dir = cache / "tiny" / f"{architecture}-seed{seed}-v{_TINY_VERSION}"
    output_dir = Path(output_dir)
    if (output_dir / _MARKER).exists():
        return output_dir
    # Build beside the target and rename, so concurrent test processes never see half a folder.
    staging = output_dir.with_name(f"{output_dir.name}.building-{os.getpid()}")
    staging.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        _BUILDERS[architecture](staging)
    digest = hashlib.sha256((staging / "config.json").read_bytes()).hexdigest()[:12]
    (staging / _MARKER).write_text(json.dumps({"architecture": architecture, "seed": seed, "config_sha": digest}))
    try:
        staging.rename(output_dir)
    except OSError:  # another process finished first, or the folder already has content
        if not (output_dir / _MARKER).exists():
            raise
        shutil.rmtree(staging)
    return output_dir
