"""`finedefics evaluate --api_base`: generation scoring of a model behind an OpenAI-compatible endpoint, here a
stand-in server on 127.0.0.1 that reads each image's colour (the conftest datasets colour each class) and answers."""

import base64
import io
import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image, ImageColor

from hf_finedefics.chat import display_class_name
from hf_finedefics.cli import main as finedefics

from .conftest import CLASS_COLORS, CLASS_NAMES, make_native_dataset

SECRET = "sk-test-not-to-be-written"
MISSED = "Siamese"  # the class the stand-in model gets wrong
CLASS_OF_COLOUR = {ImageColor.getrgb(colour): name for colour, name in zip(CLASS_COLORS, CLASS_NAMES)}


def stand_in_answer(content: list[dict]) -> str:
    """The letter of the image's class among the options (a wrong one for `MISSED`), or without options its name."""
    text = next(part["text"] for part in content if part["type"] == "text")
    url = next(part["image_url"]["url"] for part in content if part["type"] == "image_url")
    image = Image.open(io.BytesIO(base64.b64decode(url.removeprefix("data:image/png;base64,"))))
    pixel = image.convert("RGB").getpixel((0, 0))
    # The nearest class colour: JPEG shifts them a little.
    truth = CLASS_OF_COLOUR[min(CLASS_OF_COLOUR, key=lambda rgb: sum((a - b) ** 2 for a, b in zip(rgb, pixel)))]
    options = dict(re.findall(r"^([A-D])\. (.+)$", text, flags=re.MULTILINE))
    if not options:
        return "a cat" if truth == MISSED else display_class_name(truth)
    letter = next(letter for letter, name in options.items() if name == display_class_name(truth))
    return next(other for other in options if other != letter) if truth == MISSED else letter


class StandInServer:
    """An OpenAI-compatible chat endpoint on 127.0.0.1 answering with `stand_in_answer`; keeps each request's
    Authorization header."""

    def __init__(self):
        self.authorizations: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.authorizations.append(self.headers.get("Authorization"))
                message = {"role": "assistant", "content": stand_in_answer(request["messages"][0]["content"])}
                body = json.dumps(
                    {"id": "0", "object": "chat.completion", "created": 0, "model": request["model"],
                     "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}
                ).encode()  # fmt: skip
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def endpoint() -> Iterator[StandInServer]:
    stand_in = StandInServer()
    yield stand_in
    stand_in.server.shutdown()
    stand_in.server.server_close()


def _arguments(tmp_path, *extra: str) -> list[str]:
    options_file = make_native_dataset("pet-37", tmp_path / "pet-37")
    return [
        "evaluate",
        "--sources",
        "pet-37",
        "--data_dir",
        str(tmp_path),
        "--options_files",
        f"pet-37={options_file}",
    ] + ["--output_dir", str(tmp_path / "eval"), "--api_model", "org/served-vlm", *extra]


def test_endpoint_answers_are_scored(endpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    finedefics(
        _arguments(tmp_path, "--api_base", endpoint.url, "--scorers", "generation")
        + ["--task", "multiple_choice", "open_set", "--batch_size", "3"]
    )

    summaries = tmp_path / "eval" / "summaries" / "served-vlm"
    multiple_choice = json.loads((summaries / "pet-37.generation.json").read_text())
    assert multiple_choice["accuracy"] == pytest.approx(80.0)  # all but the 2 images of MISSED
    assert multiple_choice["failure_rate"] == 0.0
    open_set = json.loads((summaries / "pet-37.open_set.json").read_text())
    assert open_set["exact"] == pytest.approx(80.0)
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert ("served-vlm", "generation") in [(row["model"], row["scorer"]) for row in report["rows"]]
    # 10 images, asked with and without options; the key is sent, never written.
    assert endpoint.authorizations == [f"Bearer {SECRET}"] * 20
    assert not [path for path in (tmp_path / "eval").rglob("*") if path.is_file() and SECRET in path.read_text()]


def test_likelihood_scorers_need_the_model_loaded(endpoint, tmp_path):
    with pytest.raises(ValueError, match=r"\['likelihood'\] read the model's logits"):
        finedefics(_arguments(tmp_path, "--api_base", endpoint.url, "--scorers", "generation", "likelihood"))
    assert endpoint.authorizations == []
