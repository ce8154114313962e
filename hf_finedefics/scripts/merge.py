"""`finedefics merge`: fold a LoRA adapter (stage I or stage II) into its base model.

finedefics merge --adapter outputs/stage2 --output_dir outputs/finedefics-merged
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hf_finedefics.scripts import CommandParser, run
from hf_finedefics.trainer.model_config import FinedeficsModelConfig, unused_model_keys


@dataclass
class MergeArguments:
    adapter: str = field(metadata={"help": "Hub id or local folder of the peft adapter to merge."})
    output_dir: str = field(metadata={"help": "Where to save the merged checkpoint and its processor."})
    adapter_revision: str | None = field(default=None, metadata={"help": "Hub revision of the adapter."})
    max_shard_size: str = field(default="5GB", metadata={"help": "Largest safetensors shard to write."})
    overwrite: bool = field(
        default=False, metadata={"help": "Replace an --output_dir that already holds a model (an earlier merge)."}
    )


# A merge loads the base unquantized, in `dtype`, and trains nothing: these are the model keys it reads.
MERGE_MODEL_KEYS = ("model_name_or_path", "model_revision", "dtype")


def make_parser() -> CommandParser:
    return CommandParser(
        (MergeArguments, FinedeficsModelConfig), unused=unused_model_keys(MERGE_MODEL_KEYS), prog="finedefics merge"
    )


def main(script_args: MergeArguments, model_args: FinedeficsModelConfig) -> None:
    """`model_name_or_path` is the base to merge into (default: the adapter's `base_model_name_or_path`)."""
    from hf_finedefics.modeling import merge_adapter

    output_dir = merge_adapter(
        script_args.adapter,
        script_args.output_dir,
        base_model=model_args.model_name_or_path,
        dtype=model_args.dtype,
        revision=model_args.model_revision,
        adapter_revision=script_args.adapter_revision,
        max_shard_size=script_args.max_shard_size,
        overwrite=script_args.overwrite,
    )
    print(f"Merged {script_args.adapter} into its base model: {output_dir}")


if __name__ == "__main__":
    run(make_parser, main)
