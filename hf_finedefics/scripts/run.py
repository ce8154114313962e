"""`finedefics run`: the whole pipeline (build -> stage I -> stage II -> evaluate -> analyze) from a run recipe.

    finedefics run                                   # the embedded default (recipes/tiny/config_run.yaml)
    finedefics run --config my_run.yaml --seed 1     # your recipe; flags override its top-level keys
    finedefics run --stage1.learning_rate 1e-4 --model.lora_r 16   # any key of a section: --SECTION.KEY VALUE
    finedefics run --print_config > my_run.yaml      # the resolved recipe, to edit and pass back with --config

With no recipe it runs the embedded default: the paper's Table 3 comparison on a generated fine-grained dataset
with a small MLLM of that world pretrained in-process (once, then cached), on CPU, in minutes.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path

from trl import TrlParser

from hf_finedefics.run.config import SECTION_NAMES, RunConfig, embedded_recipe_path
from hf_finedefics.scripts import run

EPILOG = (
    "Any key of a section: --SECTION.KEY VALUE, e.g. --stage1.learning_rate 1e-4, --model.lora_r 16, "
    "--data.synthetic.num_categories 10 (the value read as YAML; sections: " + ", ".join(SECTION_NAMES) + "); or "
    'several keys of one section as a mapping, e.g. --stage2 \'{"learning_rate": 1e-4, "num_train_epochs": 2}\'.'
)


def split_overrides(args: Sequence[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """(the other arguments, [(dotted key or section, value text)]) of a `finedefics run` command line."""
    rest, overrides = [], []
    args = iter(args)
    for argument in args:
        flag, equals, value = argument.partition("=")
        key = flag[2:].replace("-", "_") if flag.startswith("--") else ""
        if "." in key or key in SECTION_NAMES:
            if not equals:
                value = next(args, None)
                if value is None or value.startswith("--"):
                    raise ValueError(f"{flag} needs a value.")
            overrides.append((key, value))
        else:
            rest.append(argument)
    return rest, overrides


class RunParser(TrlParser):
    """A `TrlParser` over `RunConfig` whose `--config` defaults to the embedded recipe, which takes recipe keys as
    `--SECTION.KEY VALUE` and `--print_config`."""

    def __init__(self):
        super().__init__((RunConfig,), prog="finedefics run", epilog=EPILOG)
        self.add_argument(
            "--print_config",
            action="store_true",
            help="Print the resolved recipe (the --config file or the embedded one, with the flags applied) as YAML "
            "and exit without running: save it, edit it, and pass it back with --config.",
        )

    def parse_args_and_config(self, args: Sequence[str] | None = None, **kwargs):
        args = list(sys.argv[1:] if args is None else args)
        if args and not args[0].startswith("-"):
            self.error(f"pass the recipe as --config {args[0]}")
        if "--config" not in args:
            args = ["--config", str(embedded_recipe_path()), *args]
        try:
            args, overrides = split_overrides(args)
        except ValueError as error:
            self.error(str(error))
        config, options = super().parse_args_and_config(args, **kwargs)
        if overrides:
            from hf_finedefics.run.overrides import override_recipe, read_value

            recipe = dataclasses.asdict(config)
            for key, value in overrides:
                try:
                    recipe = override_recipe(recipe, key, read_value(value))
                except ValueError as error:  # names the flag: not the --config file's fault
                    self.error(str(error))
            config = RunConfig(**recipe)
        return config, options.print_config


def make_parser() -> TrlParser:
    return RunParser()


def main(config: RunConfig, print_config: bool = False) -> None:
    from hf_finedefics.run.pipeline import FinedeficsRun

    if print_config:
        import yaml

        FinedeficsRun(config)  # the whole recipe is checked, as a run checks it before any work
        print(yaml.safe_dump(dataclasses.asdict(config), sort_keys=False, default_flow_style=None), end="")
        return
    FinedeficsRun(config).run()
    print(f"\nFGVR accuracy on the test split, multiple choice and open set ({config.output_dir}/table3.md):\n")
    print((Path(config.output_dir) / "table3.md").read_text())
    print(f"\nReports: {config.output_dir}/evaluation/report.md, analyses: {config.output_dir}/analysis/")


if __name__ == "__main__":
    run(make_parser, main)
