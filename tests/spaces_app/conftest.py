"""A demo server on a free localhost port, serving a tiny random checkpoint, shared by the client and browser tests.

FINEDEFICS_MODEL always points at the tiny checkpoint, so no test ever builds the embedded default model.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from transformers import AutoProcessor

from dataset_builders.sources.synthetic import generate_synthetic_fgvr
from hf_finedefics.testing import create_tiny_checkpoint, paper_processor_kwargs

REPO_ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_S = 120


@dataclass(frozen=True)
class DemoServer:
    url: str
    log: Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("w") as log_file:
        return subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT)


def wait_until_serving(process: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"The demo exited with code {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"The demo did not serve {url} within {STARTUP_TIMEOUT_S}s:\n{log.read_text()[-4000:]}")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def demo_checkpoint(tmp_path_factory) -> Path:
    """A tiny Idefics2 folder that carries the paper's processor (no image splitting), as a merged Finedefics
    checkpoint or adapter folder does."""
    folder = create_tiny_checkpoint("idefics2", tmp_path_factory.mktemp("demo-idefics2"))
    AutoProcessor.from_pretrained(folder, **paper_processor_kwargs(folder)).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def demo_env(demo_checkpoint) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in ("FINEDEFICS_ADAPTER", "GRADIO_SERVER_PORT")}
    env.update(FINEDEFICS_MODEL=str(demo_checkpoint), HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False")
    return env


@pytest.fixture(scope="session")
def demo_server(demo_env, tmp_path_factory) -> Iterator[DemoServer]:
    """`finedefics demo --host 127.0.0.1 --port <free>`, the model taken from $FINEDEFICS_MODEL."""
    port = free_port()
    log = tmp_path_factory.mktemp("demo-server") / "server.log"
    command = [sys.executable, "-m", "hf_finedefics.cli", "demo", "--host", "127.0.0.1", "--port", str(port)]
    process = start_server(command, demo_env, log)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until_serving(process, url, log)
        yield DemoServer(url, log)
    finally:
        stop(process)


@pytest.fixture(scope="session")
def critter_image(tmp_path_factory) -> tuple[Path, str]:
    """A test image of the embedded default's first critter, and its category."""
    row = generate_synthetic_fgvr(train_per_category=1, test_per_category=1)["test"][0]
    path = tmp_path_factory.mktemp("images") / "critter.png"
    row["image"].save(path)
    return path, row["category"]
