"""The HTTP backend against a real OpenAI-compatible server process on 127.0.0.1 serving a tiny local model."""

import json
import os
import re
import subprocess
import sys
import urllib.request

import pytest

from dataset_builders import load_source
from dataset_builders.attributes import AttributeDescriber, GenerationRequest, OpenAICompatibleBackend
from dataset_builders.cache import AnswerCache

from . import layouts


@pytest.fixture(scope="module")
def server_url(idefics2_path):
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dataset_builders.attributes.server",
            "--model",
            idefics2_path,
            "--port",
            "0",
            "--max-new-tokens",
            "8",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"},
    )
    try:
        line = process.stdout.readline()  # printed once the model is loaded and the socket listens
        match = re.search(r"http://[\d.]+:\d+/v1", line)
        assert match, f"server did not start: {line!r}"
        yield match.group(0)
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_server_lists_its_model(server_url, idefics2_path):
    with urllib.request.urlopen(server_url + "/models", timeout=30) as response:
        assert json.loads(response.read())["data"][0]["id"] == idefics2_path


def test_http_backend_answers_like_the_local_model(server_url, idefics2_path, idefics2_backend, tmp_path):
    image = layouts.write_image(tmp_path / "a.png", layouts.PALETTE[0]).read_bytes()
    requests = [
        GenerationRequest("Describe this image in details.", image),
        GenerationRequest("Describe the wing color of the bird in this photo.", image),
        GenerationRequest("Summarize the information you get about the bird with five sentences."),
    ]
    remote = OpenAICompatibleBackend(server_url, idefics2_path, max_new_tokens=8, concurrency=3)
    # The server decodes the PNG data URL back to the same pixels, so greedy answers match the local model.
    assert remote.generate(requests) == idefics2_backend.generate(requests)


def test_pipeline_over_http_with_concurrent_requests(server_url, idefics2_path, tmp_path):
    dataset = load_source(
        "imagefolder", layouts.make_image_folder(tmp_path / "d", ["jay", "wren"], 2), "train", "bird"
    )
    remote = OpenAICompatibleBackend(server_url, idefics2_path, max_new_tokens=8, concurrency=4)
    cache = AnswerCache(tmp_path / "cache.sqlite")
    describer = AttributeDescriber(remote, remote, cache, attributes={"bird": ["wing color", "bill shape"]})
    descriptions = describer.describe(dataset)
    assert len(descriptions) == 4 and all(isinstance(d, str) for d in descriptions)
    assert len(cache) == 4 * (3 + 1)


def test_http_backend_reports_rejected_requests(server_url):
    remote = OpenAICompatibleBackend(server_url, "some-other-model", max_new_tokens=4)
    with pytest.raises(RuntimeError, match=r"rejected the request \(400\).*some-other-model"):
        remote.generate([GenerationRequest("hello")])
