"""Where a stage that follows another starts: the base with the previous stage's adapter merged in.

Stage II starts from stage I's adapter merged into the base, stage III from stage II's; the merged model is saved
once beside the stage's output folder (quantizing for QLoRA needs a checkpoint on disk, and the new adapter must
name it) and reused when complete.
"""

from __future__ import annotations

import logging
from pathlib import Path

from transformers import TrainingArguments

from ..modeling import adapter_base_model, is_complete_merge, merge_adapter
from .model_config import FinedeficsModelConfig

logger = logging.getLogger(__name__)


def merged_starting_point(
    model_args: FinedeficsModelConfig,
    training_args: TrainingArguments,
    adapter: str | None,
    previous_stage: str,
    merged_base_dir: str | None = None,
) -> str:
    """The base itself when `adapter` is None, else the base with `adapter` (the `previous_stage`'s, e.g. "stage1")
    merged, saved to `merged_base_dir` (default: `<output_dir>-<previous_stage>-merged`)."""
    base = model_args.model_name_or_path
    if adapter is None:
        if base is None:
            raise ValueError(
                f"Set model_name_or_path (or {previous_stage}_adapter, whose recorded base is then used)."
            )
        return base
    base = base or adapter_base_model(adapter)
    if base is None:
        raise ValueError(f"{previous_stage}_adapter {adapter!r} is not a peft adapter folder or repo.")
    # Beside output_dir, not inside it: pushing the new adapter must not upload a full merged model.
    default_dir = Path(f"{Path(training_args.output_dir)}-{previous_stage}-merged")
    merged_dir = Path(merged_base_dir or default_dir).resolve()
    with training_args.main_process_first(desc=f"merging the {previous_stage} adapter"):
        if not is_complete_merge(merged_dir):
            if merged_dir.exists():
                logger.warning("%s is an incomplete merge (interrupted): merging again.", merged_dir)
            merge_adapter(adapter, merged_dir, base_model=base, dtype=model_args.dtype, overwrite=True)
    return str(merged_dir)
