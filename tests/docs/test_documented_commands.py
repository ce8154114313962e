"""Every documented `finedefics ...` command line parses with its command's own parser (parse only, nothing runs).

The lines are those of the fenced code blocks of README.md, docs/*.md, recipes/**/README.md and spaces_app/README.md,
of the recipes' YAML header comments and of the commands' own docstrings (`finedefics <command>` and `accelerate
launch ... -m hf_finedefics.scripts.<command>`), continuation lines joined. A placeholder stands for a value the
reader fills in: `<hub id>` and `...` become a dummy value, `[--flag VALUE]` its flag, and a recipe of the reader's
own (`--config my_run.yaml`) the embedded recipe for `run`, an empty one for the other commands. The training
commands are told they are on CPU (`--use_cpu true`: their bf16 lines are for GPUs) and, where vLLM is not
installed, to sample without it (`--use_vllm false`: the check that it is installed is not the line's).
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
import shlex
from pathlib import Path

import pytest

from hf_finedefics.cli import COMMANDS
from hf_finedefics.run.config import embedded_recipe_path
from hf_finedefics.scripts import parse_command_line

REPO_ROOT = Path(__file__).resolve().parents[2]
MARKDOWN = [
    REPO_ROOT / "README.md",
    *sorted((REPO_ROOT / "docs").glob("*.md")),
    *sorted((REPO_ROOT / "recipes").glob("**/README.md")),
    REPO_ROOT / "spaces_app" / "README.md",
]
MODULES = {module: command for command, (module, _) in COMMANDS.items()}
SHELL_OPERATORS = {">", ">>", "|", "&&", ";", "2>&1"}
TRAINING_COMMANDS = ("stage1", "stage2", "stage3")


def _joined(lines: list[str]) -> list[tuple[int, str]]:
    """(line number, text) of each logical line, `\\`-continued lines joined."""
    joined, start, current = [], 0, ""
    for number, line in enumerate(lines, 1):
        if not current:
            start = number
        current += line.strip()
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        joined.append((start, current))
        current = ""
    return joined


def _markdown_lines(path: Path) -> list[tuple[int, str]]:
    lines, fenced, offset = [], None, 0
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.lstrip().startswith("```"):
            if fenced is None:
                fenced, offset = [], number
            else:
                lines += [(offset + n, text) for n, text in _joined(fenced)]
                fenced = None
        elif fenced is not None:
            fenced.append(line)
    return lines


def _yaml_header_lines(path: Path) -> list[tuple[int, str]]:
    comments = [line.lstrip("#") if line.startswith("#") else "" for line in path.read_text().splitlines()]
    return _joined(comments)


def _docstring_lines(path: Path) -> list[tuple[int, str]]:
    return _joined((ast.get_docstring(ast.parse(path.read_text())) or "").splitlines())


def documented_lines() -> list[tuple[str, str]]:
    sources = [(path, _markdown_lines) for path in MARKDOWN]
    sources += [(path, _yaml_header_lines) for path in sorted((REPO_ROOT / "recipes").glob("**/*.yaml"))]
    sources += [(path, _docstring_lines) for path in sorted((REPO_ROOT / "hf_finedefics" / "scripts").glob("*.py"))]
    found = []
    for path, read in sources:
        for number, text in read(path):
            if text.startswith(("finedefics ", "accelerate launch ")) or text == "finedefics":
                found.append((f"{path.relative_to(REPO_ROOT)}:{number}", text))
    return found


def command_argv(text: str) -> tuple[str, list[str]]:
    """(command, its arguments) of a documented line, placeholders filled in."""
    text = re.sub(r"<[^<>]+>", "PLACEHOLDER", text)
    text = re.sub(r"\[(--[^\[\]]+)\]", r"\1", text)
    argv = shlex.split(text, comments=True)
    argv = argv[: next((i for i, token in enumerate(argv) if token in SHELL_OPERATORS), len(argv))]
    argv = ["PLACEHOLDER" if token == "..." else token for token in argv]
    if argv[0] == "accelerate":
        module = argv[argv.index("-m") + 1]
        assert module in MODULES, f"launches {module}, which is no finedefics command"
        return MODULES[module], argv[argv.index("-m") + 2 :]
    assert len(argv) > 1 and argv[1] in COMMANDS, f"{argv[1:2]} is no finedefics command"
    return argv[1], argv[2:]


LINES = documented_lines()


def test_the_documentation_has_command_lines_to_check():
    files = {where.split(":")[0] for where, _ in LINES}
    assert len(LINES) > 30 and "spaces_app/README.md" in files
    assert any(name.startswith("recipes/") and name.endswith(".yaml") for name in files)


@pytest.mark.parametrize("text", [text for _, text in LINES], ids=[where for where, _ in LINES])
def test_a_documented_command_line_parses(text, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(REPO_ROOT)  # the recipes' paths are relative to the repository
    command, argv = command_argv(text)
    if "--config" in argv and not Path(argv[argv.index("--config") + 1]).is_file():
        stand_in = tmp_path / "recipe.yaml"
        stand_in.write_text(embedded_recipe_path().read_text() if command == "run" else "{}\n")
        argv[argv.index("--config") + 1] = str(stand_in)
    if command in TRAINING_COMMANDS:
        argv += ["--use_cpu", "true"]
    if command == "stage3" and importlib.util.find_spec("vllm") is None:
        argv += ["--use_vllm", "false"]
    parser = importlib.import_module(COMMANDS[command][0]).make_parser()
    try:
        parse_command_line(parser, argv)
    except SystemExit:
        pytest.fail(f"`{text}` does not parse: {capsys.readouterr().err.strip().splitlines()[-1]}")
