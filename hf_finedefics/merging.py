"""Fold a LoRA adapter into its full-precision base model and save a standalone checkpoint.

The merged folder holds the weights, the generation config and the processor, so
`AutoModelForImageTextToText.from_pretrained` / `AutoProcessor.from_pretrained` load it with no peft involved.
Adapters trained with QLoRA are merged into the unquantized base: merging into 4-bit weights would round the
update away.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .modeling import adapter_base_model, load_finedefics_model


def merge_adapter(
    adapter: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    base_model: str | os.PathLike | None = None,
    dtype: str | torch.dtype = "auto",
    revision: str | None = None,
    adapter_revision: str | None = None,
    max_shard_size: str = "5GB",
) -> Path:
    """Merge `adapter` (Hub id or folder) into `base_model` (default: the base recorded in the adapter) and
    save the merged model and processor to `output_dir`, which is returned."""
    base_model = base_model or adapter_base_model(adapter, adapter_revision)
    if base_model is None:
        raise ValueError(f"{adapter!r} is not a peft adapter (no adapter_config.json).")
    model, processor = load_finedefics_model(
        base_model,
        adapter,
        dtype=dtype,
        merge_adapter=True,
        revision=revision,
        adapter_revision=adapter_revision,
    )
    output_dir = Path(output_dir)
    model.save_pretrained(output_dir, max_shard_size=max_shard_size)
    processor.save_pretrained(output_dir)
    return output_dir
