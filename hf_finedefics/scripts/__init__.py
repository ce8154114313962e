"""One module per `finedefics` command, after TRL's scripts: each has `make_parser()` (a `TrlParser` over its
dataclasses, so every command takes `--config file.yaml` and flags override it) and
`main(script_args, [training_args,] [model_args])`. `python -m hf_finedefics.scripts.<command>` runs one
(`accelerate launch -m ...` for the training stages)."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any

from trl import TrlParser

# Flags of earlier versions -> (their new spelling, what else to know). A hint applies to a command that takes the
# new flag(s) and not the old one (`finedefics run` keeps its own `--base_model`, build-dataset its `--split`).
RENAMED_FLAGS: dict[str, tuple[tuple[str, ...], str]] = {
    "--model": (("--model_name_or_path",), ""),
    "--base_model": (("--model_name_or_path",), ""),
    "--base-model": (("--model_name_or_path",), ""),
    "--dataset": (("--dataset_name",), ""),
    "--datasets": (("--sources",), ""),
    "--out": (("--output_dir",), ""),
    "--quantization": (("--load_in_4bit", "--load_in_8bit"), ""),
    "--split": (("--dataset_split",), ""),
    "--source": (
        ("--sources",),
        " (one or several; folders by --data_dir ROOT holding <name>/ or --source_dirs name=PATH)",
    ),
    "--mask_same_class_negatives": (
        ("--same_class_masking",),
        " (duplicate_text: the paper; all_terms: the old True)",
    ),
}

# Keys of TRL's ModelConfig that `FinedeficsModelConfig` takes out of every command, and why.
REFUSED_KEYS = {
    "lora_task_type": "each stage sets its own LoRA task type (stage I none, stages II and III CAUSAL_LM)",
    "lora_target_parameters": "LoRA goes on modules here: name them with --lora_target_modules",
}


class CommandParser(TrlParser):
    """A `TrlParser` that leaves out the fields in `unused` (a shared config's keys this command never reads, such as
    the LoRA settings for a command that trains nothing): its --help lists only what the command uses, and such a
    flag is refused rather than silently ignored."""

    def __init__(self, dataclass_types: Iterable[type], unused: Collection[str] = (), **kwargs):
        self.unused = frozenset(unused)
        super().__init__(dataclass_types, **kwargs)

    def _parse_dataclass_field(self, parser, field: dataclasses.Field) -> None:
        if field.name not in self.unused:
            super()._parse_dataclass_field(parser, field)
        else:  # no flag, but the dataclass is still built from the namespace: its default goes there
            default = field.default if field.default_factory is dataclasses.MISSING else field.default_factory()
            self.set_defaults(**{field.name: default})


def _check_flags(parser: TrlParser, argv: Sequence[str]) -> None:
    """Refuse, naming what to write instead, a flag of the old vocabulary and one this command leaves out."""
    known = parser._option_string_actions
    for argument in argv:
        flag = argument.split("=", 1)[0]
        if not flag.startswith("--") or flag in known:
            continue
        new, note = RENAMED_FLAGS.get(flag, ((), ""))
        if new and all(spelling in known for spelling in new):
            parser.error(f"{flag} was renamed: use {' / '.join(new)}{note}.")
        name = flag[2:].replace("-", "_")
        if name in REFUSED_KEYS:
            parser.error(f"{flag} is not supported: {REFUSED_KEYS[name]}.")
        if name in getattr(parser, "unused", ()):
            parser.error(f"{parser.prog} does not use {flag} (`{parser.prog} --help` lists its settings).")


def parse_command_line(parser: TrlParser, argv: Sequence[str] | None = None) -> list[Any]:
    """Parse `argv` (default: the process's) with `--config` support; a flag of the old vocabulary, one the command
    does not use, or a value a config rejects, fails with one line naming it."""
    argv = list(sys.argv[1:] if argv is None else argv)
    _check_flags(parser, argv)
    try:
        return parser.parse_args_and_config(argv)
    except ValueError as error:  # a config's own validation: one line naming the problem (and the file)
        config = next((argv[i + 1] for i, argument in enumerate(argv[:-1]) if argument == "--config"), None)
        parser.error(f"{config}: {error}" if config else str(error))


def run(make_parser: Callable[[], TrlParser], main: Callable[..., Any]) -> None:
    """The entry point of `python -m hf_finedefics.scripts.<command>`."""
    main(*parse_command_line(make_parser()))
