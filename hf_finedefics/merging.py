"""Fold a LoRA adapter into its full-precision base model and save a standalone checkpoint.

The merged folder holds the weights, the generation config and the processor, so
`AutoModelForImageTextToText.from_pretrained` / `AutoProcessor.from_pretrained` load it with no peft involved.
Adapters trained with QLoRA are merged into the unquantized base: merging into 4-bit weights would round the
update away.

A merge is written into a side folder that is renamed into place once complete, with a marker file
(`MERGE_DONE_NAME`) written last: a kill at any point leaves no merged folder or a complete one, and a folder
without the marker (a merge killed by an earlier version) is taken as incomplete (`is_complete_merge`).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch

from .modeling import adapter_base_model, load_finedefics_model

# Written last into a merged folder: its presence means the merge finished.
MERGE_DONE_NAME = "finedefics_merge.json"


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
    if output_dir.is_dir() and any(output_dir.iterdir()) and not (output_dir / "config.json").is_file():
        raise FileExistsError(f"{output_dir} holds files that are not a model: merge into a new or empty folder.")
    partial = output_dir.with_name(f"{output_dir.name}.partial")
    if partial.exists():  # left by a killed merge
        shutil.rmtree(partial)
    model.save_pretrained(partial, max_shard_size=max_shard_size)
    processor.save_pretrained(partial)
    (partial / MERGE_DONE_NAME).write_text(json.dumps({"adapter": str(adapter), "base_model": str(base_model)}))
    if output_dir.exists():  # empty, or an earlier (possibly incomplete) merge: replaced
        shutil.rmtree(output_dir)
    partial.rename(output_dir)
    return output_dir


def is_complete_merge(folder: str | os.PathLike) -> bool:
    """Whether `folder` holds a merge that `merge_adapter` finished."""
    return (Path(folder) / MERGE_DONE_NAME).is_file()
