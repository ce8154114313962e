"""The README's commands on a run's folder, run exactly as written on the folder a small `finedefics run` wrote.

The run is the embedded default's pipeline made small (a tiny random Idefics2, 6 critter species, 2 training steps
per stage, the Finedefics variant only), written to `finedefics-default/` in a scratch working directory, so the
README's relative paths mean what they mean for a user who ran `finedefics run` there.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from gradio_client import Client, handle_file

from hf_finedefics.cli import main as finedefics
from hf_finedefics.modeling import ADAPTER_CONFIG_NAME, adapter_base_model, load_finedefics_model
from tests.pipeline.test_pipeline import SMALL_RECIPE
from tests.spaces_app.conftest import REPO_ROOT, free_port, stop, wait_until_serving

README = REPO_ROOT / "README.md"
SECTION = "### The commands on a run's folder"
RUN_DIR = "finedefics-default"
TINY_RUN = {
    **{key: value for key, value in SMALL_RECIPE.items() if key != "world"},
    "output_dir": RUN_DIR,
    "base_model": "testing:idefics2",
    "variants": ["finedefics"],
    "analysis": {"analyses": ["alignment"]},
    "analysis_variants": ["finedefics"],
}


def readme_commands() -> dict[str, list[str]]:
    """{subcommand: argv} of the `finedefics` lines in the first bash block after SECTION."""
    text = README.read_text(encoding="utf-8")
    assert SECTION in text, f"README.md lost its section {SECTION!r}"
    block = text.split(SECTION, 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    commands = {}
    for line in block.replace("\\\n", " ").splitlines():
        argv = shlex.split(line, comments=True)
        if argv:
            assert argv[0] == "finedefics", f"not a finedefics command: {line!r}"
            commands[argv[1]] = argv[1:]
    return commands


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory) -> Path:
    """A working directory holding `finedefics-default/`, written by `finedefics run --config <small recipe>`."""
    work = tmp_path_factory.mktemp("readme-commands")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_FINEDEFICS_CACHE", str(work / "cache"))
        patch.chdir(work)
        (work / "recipe.yaml").write_text(yaml.safe_dump(TINY_RUN))
        finedefics(["run", "--config", "recipe.yaml"])
    return work


@pytest.fixture
def in_run_folder(run_folder, monkeypatch) -> Path:
    monkeypatch.setenv("HF_FINEDEFICS_CACHE", str(run_folder / "cache"))
    monkeypatch.chdir(run_folder)
    return run_folder


def test_the_readme_shows_evaluate_analyze_and_demo_on_the_run_folder():
    commands = readme_commands()
    assert set(commands) == {"evaluate", "analyze", "demo"}
    assert all(RUN_DIR in " ".join(commands[name]) for name in ("evaluate", "analyze"))


def test_evaluate_then_analyze_as_written(in_run_folder):
    commands = readme_commands()
    evaluate, analyze = commands["evaluate"], commands["analyze"]
    finedefics(evaluate)
    output_dir = Path(evaluate[evaluate.index("--output_dir") + 1])
    assert "| finedefics |" in (output_dir / "report.md").read_text()
    # The analysis reads the predictions file the evaluation wrote.
    predictions = Path(analyze[analyze.index("--predictions") + 1])
    assert predictions.is_file() and predictions.is_relative_to(output_dir)

    finedefics(analyze)
    analysis_dir = Path(analyze[analyze.index("--output_dir") + 1])
    report = (analysis_dir / "report.md").read_text()
    assert "alignment" in report.lower()
    for figure in ("confusion_matrix.png", "tsne_objects.png"):
        assert (analysis_dir / figure).stat().st_size > 0


def test_demo_as_written_serves_the_run_model(in_run_folder):
    """`finedefics demo` with no model serves the run's Finedefics model (and says so), never building its own."""
    argv = readme_commands()["demo"]
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key not in ("FINEDEFICS_MODEL", "FINEDEFICS_ADAPTER")}
    env.update(
        GRADIO_SERVER_NAME="127.0.0.1",
        GRADIO_SERVER_PORT=str(port),
        GRADIO_ANALYTICS_ENABLED="False",
        HF_FINEDEFICS_CACHE=str(in_run_folder / "cache"),
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")])),
    )
    log = in_run_folder / "demo.log"
    with log.open("w") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "hf_finedefics.cli", *argv],
            cwd=in_run_folder,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/"
    model = f"{RUN_DIR}/finedefics/stage2"
    try:
        wait_until_serving(process, url, log)
        client = Client(url, verbose=False)
        assert client.predict(api_name="/model_status") == f"Model: `{model}`. Ready."
        image = next((in_run_folder / RUN_DIR / "source" / "test").rglob("*.png"))
        prediction, *_ = client.predict(handle_file(image), "embedded-default", "", "", 3, api_name="/recognize")
        assert prediction
    finally:
        stop(process)
    assert f"No model given: using {model}, the Finedefics model of the default run here." in log.read_text()
    assert not (in_run_folder / "cache" / "default-run").exists()


def test_a_moved_run_folder_still_loads_its_stage2_adapter(run_folder, tmp_path):
    """The stage II adapter records its merged base (inside the run folder) relative to itself."""
    copy = shutil.copytree(run_folder / RUN_DIR, tmp_path / "copy")
    moved = copy.rename(tmp_path / "moved")
    adapter = moved / "finedefics" / "stage2"
    assert '"base_model_name_or_path": "../stage2-stage1-merged"' in (adapter / ADAPTER_CONFIG_NAME).read_text()
    assert Path(adapter_base_model(adapter)) == moved / "finedefics" / "stage2-stage1-merged"
    model, _ = load_finedefics_model(adapter)
    assert Path(model.base_model.model.config.name_or_path) == moved / "finedefics" / "stage2-stage1-merged"
