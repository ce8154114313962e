"""The demo driven through `gradio_client`: well-formed answers, and a message (never a traceback) for bad input."""

from __future__ import annotations

import json
import sys

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from dataset_builders.sources.synthetic import synthetic_categories
from hf_finedefics import demo as demo_app
from hf_finedefics.chat import display_class_name
from hf_finedefics.evaluation import shipped_option_file

from .conftest import REPO_ROOT, free_port, start_server, stop, wait_until_serving

CRITTERS = [category.name for category in synthetic_categories()]


@pytest.fixture(scope="module")
def client(demo_server) -> Client:
    return Client(demo_server.url, verbose=False)


def recognize(client: Client, image, category_set: str, typed: str = "", superclass: str = "", top_k: int = 5):
    return client.predict(image, category_set, typed, superclass, top_k, api_name="/recognize")


def check_answer(result, candidates: list[str], k: int) -> list[str]:
    """The four outputs are well formed; returns the top-k category names."""
    prediction, explanation, bar_plot, description = result
    assert prediction in candidates
    assert prediction in explanation and "Options" in explanation
    assert bar_plot["columns"] == ["category", "similarity"]
    names = [name for name, _ in bar_plot["data"]]
    scores = [score for _, score in bar_plot["data"]]
    assert len(names) == k == len(set(names))
    assert set(names) <= set(candidates)
    assert all(-1.0 <= score <= 1.0 for score in scores)
    assert scores == sorted(scores, reverse=True)
    assert description.strip()
    return names


def test_typed_categories(client, critter_image):
    image, _ = critter_image
    typed = "\n".join([", ".join(CRITTERS[:3]), ", ".join(CRITTERS[3:6])])
    result = recognize(client, handle_file(image), "typed", typed, "critter", top_k=3)
    check_answer(result, CRITTERS[:6], k=3)


def test_typed_duplicates_are_dropped_and_top_k_capped(client, critter_image):
    image, _ = critter_image
    typed = f"{CRITTERS[0]}, {CRITTERS[0].upper()},  {CRITTERS[1]}\n{CRITTERS[1]}, {CRITTERS[2]}"
    names = check_answer(recognize(client, handle_file(image), "typed", typed, top_k=10), CRITTERS[:3], k=3)
    assert sorted(names) == sorted(CRITTERS[:3])


@pytest.mark.parametrize("category_set", ["embedded-default", "pet-37"])
def test_shipped_category_sets(client, critter_image, category_set):
    image, _ = critter_image
    if category_set == "embedded-default":
        candidates = CRITTERS
    else:
        candidates = [display_class_name(name) for name in json.loads(shipped_option_file(category_set).read_text())]
    check_answer(recognize(client, handle_file(image), category_set, top_k=5), candidates, k=5)


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad-input")
    text = folder / "notes.png"
    text.write_text("not an image at all")
    truncated = folder / "truncated.png"
    Image.new("RGB", (64, 64), (200, 30, 30)).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:60])
    huge = folder / "huge.png"
    Image.new("RGB", (8000, 6000), (20, 40, 60)).save(huge)  # 48 MP, but a few hundred kB as PNG
    return {"text": text, "truncated": truncated, "huge": huge}


@pytest.mark.parametrize(
    ("image", "category_set", "typed", "message"),
    [
        ("text", "embedded-default", "", "not an image"),
        ("truncated", "embedded-default", "", "not an image"),
        ("huge", "embedded-default", "", "48 MP"),
        ("critter", "typed", "", "at least two candidate categories"),
        ("critter", "typed", "Zurul, zurul, ZURUL", "at least two candidate categories"),
        ("critter", "typed", ",".join(f"species {i}" for i in range(3000)), "3000 candidate categories is too many"),
        ("critter", "typed", "Zurul, " + "x" * 500, "limited to 100 characters"),
        ("critter", "no-such-set", "", "Unknown category set"),
    ],
)
def test_bad_input_gets_a_message(client, bad_files, critter_image, image, category_set, typed, message):
    path = critter_image[0] if image == "critter" else bad_files[image]
    with pytest.raises(AppError) as error:
        recognize(client, handle_file(path), category_set, typed)
    assert message in str(error.value)
    assert "Traceback" not in str(error.value)


def test_a_rejected_request_logs_one_line(client, demo_server, bad_files):
    """The server's log says why a request was refused, in one line: no traceback, nothing failed."""
    with pytest.raises(AppError):
        recognize(client, handle_file(bad_files["text"]), "embedded-default")
    log = demo_server.log.read_text()
    assert f"Rejected a request: {demo_app.NOT_AN_IMAGE}" in log
    assert "Traceback" not in log


def test_oversized_upload_is_refused(client, tmp_path):
    oversized = tmp_path / "oversized.png"
    oversized.write_bytes(b"\x89PNG" + bytes(21 * 2**20))  # over the demo's 20 MB upload limit
    with pytest.raises(ValueError, match="exceeds the maximum file size"):
        recognize(client, handle_file(oversized), "embedded-default")


def test_missing_image_gets_a_message(client):
    with pytest.raises(AppError, match="Upload an image"):
        recognize(client, None, "embedded-default")


def test_inference_goes_through_the_queue_with_a_concurrency_limit(demo_checkpoint):
    demo = demo_app.build_demo(str(demo_checkpoint))
    events = {fn.api_name: fn for fn in demo.fns.values()}
    assert events["recognize"].queue and events["recognize"].concurrency_limit == demo_app.CONCURRENCY_LIMIT == 2
    assert events["model_status"].queue and events["model_status"].concurrency_limit == 1
    assert demo._queue.max_size == demo_app.QUEUE_MAX_SIZE


def test_category_embeddings_are_cached_per_set(demo_checkpoint, critter_image):
    demo_model = demo_app.DemoModel(str(demo_checkpoint))
    image = Image.open(critter_image[0]).convert("RGB")
    sets = demo_app.category_sets()
    for category_set in ("embedded-default", "pet-37", "embedded-default"):
        demo_model.recognize(image, sets[category_set], top_k=3)
    cache = demo_model.category_embeddings.cache_info()
    assert (cache.misses, cache.hits) == (2, 1)


def test_without_a_configured_model_the_embedded_default_is_resolved(monkeypatch, demo_checkpoint, tmp_path):
    """No model configured: the folder comes from `ensure_default_model`, whose progress reaches the page's
    callback. (Stubbed here: the real build takes minutes.)"""

    def built_default(progress=None):
        progress(0.5, "Building the default model: stage I")
        return demo_checkpoint

    monkeypatch.setattr(demo_app, "ensure_default_model", built_default)
    monkeypatch.chdir(tmp_path)  # no ./finedefics-default here, whose model the demo would take instead
    reports = []
    demo_model = demo_app.DemoModel()
    assert "embedded default" in demo_model.source
    model = demo_model.load(progress=lambda fraction, message: reports.append((fraction, message))).model
    assert reports == [(0.5, "Building the default model: stage I"), (1.0, "Loading the model")]
    assert model.config.name_or_path == str(demo_checkpoint)


def test_python_app_honours_gradio_server_env(demo_env, tmp_path):
    """`python spaces_app/app.py` serves on GRADIO_SERVER_NAME / GRADIO_SERVER_PORT with $FINEDEFICS_MODEL."""
    port = free_port()
    env = {**demo_env, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port)}
    log = tmp_path / "app.log"
    process = start_server([sys.executable, str(REPO_ROOT / "spaces_app" / "app.py")], env, log)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_until_serving(process, url, log)
        status = Client(url, verbose=False).predict(api_name="/model_status")
        assert status == f"Model: `{demo_env['FINEDEFICS_MODEL']}`. Ready."
    finally:
        stop(process)
