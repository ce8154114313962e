"""Seconds `finedefics <command> --help` takes, per command (target: under 2 s each), and whether torch was
imported on the way.

    python benchmarks/cli_help.py                 # every command, best of 3 runs each
    python benchmarks/cli_help.py --repeats 5 demo evaluate

Each run is a fresh interpreter calling `hf_finedefics.cli.main([<command>, "--help"])`, so the numbers include
its start-up, as a user's shell sees them. It imports the `hf_finedefics` that `python` finds (PYTHONPATH, else the
installed package), not the current directory's: compare two checkouts with `PYTHONPATH=<checkout>`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from hf_finedefics.cli import COMMANDS

# Prints, after the help text went out, whether the heavy libraries were imported to produce it.
PROBE = (
    "import sys\n"
    "from hf_finedefics.cli import main\n"
    "try:\n"
    "    main({argv!r})\n"
    "except SystemExit:\n"
    "    pass\n"
    "print('HEAVY:' + ','.join(m for m in ('torch', 'transformers', 'trl', 'gradio') if m in sys.modules))\n"
)


def time_help(command: str) -> tuple[float, list[str]]:
    argv = [command, "--help"] if command else ["--help"]
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-P", "-c", PROBE.format(argv=argv)],  # -P: not the current directory's package
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    seconds = time.perf_counter() - start
    heavy = result.stdout.rsplit("HEAVY:", 1)[1].strip()
    return seconds, [name for name in heavy.split(",") if name]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("commands", nargs="*", default=["", *COMMANDS], help="commands ('' is `finedefics --help`)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per command; the fastest is reported")
    args = parser.parse_args()
    print(f"{'command':16s} {'seconds':>8s}  imported")
    for command in args.commands:
        runs = [time_help(command) for _ in range(args.repeats)]
        seconds = min(s for s, _ in runs)
        heavy = runs[0][1]
        print(f"{command or '(none)':16s} {seconds:8.2f}  {', '.join(heavy) or '-'}")


if __name__ == "__main__":
    main()
