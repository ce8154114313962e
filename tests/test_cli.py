"""The `finedefics` executable: one vocabulary of flags, and user mistakes reported in one line."""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml
from PIL import Image

from hf_finedefics.cli import COMMANDS
from hf_finedefics.cli import main as finedefics
from hf_finedefics.scripts import RENAMED_FLAGS, parse_command_line

# Their parser is built over transformers' TrainingArguments (TRL's SFTConfig and GRPOConfig for stages II and III),
# which imports torch: their --help cannot skip it (benchmarks/cli_help.py measures what that costs).
TRAINING_COMMANDS = ("stage1", "stage2", "stage3")
# Prints, after a command's --help, which heavy libraries producing it imported.
HELP_PROBE = """import sys
from hf_finedefics.cli import main
try:
    main([{command!r}, "--help"])
except SystemExit:
    pass
print(sorted(name for name in ("torch", "transformers", "datasets", "gradio") if name in sys.modules))
"""


def _run(*args: str, **env: str) -> subprocess.CompletedProcess:
    executable = shutil.which("finedefics")
    if executable is None:
        pytest.skip("the finedefics executable is not installed (pip install -e .)")
    return subprocess.run([executable, *args], capture_output=True, text=True, timeout=300, env={**os.environ, **env})


def test_a_missing_source_folder_is_one_line_naming_the_file(tmp_path):
    missing = tmp_path / "no-such-pets"
    result = _run("build-dataset", "--sources", "pet-37", "--source_dirs", f"pet-37={missing}", "--output_dir",
                  str(tmp_path / "out"), "--negatives", "random")  # fmt: skip
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert f"finedefics build-dataset: error: Missing metadata file: {missing}" in result.stderr
    debug = _run("build-dataset", "--sources", "pet-37", "--source_dirs", f"pet-37={missing}", "--output_dir",
                 str(tmp_path / "out"), "--negatives", "random", FINEDEFICS_DEBUG="1")  # fmt: skip
    assert "Traceback" in debug.stderr


@pytest.mark.parametrize(
    ("command", "old", "new"),
    [
        ("build-dataset", "--out", "--output_dir"),
        ("evaluate", "--model", "--model_name_or_path"),
        ("evaluate", "--datasets", "--sources"),
        ("analyze", "--dataset", "--dataset_name"),
        ("push-adapter", "--base-model", "--model_name_or_path"),
    ],
)
def test_old_flag_spellings_name_the_new_one(command, old, new, capsys):
    with pytest.raises(SystemExit):
        finedefics([command, old, "x"])
    assert f"{old} was renamed: use {new}" in capsys.readouterr().err


def test_version(capsys):
    from hf_finedefics import __version__

    with pytest.raises(SystemExit) as exit_info:
        finedefics(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.strip() == f"finedefics {__version__}"


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_renamed_flag_hint_names_a_flag_the_command_takes(command, capsys):
    """`finedefics run --base_model X` hinted --model_name_or_path, which `run` then rejected: a hint applies to the
    commands that take its new spelling, and never to a command whose own flag has the old one."""
    parser = importlib.import_module(COMMANDS[command][0]).make_parser()
    for old in RENAMED_FLAGS:
        with contextlib.suppress(SystemExit):  # an old spelling a command keeps parses on
            parse_command_line(parser, [old, "x"])
        hint = re.search(r"was renamed: use (\S+)", capsys.readouterr().err)
        if old in parser._option_string_actions:
            assert hint is None, (command, old)
        elif hint is not None:
            assert hint[1].rstrip(".") in parser._option_string_actions, (command, old)


# The model settings only training reads, and those only loading does.
LORA_FLAGS = ("--use_peft", "--lora_r", "--lora_alpha", "--lora_dropout", "--lora_target_modules",
              "--lora_modules_to_save", "--use_rslora", "--use_dora")  # fmt: skip
LOADING_FLAGS = ("--load_in_4bit", "--load_in_8bit", "--attn_implementation", "--processor_kwargs", "--device_map")


@pytest.mark.parametrize(
    ("command", "refused", "kept"),
    [
        ("merge", LORA_FLAGS + LOADING_FLAGS, ("--model_name_or_path", "--model_revision", "--dtype")),
        ("evaluate", LORA_FLAGS, ("--model_name_or_path", "--dtype", *LOADING_FLAGS)),
        ("analyze", LORA_FLAGS, ("--model_name_or_path", "--dtype", *LOADING_FLAGS)),
    ],
)
def test_a_command_that_trains_nothing_takes_no_training_flag(command, refused, kept, capsys):
    """Its --help lists only what it uses, and a flag it would ignore is refused naming it."""
    parser = importlib.import_module(COMMANDS[command][0]).make_parser()
    listed = set(re.findall(r"--[a-z0-9_]+", parser.format_help()))
    assert listed.isdisjoint(refused) and listed.issuperset(kept)
    for flag in refused:
        with pytest.raises(SystemExit):
            parse_command_line(parser, ["--model_name_or_path", "m", flag, "1"])
        assert f"finedefics {command} does not use {flag}" in capsys.readouterr().err


@pytest.mark.parametrize("command", TRAINING_COMMANDS)
@pytest.mark.parametrize("flag", ["--lora_task_type", "--lora_target_parameters", "--lora-task-type"])
def test_lora_flags_no_stage_reads_are_refused(command, flag, capsys):
    """TRL's ModelConfig takes them; every stage ignored them (each sets its own task type, LoRA goes on modules)."""
    parser = importlib.import_module(COMMANDS[command][0]).make_parser()
    assert flag not in parser.format_help()
    with pytest.raises(SystemExit):
        parse_command_line(parser, ["--dataset_name", "d", "--output_dir", "o", flag, "SEQ_CLS"])
    assert f"{flag} is not supported: " in capsys.readouterr().err


def test_every_command_reads_a_config_file(tmp_path, capsys):
    """`--config` works for build-dataset too, and a bad value in it is refused naming the option."""
    config = tmp_path / "build.yaml"
    config.write_text(f"sources: [pet-37]\ndata_dir: {tmp_path}\noutput_dir: {tmp_path / 'out'}\nnegatives: clip\n")
    with pytest.raises(SystemExit):
        finedefics(["build-dataset", "--config", str(config)])
    assert "--negatives clip needs --clip" in capsys.readouterr().err


@pytest.mark.parametrize("command", sorted(set(COMMANDS) - set(TRAINING_COMMANDS)))
def test_help_is_built_without_torch(command):
    """`finedefics <command> --help` answers without importing torch, transformers, datasets or gradio."""
    result = subprocess.run(
        [sys.executable, "-c", HELP_PROBE.format(command=command)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert f"usage: finedefics {command}" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_option_has_help(command):
    parser = importlib.import_module(COMMANDS[command][0]).make_parser()
    assert [action.option_strings for action in parser._actions if action.option_strings and not action.help] == []


def test_user_mistakes_are_one_line(tmp_path):
    """A build without --llm, and an evaluation of an image folder without option files, say what is missing."""
    for name in ("a", "b"):
        (tmp_path / "images" / name).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tmp_path / "images" / name / "0.png")
    source = f"imagefolder={tmp_path / 'images'}"
    build = _run("build-dataset", "--sources", "imagefolder", "--source_dirs", source, "--superclass", "bird",
                 "--negatives", "random", "--output_dir", str(tmp_path / "out"), HF_FINEDEFICS_CACHE=str(tmp_path))  # fmt: skip
    assert build.returncode != 0 and "Traceback" not in build.stderr
    assert build.stderr.strip() == "finedefics build-dataset: error: descriptions='pipeline' needs an LLM (--llm)."
    evaluate = _run("evaluate", "--model_name_or_path", "unused", "--sources", "imagefolder", "--source_dirs", source)
    assert evaluate.returncode != 0 and "Traceback" not in evaluate.stderr
    assert evaluate.stderr.strip().splitlines() == [
        f"finedefics evaluate: error: imagefolder has no shipped option file and {tmp_path / 'images'}/options_test.json"
        " does not exist: pass --options_files imagefolder=PATH, or --clip_model to build one."
    ]


def test_library_notices_a_user_cannot_act_on_stay_silent():
    """`stage1` imports bitsandbytes, whose CPU build asks on import for a kernel package from the Hub."""
    result = _run("stage1", "--help")
    assert result.returncode == 0 and "usage: finedefics stage1" in result.stdout
    assert "kernels" not in result.stderr, result.stderr


def test_a_data_dir_without_the_dataset_folder_names_the_flag_to_use(tmp_path):
    """`--data_dir` holds one folder per dataset: given the dataset's own folder, the error says what to pass."""
    with pytest.raises(FileNotFoundError, match=r"does not exist: --data_dir ROOT holds each dataset as ROOT/<name>.*"
                       r"--source_dirs synthetic=PATH"):  # fmt: skip
        finedefics(
            ["evaluate", "--model_name_or_path", "unused", "--sources", "synthetic", "--data_dir", str(tmp_path)]
        )


def test_an_operating_system_error_is_one_line_naming_its_path(tmp_path, monkeypatch, capsys):
    """What the system refuses (here a file where the run folder goes; a full disk or a read-only folder alike)
    is one line with the path, not a traceback."""
    from hf_finedefics.cli import console_main

    taken = tmp_path / "run"
    taken.write_text("not a folder")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("base_model: testing:idefics2\ndata: {synthetic: {}}\nvariants: [zero_shot]\n")
    monkeypatch.setenv("HF_FINEDEFICS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("sys.argv", ["finedefics", "run", "--config", str(recipe), "--output_dir", str(taken)])
    with pytest.raises(SystemExit) as exit_info:
        console_main()
    assert exit_info.value.code == f"finedefics run: error: File exists: {taken}"


def test_an_adapter_that_does_not_name_its_base_is_one_line(tmp_path):
    """It was a KeyError traceback ('base_model_name_or_path')."""
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"peft_type": "LORA", "r": 8}')
    with pytest.raises(ValueError, match=rf"{adapter / 'adapter_config.json'} has no base_model_name_or_path"):
        finedefics(["merge", "--adapter", str(adapter), "--output_dir", str(tmp_path / "merged")])


@pytest.mark.parametrize(
    "config, message",
    [
        ({"learning_rate": float("nan")}, "learning_rate must be a positive number, got nan"),
        ({"num_train_epochs": float("inf")}, "num_train_epochs must be finite, got inf"),
        ({"max_steps": 0}, "max_steps must be positive, or -1 to train num_train_epochs; got 0"),
        ({"num_train_epochs": 0}, r"num_train_epochs is 0(\.0)? and max_steps is unset: nothing would be trained"),
        ({"dtype": "int8"}, "dtype must be one of auto, float32, bfloat16, float16, got 'int8'"),
        ({"lora_r": 0}, "lora_r must be at least 1, got 0"),
        ({"lora_dropout": 2}, r"lora_dropout must be in \[0, 1\), got 2"),
    ],
    ids=["lr-nan", "epochs-inf", "max-steps-zero", "epochs-zero", "dtype-int8", "lora-r-zero", "lora-dropout-2"],
)
def test_a_stage_config_that_cannot_train_is_refused_in_one_line(tmp_path, capsys, config, message):
    """The stage commands read their --config without the run's recipe check: their configs check themselves."""
    (tmp_path / "stage1.yaml").write_text(yaml.safe_dump({"dataset_name": str(tmp_path), **config}))
    with pytest.raises(SystemExit):
        finedefics(["stage1", "--config", str(tmp_path / "stage1.yaml"), "--output_dir", str(tmp_path / "out")])
    error = capsys.readouterr().err
    assert re.search(f"finedefics stage1: error: .*{message}", error)
    assert f"{tmp_path / 'stage1.yaml'}: " in error  # the file the value is in
    assert not (tmp_path / "out").exists()
