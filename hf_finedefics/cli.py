"""The `finedefics` command: one subcommand per step of the pipeline.

Each subcommand lives in `hf_finedefics/scripts/<name>.py` with `make_parser()` and `main(...)`; modules are
imported only when their subcommand runs, so `finedefics --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import warnings

from hf_finedefics import __version__

# subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("hf_finedefics.scripts.run", "Run the whole pipeline from a recipe (default: the embedded tiny recipe)."),
    "build-dataset": (
        "hf_finedefics.scripts.build_dataset",
        "Build attribute triples, hard negatives and instructions.",
    ),
    "push-dataset": ("hf_finedefics.scripts.push_dataset", "Upload a built dataset folder to the Hub."),
    "stage1": ("hf_finedefics.scripts.stage1", "Stage I: attribute augmented contrastive learning."),
    "stage2": ("hf_finedefics.scripts.stage2", "Stage II: classification-centred instruction tuning."),
    "stage3": ("hf_finedefics.scripts.stage3", "Stage III: reinforcement fine-tuning with GRPO."),
    "merge": ("hf_finedefics.scripts.merge", "Merge an adapter into its base model."),
    "evaluate": ("hf_finedefics.scripts.evaluate", "Multiple-choice (Table 2) and open-set FGVR evaluation."),
    "analyze": ("hf_finedefics.scripts.analyze", "Probes, alignment, discriminability and t-SNE figures."),
    "push-adapter": ("hf_finedefics.scripts.push_adapter", "Upload an adapter with its model card to the Hub."),
    "demo": ("hf_finedefics.scripts.demo", "Start the Gradio demo."),
}


def quiet_library_notices() -> None:
    """Silence notices our commands trigger but a user cannot act on: bitsandbytes' CPU build asks on every import
    for a Hub-downloaded kernel package (and `kernels`, asked offline, says it skips that package's publisher
    check), and peft reads the `is_gradient_checkpointing` property transformers deprecated (once per adapter
    created or loaded)."""
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    logging.getLogger("kernels._internals.hf_hub").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)


def check_config_file(path: str) -> None:
    """Refuse a `--config` that is not a readable YAML file with one line naming it (the parser would raise
    IsADirectoryError or a multi-line YAML error)."""
    import yaml

    if not os.path.isfile(path):
        what = "is a folder" if os.path.isdir(path) else "does not exist"
        raise FileNotFoundError(f"--config {path} {what}: give a YAML recipe file.")
    try:
        with open(path, encoding="utf-8") as file:
            yaml.safe_load(file)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ValueError(f"--config {path} is not valid YAML{where}: {problem}.") from None


def one_line(error: BaseException) -> str:
    """The one line the console shows for `error`: an operating system error names its path (a full disk, a
    read-only folder), once."""
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        return f"{error.strerror}: {error.filename}"
    return str(error)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="finedefics", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("command", choices=sorted(COMMANDS), metavar="COMMAND", help="one of: " + ", ".join(COMMANDS))
    parser.epilog = "\n".join(f"  {name:14s} {help_}" for name, (_, help_) in COMMANDS.items())
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return
    command = parser.parse_args(argv[:1]).command
    module_name, _ = COMMANDS[command]
    quiet_library_notices()  # before the command's imports: bitsandbytes speaks when it is imported
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name != module_name:
            raise
        parser.exit(2, f"finedefics: the '{command}' command is not available in this version.\n")
    from hf_finedefics.scripts import parse_command_line

    sys.argv[0] = f"finedefics {command}"
    if "--config" in argv[1:-1]:
        check_config_file(argv[argv.index("--config", 1) + 1])
    parsed = parse_command_line(module.make_parser(), argv[1:])
    module.main(*parsed)


def console_main() -> None:
    """The `finedefics` executable: what a user got wrong (a value, a missing file) and what the system refused (a
    full disk, a read-only folder) is one line naming it, not a traceback; set FINEDEFICS_DEBUG=1 to see the
    traceback."""
    try:
        main()
    except (ValueError, OSError) as error:
        if os.environ.get("FINEDEFICS_DEBUG"):
            raise
        command = " ".join(sys.argv[:1]) if sys.argv[0].startswith("finedefics ") else "finedefics"
        sys.exit(f"{command}: error: {one_line(error)}")


if __name__ == "__main__":
    console_main()
