"""Load a Finedefics model in one call: a full checkpoint, or a base model with a LoRA adapter on top.

Every part of the project that needs a model (both stages, merging, evaluation, analyses, the demo) goes through
`load_finedefics_model`, so an adapter folder, an adapter repo on the Hub and a merged checkpoint are all
interchangeable wherever a model is asked for.

A stage II adapter trained on the base with the stage I adapter merged in, as `finedefics push-adapter` publishes
it, is one repo: the stage II adapter on top, with `STAGES_NAME` naming a subfolder holding either the stage I
adapter (merged into the base on loading) or the merged base itself. `load_finedefics_model(repo)` rebuilds it.

`merge_adapter` folds a LoRA adapter into its full-precision base and saves a standalone checkpoint (weights,
generation config, processor) that plain `from_pretrained` loads. QLoRA adapters are merged into the unquantized
base: merging into 4-bit weights would round the update away.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Literal

import torch
from huggingface_hub import hf_hub_download, snapshot_download
from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError
from peft import PeftModel
from transformers import AutoModelForImageTextToText, AutoProcessor, BitsAndBytesConfig, ProcessorMixin

from .backbones import get_backbone

ADAPTER_CONFIG_NAME = "adapter_config.json"
# Written last into a merged folder: its presence means the merge finished.
MERGE_DONE_NAME = "finedefics_merge.json"
# In a published stage II repo: {"stage1_adapter": subfolder} or {"merged_base": subfolder}, what its base is made of.
STAGES_NAME = "finedefics_stages.json"
STAGE_PARTS = ("stage1_adapter", "merged_base")
# Files that mark a folder as carrying a saved processor (newer and older transformers layouts).
_PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json")
Quantization = Literal["4bit", "8bit"] | BitsAndBytesConfig | None


def _local_file(model_id_or_path: str | os.PathLike, filename: str, revision: str | None) -> Path | None:
    """`filename` of a local folder or of a Hub repo (fetched), or None when it cannot be found.

    An unreachable repo also gives None: `from_pretrained` then reports the problem with its own clear message.
    """
    folder = Path(model_id_or_path)
    if folder.is_dir():
        path = folder / filename
        return path if path.is_file() else None
    try:
        return Path(hf_hub_download(str(model_id_or_path), filename, revision=revision))
    except (EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError):
        return None


def adapter_base_model(adapter: str | os.PathLike, revision: str | None = None) -> str | None:
    """The base model an adapter was trained on (its `base_model_name_or_path`), or None if `adapter` is not a
    peft adapter. A base recorded relative to a local adapter folder (`record_relative_base_model`) is returned as
    a path from here."""
    config_file = _local_file(adapter, ADAPTER_CONFIG_NAME, revision)
    if config_file is None:
        return None
    base = json.loads(config_file.read_text()).get("base_model_name_or_path")
    if not base:
        raise ValueError(
            f"{config_file} has no base_model_name_or_path: set it to the Hub id or folder of the model the adapter "
            "was trained on (or pass the base as --model_name_or_path)."
        )
    relative_to_adapter = Path(adapter) / base
    if Path(adapter).is_dir() and not Path(base).is_absolute() and relative_to_adapter.is_dir():
        return os.path.normpath(relative_to_adapter)
    return base


def published_stages(repo: str | os.PathLike, revision: str | None = None) -> tuple[str, Path] | None:
    """For a stage II repo (Hub id or folder) published with its base's parts (`STAGES_NAME`): the part
    ("stage1_adapter" or "merged_base") and its folder here (fetched from the Hub: that subfolder only). None for
    any other model or adapter."""
    stages_file = _local_file(repo, STAGES_NAME, revision)
    if stages_file is None:
        return None
    stages = json.loads(stages_file.read_text())
    parts = [part for part in STAGE_PARTS if part in stages]
    if len(parts) != 1:
        raise ValueError(f"{STAGES_NAME} of {repo} must name exactly one of {', '.join(STAGE_PARTS)}; got {stages}.")
    subfolder = stages[parts[0]]
    if Path(repo).is_dir():
        return parts[0], Path(repo) / subfolder
    return parts[0], Path(
        snapshot_download(str(repo), revision=revision, allow_patterns=[f"{subfolder}/*"])
    ) / subfolder


def record_relative_base_model(adapter_dir: str | os.PathLike, root: str | os.PathLike) -> None:
    """Record the base of the adapter saved in `adapter_dir` relative to that folder when the base is a local folder
    inside `root` (stage II's merged base beside its output folder, in a run folder): moving or copying `root` as a
    whole then keeps the adapter loadable. Other bases (Hub ids, folders elsewhere) are left as they are."""
    config_file = Path(adapter_dir) / ADAPTER_CONFIG_NAME
    if not config_file.is_file():
        return
    config = json.loads(config_file.read_text())
    base = Path(config["base_model_name_or_path"] or "")
    if not base.is_absolute() or not base.is_dir() or not base.is_relative_to(Path(root).resolve()):
        return
    config["base_model_name_or_path"] = os.path.relpath(base, Path(adapter_dir).resolve())
    config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def quantization_config(
    quantization: Quantization,
    compute_dtype: str | torch.dtype = torch.bfloat16,
    *,
    quant_type: str = "nf4",
    nested: bool = False,
    quant_storage: str | torch.dtype | None = None,
) -> BitsAndBytesConfig | None:
    """bitsandbytes settings for "4bit" (QLoRA: NF4 with `compute_dtype`; `nested` quantizes the constants too;
    `quant_storage` is the packed weights' dtype, which FSDP needs equal to the compute dtype) or "8bit"; a config
    passes through."""
    if quantization is None or isinstance(quantization, BitsAndBytesConfig):
        return quantization
    if quantization == "4bit":
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=quant_type,
            bnb_4bit_compute_dtype=compute_dtype,
            bnb_4bit_use_double_quant=nested,
            bnb_4bit_quant_storage=quant_storage or torch.uint8,
        )
    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    raise ValueError(f"quantization must be None, '4bit', '8bit' or a BitsAndBytesConfig, got {quantization!r}")


def load_processor(
    model_id_or_path: str | os.PathLike,
    adapter: str | os.PathLike | None = None,
    *,
    revision: str | None = None,
    adapter_revision: str | None = None,
    processor_kwargs: dict[str, Any] | None = None,
) -> ProcessorMixin:
    """The adapter's processor when it ships one (training saves it next to the adapter), else the base model's.
    `processor_kwargs` go to `AutoProcessor.from_pretrained` (e.g. `do_image_splitting=False`)."""
    processor_kwargs = processor_kwargs or {}
    if adapter is not None and any(
        _local_file(adapter, name, adapter_revision) is not None for name in _PROCESSOR_FILES
    ):
        return AutoProcessor.from_pretrained(adapter, revision=adapter_revision, **processor_kwargs)
    return AutoProcessor.from_pretrained(model_id_or_path, revision=revision, **processor_kwargs)


def load_finedefics_model(
    model_id_or_path: str | os.PathLike,
    adapter: str | os.PathLike | None = None,
    *,
    quantization: Quantization = None,
    dtype: str | torch.dtype = "auto",
    merge_adapter: bool = False,
    is_trainable: bool = False,
    device_map: str | dict | None = None,
    revision: str | None = None,
    adapter_revision: str | None = None,
    processor_kwargs: dict[str, Any] | None = None,
    require_backbone: bool = True,
    **model_kwargs,
) -> tuple[torch.nn.Module, ProcessorMixin]:
    """Load a vision-language model and its processor, with an optional LoRA adapter on top.

    Args:
        model_id_or_path: Hub id or local folder of a full checkpoint, or of a peft adapter (adapter_config.json),
            in which case the base model recorded in the adapter is loaded under it. A published stage II repo
            (`published_stages`) builds its base from its own parts: the recorded base with the stage I adapter
            merged in, or the merged base it ships.
        adapter: Hub id or local folder of a peft adapter to put on `model_id_or_path` (the base model).
        quantization: None (full precision), "4bit" (NF4, compute in `dtype`, or bf16 if `dtype` is "auto"),
            "8bit", or a `BitsAndBytesConfig`.
        dtype: Weight dtype ("auto" keeps the checkpoint's).
        merge_adapter: Fold the adapter into the base weights and return a plain transformers model. Not possible
            on a quantized model: merge with `hf_finedefics.modeling.merge_adapter`, which uses full precision.
        is_trainable: Keep the adapter's weights trainable (to continue training it).
        device_map: Passed to `from_pretrained` (e.g. "auto" for multi-GPU inference).
        revision / adapter_revision: Hub revisions of the base model and of the adapter.
        processor_kwargs: `AutoProcessor.from_pretrained` arguments (e.g. `do_image_splitting=False`).
        require_backbone: Refuse a family without a Finedefics backbone adapter (training, embeddings and the
            analyses need one); False loads any `AutoModelForImageTextToText` (zero-shot evaluation needs only its
            processor, logits and `generate`).
        model_kwargs: Extra `from_pretrained` arguments (e.g. `attn_implementation`).

    Returns:
        `(model, processor)`: the model in eval mode (a `peft.PeftModel` when an adapter is loaded and not merged).
    """
    stage1_adapter = None  # merged into the base before `adapter` goes on top
    if adapter is None:
        stages = published_stages(model_id_or_path, revision)
        if stages is not None:
            part, folder = stages
            model_id_or_path, adapter, adapter_revision, revision = folder, model_id_or_path, revision, None
            if part == "stage1_adapter":
                stage1_adapter, model_id_or_path = folder, adapter_base_model(folder)
        else:
            recorded_base = adapter_base_model(model_id_or_path, revision)
            if recorded_base is not None:
                model_id_or_path, adapter, adapter_revision, revision = recorded_base, model_id_or_path, revision, None
    if (merge_adapter or stage1_adapter is not None) and quantization is not None:
        raise ValueError(
            "Cannot merge an adapter into a quantized model; load in full precision to merge (a stage II repo that "
            "ships its stage I adapter merges it on loading: merge it once with `merge_adapter` and quantize that)."
        )

    compute_dtype = torch.bfloat16 if dtype == "auto" else dtype
    model = AutoModelForImageTextToText.from_pretrained(
        model_id_or_path,
        revision=revision,
        dtype=dtype,
        quantization_config=quantization_config(quantization, compute_dtype),
        device_map=device_map,
        **model_kwargs,
    )
    if stage1_adapter is not None:
        model = PeftModel.from_pretrained(model, stage1_adapter).merge_and_unload()
    if require_backbone:
        get_backbone(model)  # fail early, with the list of supported families, on an unsupported architecture
    processor = load_processor(
        model_id_or_path,
        adapter,
        revision=revision,
        adapter_revision=adapter_revision,
        processor_kwargs=processor_kwargs,
    )
    if adapter is not None:
        model = PeftModel.from_pretrained(model, adapter, revision=adapter_revision, is_trainable=is_trainable)
        if merge_adapter:
            model = model.merge_and_unload()
    if not is_trainable:
        model.eval()
    return model, processor


def merge_adapter(
    adapter: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    base_model: str | os.PathLike | None = None,
    dtype: str | torch.dtype = "auto",
    revision: str | None = None,
    adapter_revision: str | None = None,
    max_shard_size: str = "5GB",
    overwrite: bool = False,
) -> Path:
    """Merge `adapter` (Hub id or folder) into `base_model` (default: the base recorded in the adapter; for a
    published stage II repo, the base it rebuilds, see `published_stages`) and save the merged model and processor
    to `output_dir`, which is returned.

    `output_dir` is never the base or the adapter (nor a folder holding them). An existing non-empty `output_dir` is
    replaced only with `overwrite`, and only when it holds a model (an earlier merge); checked before loading."""
    # A stage II repo's own base is built from its parts: loading it alone does that (its recorded base lacks stage I).
    rebuilds_base = base_model is None and published_stages(adapter, adapter_revision) is not None
    base_model = base_model or adapter_base_model(adapter, adapter_revision)
    if base_model is None:
        raise ValueError(f"{adapter!r} is not a peft adapter (no adapter_config.json).")
    output_dir = Path(output_dir)
    _check_merge_target(output_dir, {"base model": base_model, "adapter": adapter}, overwrite)
    model, processor = load_finedefics_model(
        adapter if rebuilds_base else base_model,
        None if rebuilds_base else adapter,
        dtype=dtype,
        merge_adapter=True,
        revision=adapter_revision if rebuilds_base else revision,
        adapter_revision=adapter_revision,
    )
    # Written into a side folder renamed into place when complete, with a marker written last: a kill at any point
    # leaves no merged folder or a complete one (`is_complete_merge`).
    partial = output_dir.with_name(f"{output_dir.name}.partial")
    if partial.exists():  # left by a killed merge
        shutil.rmtree(partial)
    model.save_pretrained(partial, max_shard_size=max_shard_size)
    processor.save_pretrained(partial)
    # Local sources are recorded absolute: publishing the stage II adapter trained on this merge finds them.
    record = {role: os.path.abspath(source) if Path(source).is_dir() else str(source)
              for role, source in (("adapter", adapter), ("base_model", base_model))}  # fmt: skip
    (partial / MERGE_DONE_NAME).write_text(json.dumps(record))
    if output_dir.exists():  # empty, or a model `overwrite` allows replacing
        shutil.rmtree(output_dir)
    partial.rename(output_dir)
    return output_dir


def _check_merge_target(output_dir: Path, sources: dict[str, str | os.PathLike], overwrite: bool) -> None:
    """Refuse an `output_dir` whose replacement would delete a merge's own input, or anything not asked for."""
    target = output_dir.resolve()
    for role, source in sources.items():
        # A Hub id is no local folder; a folder is compared resolved, so "./base" and "base/" are caught too.
        if Path(source).is_dir() and Path(source).resolve().is_relative_to(target):
            raise ValueError(
                f"--output_dir {output_dir} is (or holds) the {role} {source}: replacing it would delete the "
                "merge's own input. Choose another output folder."
            )
    if not output_dir.is_dir() or not any(output_dir.iterdir()):
        return
    if not (output_dir / "config.json").is_file():
        raise ValueError(f"{output_dir} holds files that are not a model: merge into a new or empty folder.")
    if not overwrite:
        raise ValueError(f"{output_dir} already holds a model: pass --overwrite to replace it.")


def is_complete_merge(folder: str | os.PathLike) -> bool:
    """Whether `folder` holds a merge that `merge_adapter` finished (a folder without the marker is one a kill
    interrupted, possibly under an earlier version that wrote in place)."""
    return (Path(folder) / MERGE_DONE_NAME).is_file()
