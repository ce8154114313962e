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
import importlib.util
import json
import os
import shutil
from functools import partial
from pathlib import Path
from typing import Any, Literal

import torch
from transformers import (
    AutoModelForImageTextToText,
    CLIPConfig,
    CLIPModel,
    CLIPProcessor,
    Gemma3Config,
    Gemma3Processor,
    Idefics2Config,
    Idefics3Config,
    Idefics3Processor,
    LlavaConfig,
    LlavaOnevisionConfig,
    LlavaProcessor,
    PreTrainedTokenizerFast,
    Qwen2_5_VLConfig,
    Qwen3VLConfig,
    SmolVLMConfig,
    VipLlavaConfig,
)
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
from transformers.models.gemma3.image_processing_pil_gemma3 import Gemma3ImageProcessorPil
from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil
from transformers.models.llava_onevision.image_processing_pil_llava_onevision import LlavaOnevisionImageProcessorPil
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from dataset_builders.cache import finedefics_cache_dir

from .world.tokenization import LLAVA_CHAT_TEMPLATE, byte_level_tokenizer, idefics2_processor

TinyArchitecture = Literal[
    "idefics2", "llava", "idefics3", "gemma3", "qwen2_5_vl", "qwen3_vl", "llava_onevision", "smolvlm"
]
# Families whose processor transformers builds with a video processor, which needs torchvision: their tests run in
# the torchvision environment (README, "Tests"). Without torchvision their folders hold the model, the tokenizer
# (with the chat template) and the image processor, and tests drive them below the processor.
TORCHVISION_ARCHITECTURES: tuple[TinyArchitecture, ...] = ("qwen2_5_vl", "qwen3_vl", "llava_onevision", "smolvlm")
TINY_ARCHITECTURES: tuple[TinyArchitecture, ...] = (
    "idefics2",
    "llava",
    "idefics3",
    "gemma3",
    *TORCHVISION_ARCHITECTURES,
)
# The families tested below the processor, in every environment.
PROCESSORLESS_ARCHITECTURES = ("qwen2_5_vl", "qwen3_vl", "llava_onevision")
# Image-text-to-text families with no Finedefics backbone adapter: what evaluation of "any model" is tested on.
UNREGISTERED_ARCHITECTURES = ("vipllava",)
# The processor settings tests run each tiny architecture with: the paper's one whole image per sample, except
# Idefics3, whose tiles stay on so tests cover tiles and `pixel_attention_mask` (its recipes turn them off).
PAPER_PROCESSOR_KWARGS: dict[str, dict] = {
    "idefics2": {"do_image_splitting": False},
    "idefics3": {},
    "llava": {},
    "gemma3": {},
    "clip": {},
}

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


def _save_random_model(
    model: torch.nn.Module, eos_token_id: int | list[int], pad_token_id: int, output_dir: Path, *preprocessors: Any
) -> None:
    """Save a randomly initialised `model` that stops generating at `eos_token_id`, with its processor (or its
    tokenizer and image processor)."""
    model.generation_config.eos_token_id = eos_token_id
    model.generation_config.pad_token_id = pad_token_id
    model.save_pretrained(output_dir)
    for preprocessor in preprocessors:
        preprocessor.save_pretrained(output_dir)


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
    end_of_turn = tokenizer.convert_tokens_to_ids("<end_of_utterance>")
    _save_random_model(model, [tokenizer.eos_token_id, end_of_turn], tokenizer.pad_token_id, output_dir, processor)


def _llava_processor(chat_template: str, extra_corpus: tuple[str, ...] = ()) -> LlavaProcessor:
    """The LLaVA processor (CLIP image processor, byte-level tokenizer with <image>) that the LLaVA-family tiny
    checkpoints share; only the chat template and the tokenizer's extra words differ."""
    tokenizer = byte_level_tokenizer(
        ["<unk>", "<s>", "</s>", "<image>", "<pad>"],
        extra_corpus=list(extra_corpus),
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        extra_special_tokens={"image_token": "<image>"},
    )
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": _IMAGE_SIZE}, crop_size={"height": _IMAGE_SIZE, "width": _IMAGE_SIZE}
    )
    return LlavaProcessor(
        image_processor,
        tokenizer,
        patch_size=_PATCH_SIZE,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=chat_template,
    )


def _llava(output_dir: Path) -> None:
    processor = _llava_processor(LLAVA_CHAT_TEMPLATE)
    tokenizer = processor.tokenizer
    config = LlavaConfig(
        text_config=_text_config("llama", len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id),
        vision_config=_vision_config(model_type="clip_vision_model", projection_dim=32),
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        tie_word_embeddings=False,
    )
    model = AutoModelForImageTextToText.from_config(config)
    _save_random_model(model, tokenizer.eos_token_id, tokenizer.pad_token_id, output_dir, processor)


# The chat template of llava-hf/vip-llava-7b-hf ("###Human: <image>\n... ###Assistant:").
VIPLLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'user' %}{{ '###Human: ' }}{% else %}"
    "{{ '###Assistant: ' }}{% endif %}{% for content in message['content'] %}{% if content['type'] == 'image' %}"
    "{{ '<image>\n' }}{% else %}{{ content['text'] }}{% endif %}{% endfor %}{% if message['role'] != 'user' %}"
    "{{ '</s>' }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '###Assistant:' }}{% endif %}"
)


def _vipllava(output_dir: Path) -> None:
    """ViP-LLaVA: a CLIP encoder read at several layers (concatenated, layer-normed) under a Llama, served by the
    LLaVA processor; no Finedefics backbone adapter knows its model type."""
    processor = _llava_processor(VIPLLAVA_CHAT_TEMPLATE, extra_corpus=("###Human: ###Assistant:",))
    tokenizer = processor.tokenizer
    config = VipLlavaConfig(
        text_config=_text_config("llama", len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id),
        vision_config=_vision_config(model_type="clip_vision_model", projection_dim=32),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_layer=[-2, -1],
        tie_word_embeddings=False,
    )
    model = AutoModelForImageTextToText.from_config(config)
    _save_random_model(model, tokenizer.eos_token_id, tokenizer.pad_token_id, output_dir, processor)


# The chat template of HuggingFaceTB/SmolVLM-Instruct (Idefics3 architecture).
SMOLVLM_CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)


# SmolVLM's tiles, shared by the Idefics3 and SmolVLM2 builders: images up to 64 px split into 32 px tiles plus the
# global image; a tile is 16 patches, pixel-shuffled by 2 into 4 visual tokens.
_SMOLVLM_TILE_TOKENS = ["<global-img>"] + [f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)]
_SMOLVLM_SCALE_FACTOR = 2
_SMOLVLM_IMAGE_SEQ_LEN = (_IMAGE_SIZE // _PATCH_SIZE) ** 2 // _SMOLVLM_SCALE_FACTOR**2


def _smolvlm_splitting(image_processor_class):
    """An Idefics3 or SmolVLM image processor that splits images into the tiles above."""
    return image_processor_class(
        do_image_splitting=True,
        size={"longest_edge": 2 * _IMAGE_SIZE},
        max_image_size={"longest_edge": _IMAGE_SIZE},
    )


def _idefics3(output_dir: Path) -> None:
    """SmolVLM-Instruct's layout: SmolLM2 special tokens, image splitting on (so tests cover tiles, the global image
    and `pixel_attention_mask`)."""
    tokenizer = byte_level_tokenizer(
        ["<|endoftext|>", "<|im_start|>", "<|im_end|>", *_SMOLVLM_TILE_TOKENS],
        bos_token="<|im_start|>",
        eos_token="<end_of_utterance>",
        unk_token="<|endoftext|>",
        pad_token="<|im_end|>",
    )
    image_processor = _smolvlm_splitting(Idefics3ImageProcessorPil)
    # The processor adds <fake_token_around_image>, <image> and <end_of_utterance> like the real one.
    processor = Idefics3Processor(
        image_processor, tokenizer, image_seq_len=_SMOLVLM_IMAGE_SEQ_LEN, chat_template=SMOLVLM_CHAT_TEMPLATE
    )
    tokenizer = processor.tokenizer
    eos_token_id = tokenizer.convert_tokens_to_ids("<|im_end|>")  # SmolLM2's EOS, as in the text config
    config = Idefics3Config(
        text_config=_text_config("llama", len(tokenizer), tokenizer.pad_token_id, eos_token_id),
        vision_config=_vision_config(),
        scale_factor=_SMOLVLM_SCALE_FACTOR,
        image_token_id=processor.image_token_id,
        tie_word_embeddings=False,
    )
    model = AutoModelForImageTextToText.from_config(config)
    end_of_turn = tokenizer.convert_tokens_to_ids("<end_of_utterance>")
    _save_random_model(model, [eos_token_id, end_of_turn], tokenizer.pad_token_id, output_dir, processor)


# The chat template of HuggingFaceTB/SmolVLM2-2.2B-Instruct: SmolVLM's, with videos.
SMOLVLM2_CHAT_TEMPLATE = SMOLVLM_CHAT_TEMPLATE.replace(
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}",
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% elif line['type'] == 'video' %}{{ '<video>' }}{% endif %}",
)


def _smolvlm(output_dir: Path) -> None:
    """SmolVLM2 (`smolvlm`): Idefics3's layout (see `_idefics3`: tiles, global image, pixel shuffle by 2) with
    SmolVLM's own processor, which adds a video processor."""
    from transformers.models.smolvlm.image_processing_pil_smolvlm import SmolVLMImageProcessorPil

    tokenizer = byte_level_tokenizer(
        ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<fake_token_around_image>", "<image>", "<video>"]
        + ["<end_of_utterance>", *_SMOLVLM_TILE_TOKENS],
        bos_token="<|im_start|>",
        eos_token="<end_of_utterance>",
        unk_token="<|endoftext|>",
        pad_token="<|im_end|>",
        chat_template=SMOLVLM2_CHAT_TEMPLATE,
    )
    image_processor = _smolvlm_splitting(SmolVLMImageProcessorPil)
    eos_token_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    config = SmolVLMConfig(
        text_config=_text_config("llama", len(tokenizer), tokenizer.pad_token_id, eos_token_id),
        vision_config=_vision_config(),
        scale_factor=_SMOLVLM_SCALE_FACTOR,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        tie_word_embeddings=False,
    )

    def make_processor():
        from transformers import SmolVLMProcessor, SmolVLMVideoProcessor

        video_processor = SmolVLMVideoProcessor(
            size={"longest_edge": 2 * _IMAGE_SIZE}, max_image_size={"longest_edge": _IMAGE_SIZE}
        )
        return SmolVLMProcessor(
            image_processor,
            tokenizer,
            video_processor,
            image_seq_len=_SMOLVLM_IMAGE_SEQ_LEN,
            chat_template=tokenizer.chat_template,
        )

    _save_with_video_processor(config, tokenizer, image_processor, make_processor, output_dir)


# The chat template of google/gemma-3-4b-it: the system prompt joins the first user turn; the assistant is "model".
GEMMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}{%- if messages[0]['role'] == 'system' -%}{%- if messages[0]['content'] is string -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}{%- else -%}"
    "{%- set first_user_prefix = messages[0]['content'][0]['text'] + '\\n\\n' -%}{%- endif -%}"
    '{%- set loop_messages = messages[1:] -%}{%- else -%}{%- set first_user_prefix = "" -%}'
    "{%- set loop_messages = messages -%}{%- endif -%}{%- for message in loop_messages -%}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}"
    '{{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}{%- endif -%}'
    "{%- if (message['role'] == 'assistant') -%}{%- set role = \"model\" -%}{%- else -%}"
    "{%- set role = message['role'] -%}{%- endif -%}"
    "{{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else \"\") }}"
    "{%- if message['content'] is string -%}{{ message['content'] | trim }}"
    "{%- elif message['content'] is iterable -%}{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'image' -%}{{ '<start_of_image>' }}{%- elif item['type'] == 'text' -%}"
    "{{ item['text'] | trim }}{%- endif -%}{%- endfor -%}{%- else -%}{{ raise_exception(\"Invalid content type\") }}"
    "{%- endif -%}{{ '<end_of_turn>\\n' }}{%- endfor -%}{%- if add_generation_prompt -%}{{'<start_of_turn>model\\n'}}"
    "{%- endif -%}"
)


def _gemma3(output_dir: Path) -> None:
    """Gemma 3 (google/gemma-3-4b-it's tokens and template; the tokenizer adds <bos> and so does the template, as the
    real ones do): a 32 px image is 4x4 SigLIP patches, average-pooled 2x2 into mm_tokens_per_image = 4 soft tokens,
    which the processor writes as "\\n\\n<start_of_image>" + 4 x <image_soft_token> + "<end_of_image>\\n\\n". Pan and
    scan stays off (the default). One sliding-window layer and one global layer, like the real 5:1 pattern."""
    tokenizer = byte_level_tokenizer(
        ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]
        + ["<start_of_image>", "<end_of_image>", "<image_soft_token>"],
        bos_token="<bos>",
        eos_token="<eos>",
        unk_token="<unk>",
        pad_token="<pad>",
        add_bos_token=True,
        extra_special_tokens={
            "boi_token": "<start_of_image>",
            "eoi_token": "<end_of_image>",
            "image_token": "<image_soft_token>",
        },
    )
    mm_tokens_per_image = 4
    processor = Gemma3Processor(
        Gemma3ImageProcessorPil(size={"height": _IMAGE_SIZE, "width": _IMAGE_SIZE}),
        tokenizer,
        image_seq_length=mm_tokens_per_image,
        chat_template=GEMMA3_CHAT_TEMPLATE,
    )
    text_config = _text_config("gemma3_text", len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id)
    text_config.update(
        bos_token_id=tokenizer.bos_token_id,
        head_dim=16,
        query_pre_attn_scalar=16,
        sliding_window=8,
        layer_types=["sliding_attention", "full_attention"],
    )
    config = Gemma3Config(
        text_config=text_config,
        vision_config=_vision_config(model_type="siglip_vision_model", vision_use_head=False),
        mm_tokens_per_image=mm_tokens_per_image,
        boi_token_index=tokenizer.boi_token_id,
        eoi_token_index=tokenizer.eoi_token_id,
        image_token_index=tokenizer.image_token_id,
        tie_word_embeddings=False,
    )
    model = AutoModelForImageTextToText.from_config(config)
    # transformers initialises the projection to zeros (every image would give the same tokens); a released
    # checkpoint's is trained, so draw it like the other random weights.
    torch.nn.init.normal_(
        model.model.multi_modal_projector.mm_input_projection_weight, std=text_config["initializer_range"]
    )
    end_of_turn = tokenizer.convert_tokens_to_ids("<end_of_turn>")
    _save_random_model(model, [tokenizer.eos_token_id, end_of_turn], tokenizer.pad_token_id, output_dir, processor)


# The chat template of Qwen/Qwen2.5-VL-7B-Instruct.
QWEN2_5_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}"
    "<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: "
    "{% endif %}<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video {{ video_count.value }}: "
    "{% endif %}<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _qwen_vision_token_ids(tokenizer) -> dict[str, int]:
    """The vision special tokens a Qwen-VL config names."""
    tokens = {"image": "<|image_pad|>", "video": "<|video_pad|>", "vision_start": "<|vision_start|>"}
    tokens["vision_end"] = "<|vision_end|>"
    return {f"{name}_token_id": tokenizer.convert_tokens_to_ids(token) for name, token in tokens.items()}


def has_torchvision() -> bool:
    """Whether the video processors of TORCHVISION_ARCHITECTURES, hence their full processors, can be built."""
    return importlib.util.find_spec("torchvision") is not None


def _save_with_video_processor(config, tokenizer, image_processor, make_processor, output_dir: Path) -> None:
    """A random model of `config` saved with its full processor, `make_processor()`, where torchvision is
    installed, else with its tokenizer and image processor only; generation stops at EOS or padding."""
    model = AutoModelForImageTextToText.from_config(config)
    eos_token_ids = [tokenizer.eos_token_id, tokenizer.pad_token_id]
    preprocessors = (make_processor(),) if has_torchvision() else (tokenizer, image_processor)
    _save_random_model(model, eos_token_ids, tokenizer.pad_token_id, output_dir, *preprocessors)


def _qwen_tokens_and_images(chat_template: str) -> tuple[PreTrainedTokenizerFast, Qwen2VLImageProcessorPil]:
    """The Qwen-VL family's special tokens with `chat_template`, and its image processor at patch 8, merge 2, images
    resized to 256..1024 pixels (multiples of 16 px a side)."""
    tokenizer = byte_level_tokenizer(
        ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>"]
        + ["<|image_pad|>", "<|video_pad|>"],
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=chat_template,
    )
    image_processor = Qwen2VLImageProcessorPil(
        patch_size=_PATCH_SIZE, temporal_patch_size=2, merge_size=2, min_pixels=16 * 16, max_pixels=_IMAGE_SIZE**2
    )
    return tokenizer, image_processor


def _qwen_processor(processor_class: str, video_processor_class: str, tokenizer, image_processor):
    """A Qwen-VL processor whose video processor matches `image_processor`'s patching and pixel bounds."""
    import transformers

    video_processor = getattr(transformers, video_processor_class)(
        patch_size=_PATCH_SIZE,
        temporal_patch_size=2,
        merge_size=2,
        size={"shortest_edge": 16 * 16, "longest_edge": _IMAGE_SIZE**2},
    )
    return getattr(transformers, processor_class)(
        image_processor, tokenizer, video_processor, chat_template=tokenizer.chat_template
    )


def _qwen2_5_vl(output_dir: Path) -> None:
    """Qwen2.5-VL-Instruct's tokens and template; patch 8, merge 2, images resized to 256..1024 pixels (multiples of
    16 px a side): a 32x32 image is a 4x4 patch grid, 4 visual tokens; other aspect ratios give other grids."""
    tokenizer, image_processor = _qwen_tokens_and_images(QWEN2_5_VL_CHAT_TEMPLATE)
    eos_token_id = tokenizer.eos_token_id
    text_config = _text_config("qwen2_5_vl_text", len(tokenizer), tokenizer.pad_token_id, eos_token_id)
    # M-RoPE splits each head's 8 rotary frequencies over (temporal, height, width).
    text_config["rope_parameters"] = {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [2, 3, 3]}
    text_config["bos_token_id"] = tokenizer.pad_token_id
    config = Qwen2_5_VLConfig(
        text_config=text_config,
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "patch_size": _PATCH_SIZE,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 2 * 2 * _PATCH_SIZE,
            "fullatt_block_indexes": [1],
            "out_hidden_size": 64,
        },
        **_qwen_vision_token_ids(tokenizer),
        tie_word_embeddings=False,
    )
    make_processor = partial(
        _qwen_processor, "Qwen2_5_VLProcessor", "Qwen2VLVideoProcessor", tokenizer, image_processor
    )
    _save_with_video_processor(config, tokenizer, image_processor, make_processor, output_dir)


def _qwen3_vl(output_dir: Path) -> None:
    """Qwen3-VL-Instruct's tokens and template (Qwen2.5-VL's, without the default system prompt); patch 8, merge 2,
    the same image bounds as `_qwen2_5_vl`; DeepStack from ViT layer 0 into the first LLM layer."""
    template = QWEN2_5_VL_CHAT_TEMPLATE.replace(
        "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "{% endif %}",
        "",
    )
    tokenizer, image_processor = _qwen_tokens_and_images(template)
    eos_token_id = tokenizer.eos_token_id
    text_config = _text_config("qwen3_vl_text", len(tokenizer), tokenizer.pad_token_id, eos_token_id)
    text_config["head_dim"] = 16
    text_config["rope_parameters"] = {
        "rope_type": "default",
        "rope_theta": 5e6,
        "mrope_section": [2, 3, 3],
        "mrope_interleaved": True,
    }
    config = Qwen3VLConfig(
        text_config=text_config,
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "patch_size": _PATCH_SIZE,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "out_hidden_size": 64,
            "num_position_embeddings": 16,
            "deepstack_visual_indexes": [0],
        },
        **_qwen_vision_token_ids(tokenizer),
        tie_word_embeddings=False,
    )
    make_processor = partial(_qwen_processor, "Qwen3VLProcessor", "Qwen3VLVideoProcessor", tokenizer, image_processor)
    _save_with_video_processor(config, tokenizer, image_processor, make_processor, output_dir)


# The chat template of llava-hf/llava-onevision-qwen2-*-ov-hf (transformers' conversion script).
LLAVA_ONEVISION_CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n'}}{# Render all images first #}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\\n' }}{% endfor %}"
    "{# Render all video then #}{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}"
    "{{ '<video>\\n' }}{% endfor %}{# Render all text next #}{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] }}{% endfor %}"
    "{% else %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{% generation %}"
    "{{ content['text'] }}{% endgeneration %}{% endfor %}{% endif %}{{'<|im_end|>' + '\\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def _llava_onevision(output_dir: Path) -> None:
    """LLaVA-OneVision (Qwen2 tokens, the converted checkpoints' template): a 32 px crop is 4x4 SigLIP patches, 16
    tokens; anyres tiles an image on the best of the grid points (up to 4x4 crops of 32 px) and the model packs
    the base image's 16 tokens, then the crops' unpadded token grid with `image_newline` closing each row; grids
    over 9 crops' worth of tokens are interpolated down (`anyres_max_9`, the real setting)."""
    tokenizer = byte_level_tokenizer(
        ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>"],
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        extra_special_tokens={"image_token": "<image>", "video_token": "<video>"},
        chat_template=LLAVA_ONEVISION_CHAT_TEMPLATE,
    )
    pinpoints = [[_IMAGE_SIZE * rows, _IMAGE_SIZE * cols] for rows in range(1, 5) for cols in range(1, 5)]
    image_processor = LlavaOnevisionImageProcessorPil(
        size={"height": _IMAGE_SIZE, "width": _IMAGE_SIZE}, image_grid_pinpoints=pinpoints
    )
    config = LlavaOnevisionConfig(
        text_config=_text_config("qwen2", len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id),
        vision_config=_vision_config(model_type="siglip_vision_model", vision_use_head=False),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        video_token_index=tokenizer.convert_tokens_to_ids("<video>"),
        image_grid_pinpoints=pinpoints,
        tie_word_embeddings=False,
    )

    def make_processor():
        from transformers import LlavaOnevisionProcessor, LlavaOnevisionVideoProcessor

        return LlavaOnevisionProcessor(
            image_processor,
            tokenizer,
            LlavaOnevisionVideoProcessor(size={"height": _IMAGE_SIZE, "width": _IMAGE_SIZE}),
            num_image_tokens=(_IMAGE_SIZE // _PATCH_SIZE) ** 2,
            vision_feature_select_strategy=config.vision_feature_select_strategy,
            chat_template=tokenizer.chat_template,
        )

    _save_with_video_processor(config, tokenizer, image_processor, make_processor, output_dir)


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


_BUILDERS = {
    "idefics2": _idefics2,
    "llava": _llava,
    "idefics3": _idefics3,
    "gemma3": _gemma3,
    "qwen2_5_vl": _qwen2_5_vl,
    "qwen3_vl": _qwen3_vl,
    "llava_onevision": _llava_onevision,
    "smolvlm": _smolvlm,
    "vipllava": _vipllava,
    "clip": _clip,
}


def tiny_architecture(checkpoint: str | os.PathLike) -> str:
    """The architecture a tiny checkpoint folder was built as."""
    return json.loads((Path(checkpoint) / _MARKER).read_text())["architecture"]


def paper_processor_kwargs(checkpoint: str | os.PathLike) -> dict:
    """The `processor_kwargs` that give the paper's one whole image per sample for a tiny checkpoint folder."""
    return dict(PAPER_PROCESSOR_KWARGS.get(tiny_architecture(checkpoint), {}))


def create_tiny_checkpoint(
    architecture: TinyArchitecture | Literal["clip", "vipllava"],
    output_dir: str | os.PathLike | None = None,
    seed: int = 0,
) -> Path:
    """Save a tiny randomly initialised checkpoint of `architecture` and return its folder.

    Without `output_dir` the folder lives in a cache (``$HF_FINEDEFICS_CACHE`` or
    ``$HF_HOME/finedefics``) keyed by architecture, seed and version, and is built once.
    The folder loads with `AutoModelForImageTextToText` / `AutoProcessor` (or `CLIPModel` /
    `CLIPProcessor` for ``"clip"``).
    """
    if architecture not in _BUILDERS:
        raise ValueError(f"Unknown tiny architecture {architecture!r}; choose from {sorted(_BUILDERS)}.")
    if output_dir is None:
        # With torchvision the folder also holds the full processor: another folder.
        with_processor = "-processor" if architecture in TORCHVISION_ARCHITECTURES and has_torchvision() else ""
        output_dir = finedefics_cache_dir() / "tiny" / f"{architecture}-seed{seed}-v{_TINY_VERSION}{with_processor}"
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
