"""One module per `finedefics` command, after TRL's scripts: each has `make_parser()` (a `TrlParser` over its
dataclasses, so every command takes `--config file.yaml` and flags override it) and
`main(script_args, [training_args,] [model_args])`. `python -m hf_finedefics.scripts.<command>` runs one
(`accelerate launch -m ...` for the training stages)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

from trl import TrlParser

# Flags of earlier versions -> the one vocabulary every command now speaks.
RENAMED_FLAGS = {
    "--model": "--model_name_or_path",
    "--base_model": "--model_name_or_path",
    "--base-model": "--model_name_or_path",
    "--dataset": "--dataset_name",
    "--datasets": "--sources",
    "--out": "--output_dir",
    "--quantization": "--load_in_4bit / --load_in_8bit",
    "--split": "--dataset_split",
    "--source": "--sources (one or several; folders by --data_dir ROOT holding <name>/ or --source_dirs name=PATH)",
    "--mask_same_class_negatives": "--same_class_masking (duplicate_text: the paper; all_terms: the old True)",
}


def parse_command_line(parser: TrlParser, argv: Sequence[str] | None = None, keep: Sequence[str] = ()) -> list[Any]:
    """Parse `argv` (default: the process's) with `--config` support; a flag of the old vocabulary, or a value a
    config rejects, fails with one line naming it. `keep` lists old spellings that this command still uses with their old meaning."""
    argv = list(sys.argv[1:] if argv is None else argv)
    for argument in argv:
        flag = argument.split("=", 1)[0]
        if flag in RENAMED_FLAGS and flag not in keep:
            parser.error(f"{flag} was renamed: use {RENAMED_FLAGS[flag]}.")
    try:
        return parser.parse_args_and_config(argv)
    except (
        ValueError
    ) as error:  # a config's own validation: one line naming the problem (and the file), not a traceback
        config = next((argv[i + 1] for i, argument in enumerate(argv[:-1]) if argument == "--config"), None)
        parser.error(f"{config}: {error}" if config else str(error))


def run(make_parser: Callable[[], TrlParser], main: Callable[..., Any], keep: Sequence[str] = ()) -> None:
    """The entry point of `python -m hf_finedefics.scripts.<command>`."""
    main(*parse_command_line(make_parser(), keep=keep))
