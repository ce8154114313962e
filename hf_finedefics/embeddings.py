"""Global representations of objects, attribute descriptions and category names (paper sections 2 and 3.2).

- Object O_i: the visual token sequence S_o after the connector, with the LLM's [EOS] embedding appended,
  run through the LLM layers alone; the last hidden state is the object's representation.
- Text (attribute description A_i or category name C_i): tokens + [EOS] through the LLM; the hidden state
  at the last real token, found from the attention mask so left and right padding both work.

The low-level functions keep gradients (stage I); `encode_images` / `encode_texts` are the batched,
no-grad entry points for analysis, evaluation and the demo.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from PIL import Image
from tqdm.auto import tqdm
from transformers import BaseImageProcessor, BatchEncoding, PreTrainedTokenizerBase, ProcessorMixin
from transformers.modeling_outputs import BaseModelOutputWithPooling

from dataset_builders.images import to_rgb

from .backbones import VisionLanguageBackbone, get_backbone

Pooling = Literal["last", "mean"]


def last_token_pool(hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Hidden state at each row's last attended position, for left or right padding alike."""
    seq_len = attention_mask.shape[-1]
    last = seq_len - 1 - attention_mask.flip(-1).argmax(-1)
    return hidden_states[torch.arange(hidden_states.shape[0], device=hidden_states.device), last]


def mean_pool(hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    mask = attention_mask.unsqueeze(-1).to(hidden_states.dtype)
    return (hidden_states * mask).sum(1) / mask.sum(1).clamp(min=1)


def pool(hidden_states: torch.Tensor, attention_mask: torch.Tensor, pooling: Pooling) -> torch.Tensor:
    if pooling == "last":
        return last_token_pool(hidden_states, attention_mask)
    if pooling == "mean":
        return mean_pool(hidden_states, attention_mask)
    raise ValueError(f"pooling must be 'last' or 'mean', got {pooling!r}")


def _finish(embeddings: torch.Tensor, normalize: bool) -> torch.Tensor:
    return F.normalize(embeddings.float(), dim=-1) if normalize else embeddings


def object_embeddings(
    backbone: VisionLanguageBackbone,
    image_outputs: BaseModelOutputWithPooling,
    image_inputs: dict[str, torch.Tensor],
    *,
    append_eos: bool = True,
    pooling: Pooling = "last",
    normalize: bool = True,
) -> torch.Tensor:
    """Run each sample's visual tokens S_o (m_i, D) [+ EOS embedding] through the LLM layers alone.

    `image_outputs` is `backbone.image_features(image_inputs)`. Returns (B, D). Samples with different numbers
    of visual tokens are right-padded and masked.
    """
    visual_tokens = list(image_outputs.pooler_output)
    device = visual_tokens[0].device
    num_visual = torch.tensor([len(tokens) for tokens in visual_tokens], device=device)
    if append_eos:
        eos = backbone.input_embeddings(torch.tensor([backbone.eos_token_id], device=device))
        visual_tokens = [torch.cat([tokens, eos.to(tokens.dtype)], dim=0) for tokens in visual_tokens]
    lengths = torch.tensor([len(tokens) for tokens in visual_tokens], device=device)
    inputs_embeds = torch.nn.utils.rnn.pad_sequence(visual_tokens, batch_first=True)
    positions = torch.arange(inputs_embeds.shape[1], device=device)[None]
    attention_mask = (positions < lengths[:, None]).long()
    llm_inputs = {
        "attention_mask": attention_mask,
        **backbone.object_llm_inputs(image_inputs, image_outputs, positions < num_visual[:, None], attention_mask),
    }
    hidden = backbone.language_model(inputs_embeds=inputs_embeds, use_cache=False, **llm_inputs)
    return _finish(pool(hidden.last_hidden_state, attention_mask, pooling), normalize)


def text_embeddings(
    backbone: VisionLanguageBackbone,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    pooling: Pooling = "last",
    normalize: bool = True,
) -> torch.Tensor:
    """Run tokenized texts (already ending in EOS, see `tokenize_texts`) through the LLM; returns (N, D)."""
    hidden = backbone.language_model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
    return _finish(pool(hidden.last_hidden_state, attention_mask, pooling), normalize)


def tokenize_texts(
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    eos_token_id: int,
    max_length: int | None = None,
) -> BatchEncoding:
    """Tokenize texts and append [EOS] to each (keeping it when truncating), padded on the tokenizer's side."""
    encoded = tokenizer(list(texts), add_special_tokens=True, truncation=False)["input_ids"]
    sequences = []
    for ids in encoded:
        if ids and ids[-1] == eos_token_id:
            ids = ids[:-1]
        if max_length is not None:
            ids = ids[: max_length - 1]
        sequences.append([*ids, eos_token_id])
    return tokenizer.pad({"input_ids": sequences}, padding=True, return_tensors="pt")


def _tokenizer(processor: ProcessorMixin | PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    return getattr(processor, "tokenizer", processor)


def image_inputs(
    processor: ProcessorMixin | BaseImageProcessor, images: Sequence[Image.Image], backbone: VisionLanguageBackbone
) -> dict:
    """Image-only processor outputs (no text), keyed as the model's forward expects them. `processor` is the
    model's processor or its image processor."""
    image_processor = getattr(processor, "image_processor", processor)
    # One image per sample: nested lists keep multi-image processors (Idefics2) from merging samples.
    processed = image_processor([[to_rgb(image)] for image in images], return_tensors="pt")
    return backbone.image_inputs(processed)


@torch.no_grad()
def encode_images(
    model: torch.nn.Module,
    processor: ProcessorMixin,
    images: Sequence[Image.Image],
    *,
    batch_size: int = 16,
    append_eos: bool = True,
    pooling: Pooling = "last",
    normalize: bool = True,
    show_progress: bool = False,
) -> torch.Tensor:
    """Object embeddings for a list of PIL images, (N, D) float32 on CPU."""
    backbone = get_backbone(model)
    device = next(model.parameters()).device
    chunks = []
    for start in tqdm(range(0, len(images), batch_size), desc="Encoding images", disable=not show_progress):
        inputs = image_inputs(processor, images[start : start + batch_size], backbone)
        inputs = {key: value.to(device) for key, value in inputs.items()}
        inputs["pixel_values"] = inputs["pixel_values"].to(backbone.model.dtype)
        visual = backbone.image_features(inputs)
        chunks.append(
            object_embeddings(
                backbone, visual, inputs, append_eos=append_eos, pooling=pooling, normalize=normalize
            ).cpu()
        )
    return torch.cat(chunks).float()


@torch.no_grad()
def encode_texts(
    model: torch.nn.Module,
    processor: ProcessorMixin | PreTrainedTokenizerBase,
    texts: Sequence[str],
    *,
    batch_size: int = 64,
    pooling: Pooling = "last",
    normalize: bool = True,
    show_progress: bool = False,
) -> torch.Tensor:
    """Text (attribute description / category name) embeddings, (N, D) float32 on CPU."""
    backbone = get_backbone(model)
    tokenizer = _tokenizer(processor)
    device = next(model.parameters()).device
    chunks = []
    for start in tqdm(range(0, len(texts), batch_size), desc="Encoding texts", disable=not show_progress):
        batch = tokenize_texts(tokenizer, texts[start : start + batch_size], backbone.eos_token_id).to(device)
        chunks.append(
            text_embeddings(
                backbone, batch["input_ids"], batch["attention_mask"], pooling=pooling, normalize=normalize
            ).cpu()
        )
    return torch.cat(chunks).float()
