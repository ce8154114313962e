"""`finedefics merge`: fold a LoRA adapter (stage I or stage II) into its base model.

finedefics merge --adapter outputs/stage2 --output_dir outputs/finedefics-merged
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import TrlParser

from hf_finedefics.merging import merge_adapter


@dataclass
class MergeArguments:
    adapter: str = field(metadata={"help": "Hub id or local folder of the peft adapter to merge."})
    output_dir: str = field(metadata={"help": "Where to save the merged checkpoint and its processor."})
    base_model: str | None = field(
        default=None,
        metadata={"help": "Base model to merge into; defaults to the adapter's `base_model_name_or_path`."},
    )
    dtype: str = field(
        default="auto",
        metadata={
            "help": "Weight dtype of the merged model: 'auto' (the base's), 'float32', 'bfloat16' or 'float16'."
        },
    )
    revision: str | None = field(default=None, metadata={"help": "Hub revision of the base model."})
    adapter_revision: str | None = field(default=None, metadata={"help": "Hub revision of the adapter."})
    max_shard_size: str = field(default="5GB", metadata={"help": "Largest safetensors shard to write."})


def main(argv: list[str] | None = None) -> None:
    (args,) = TrlParser(MergeArguments).parse_args_and_config(argv)
    output_dir = merge_adapter(
        args.adapter,
        args.output_dir,
        base_model=args.base_model,
        dtype=args.dtype,
        revision=args.revision,
        adapter_revision=args.adapter_revision,
        max_shard_size=args.max_shard_size,
    )
    print(f"Merged {args.adapter} into its base model: {output_dir}")


if __name__ == "__main__":
    main()
