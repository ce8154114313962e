"""`spaces_app/` deploys as a Hugging Face Space: its requirements install the package, its front matter suggests
hardware, its README's push snippet uploads it, and with no model set the default is built at start-up."""

from __future__ import annotations

import configparser
import re

import gradio as gr
from huggingface_hub import SpaceCard, SpaceHardware
from packaging.requirements import Requirement

from hf_finedefics import demo as demo_app

from ..hub.conftest import fake_hub  # noqa: F401 (fixture)
from .conftest import REPO_ROOT

SPACE = REPO_ROOT / "spaces_app"


def _requirements() -> list[str]:
    lines = (SPACE / "requirements.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def test_requirements_install_the_package_from_its_git_repository():
    """A Space's build has only this folder and the package is not on PyPI: a name alone or `-e ..` cannot install."""
    package = configparser.ConfigParser()
    package.read(REPO_ROOT / "setup.cfg")
    lines = _requirements()
    assert not [line for line in lines if line.startswith(("-e", "--editable", ".", "/"))]
    (requirement,) = [Requirement(line) for line in lines if Requirement(line).name == package["metadata"]["name"]]
    assert requirement.url is not None and requirement.url.startswith("git+https://")
    # the placeholders the README tells to replace
    owner, revision = re.fullmatch(r"git\+https://github\.com/(.+)/hf-finedefics@(.+)", requirement.url).groups()
    readme = (SPACE / "README.md").read_text()
    assert f"`{owner}/hf-finedefics`" in readme and f"`{revision}`" in readme


def test_front_matter_suggests_hardware():
    card = SpaceCard.load(SPACE / "README.md")
    assert card.data.sdk == "gradio" and card.data.app_file == "app.py"
    assert card.data.suggested_hardware in {hardware.value for hardware in SpaceHardware}


def test_readme_snippet_pushes_the_space(fake_hub, monkeypatch):  # noqa: F811
    (snippet,) = re.findall(r"```python\n(.*?)```", (SPACE / "README.md").read_text(), flags=re.DOTALL)
    monkeypatch.chdir(REPO_ROOT)
    exec(snippet, {})

    assert fake_hub.created == [
        {"repo_id": "your-hf-user/finedefics-demo", "private": None, "exist_ok": True, "repo_type": "space",
         "space_sdk": "gradio"}
    ]  # fmt: skip
    (upload,) = fake_hub.uploads
    assert upload.kwargs["repo_type"] == "space"
    assert {"app.py", "README.md", "requirements.txt"} <= upload.files
    assert not any("__pycache__" in name for name in upload.files)


def test_with_no_model_the_default_is_built_at_start_up(demo_checkpoint, monkeypatch):
    """The embedded default is built once before the app serves, never on a visitor's request."""
    monkeypatch.delenv("FINEDEFICS_MODEL", raising=False)
    monkeypatch.delenv("FINEDEFICS_ADAPTER", raising=False)
    monkeypatch.setattr(demo_app, "default_run_model", lambda: None)
    builds, served = [], []
    monkeypatch.setattr(demo_app, "ensure_default_model", lambda progress=None: builds.append(1) or demo_checkpoint)
    monkeypatch.setattr(gr.Blocks, "launch", lambda blocks, **kwargs: served.append(len(builds)))

    demo_app.launch_demo()

    assert served == [1]  # built once, before launching
    assert builds == [1]
