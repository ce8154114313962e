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
    for a Hub-downloaded kernel package, and peft reads the `is_gradient_checkpointing` property transformers
    deprecated (once per adapter created or loaded)."""
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="finedefics", description=__doc__.splitlines()[0])
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
    parsed = parse_command_line(module.make_parser(), argv[1:], keep=getattr(module, "KEPT_FLAGS", ()))
    module.main(*parsed)


def console_main() -> None:
    """The `finedefics` executable: what a user got wrong (a value, a missing file) is one line naming it, not a
    traceback; set FINEDEFICS_DEBUG=1 to see the traceback."""
    try:
        main()
    except (ValueError, FileNotFoundError, NotADirectoryError) as error:
        if os.environ.get("FINEDEFICS_DEBUG"):
            raise
        command = " ".join(sys.argv[:1]) if sys.argv[0].startswith("finedefics ") else "finedefics"
        sys.exit(f"{command}: error: {error}")


if __name__ == "__main__":
    console_main()
