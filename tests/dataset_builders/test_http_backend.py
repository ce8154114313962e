"""The HTTP backend against a real `transformers serve` process on 127.0.0.1 serving a tiny local Idefics2.

Faults a healthy server does not make on demand (dropped connections, 200 replies without choices, hangs, a
request that keeps failing) come from `FaultyProxy`, which sits in front of the real server and passes every
other request through to it; replies no model should send (trickled, oversized, empty, degenerate) come from a
`StandInServer` on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dataset_builders import load_source
from dataset_builders.attributes import AttributeDescriber, GenerationRequest, OpenAICompatibleBackend
from dataset_builders.build import make_backend
from dataset_builders.cache import AnswerCache, answer_key
from hf_finedefics.scripts import parse_command_line
from hf_finedefics.scripts.build_dataset import make_parser

from ..spaces_app.conftest import free_port, start_server, stop, wait_until_serving
from . import layouts


@pytest.fixture(scope="module")
def server_url(idefics2_path, tmp_path_factory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("transformers-serve") / "serve.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    command = ["transformers", "serve", idefics2_path, "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"]
    process = start_server(command, env, log)
    try:
        wait_until_serving(process, f"http://127.0.0.1:{port}/health", log)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        stop(process)


# What the proxy does with a chat request: pass it on, or one of the faults.
Fault = str  # "forward" | "drop" | "no-choices" | "hang" | "fail"


class FaultyProxy:
    """An HTTP proxy to `upstream` whose `fault(body)` decides, per chat request, to forward it or to misbehave."""

    def __init__(self, upstream: str, fault: Callable[[dict], Fault]):
        self.upstream = upstream.removesuffix("/v1")
        self.fault = fault
        self.chat_requests = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                proxy.chat_requests += 1
                fault = proxy.fault(json.loads(body))
                if fault == "drop":  # close the connection without a reply
                    self.close_connection = True
                    return
                if fault == "hang":
                    time.sleep(3)
                    self.close_connection = True
                    return
                if fault == "no-choices":
                    self._reply(200, b'{"object": "chat.completion", "error": "model overloaded"}')
                    return
                if fault == "fail":
                    self._reply(500, b'{"error": "poisoned request"}')
                    return
                forwarded = urllib.request.Request(
                    proxy.upstream + self.path, data=body, headers={"Content-Type": "application/json"}
                )
                with urllib.request.urlopen(forwarded, timeout=60) as response:
                    self._reply(response.status, response.read())

            def _reply(self, status: int, payload: bytes):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy(server_url) -> Iterator[Callable[[Callable[[dict], Fault]], FaultyProxy]]:
    proxies = []

    def make(fault: Callable[[dict], Fault]) -> FaultyProxy:
        proxies.append(FaultyProxy(server_url, fault))
        return proxies[-1]

    yield make
    for started in proxies:
        started.close()


def faults_then_forward(*faults: Fault) -> Callable[[dict], Fault]:
    remaining = list(faults)
    return lambda body: remaining.pop(0) if remaining else "forward"


def _prompt(body: dict) -> str:
    return next(part["text"] for part in body["messages"][0]["content"] if part["type"] == "text")


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
    with pytest.raises(RuntimeError, match=r"answered 400 for model 'some-other-model'.*pinned"):
        remote.generate([GenerationRequest("hello")])


def test_dropped_connections_and_replies_without_choices_are_retried(proxy, server_url, idefics2_path):
    request = GenerationRequest("Summarize the information you get about the bird.")
    expected = OpenAICompatibleBackend(server_url, idefics2_path, max_new_tokens=8).generate([request])
    faulty = proxy(faults_then_forward("drop", "no-choices", "drop"))
    remote = OpenAICompatibleBackend(faulty.url, idefics2_path, max_new_tokens=8, max_retries=3)
    assert remote.generate([request]) == expected
    assert faulty.chat_requests == 4


def test_final_error_shows_status_and_body(proxy, idefics2_path):
    faulty = proxy(lambda body: "no-choices")
    remote = OpenAICompatibleBackend(faulty.url, idefics2_path, max_new_tokens=8, max_retries=1)
    with pytest.raises(RuntimeError, match=r"answered 200 without choices 2 times.*model overloaded"):
        remote.generate([GenerationRequest("hello")])
    assert faulty.chat_requests == 2

    failing = proxy(lambda body: "fail")
    remote = OpenAICompatibleBackend(failing.url, idefics2_path, max_new_tokens=8, max_retries=0)
    with pytest.raises(RuntimeError, match=r"answered 500 .*poisoned request"):
        remote.generate([GenerationRequest("hello")])


def test_hung_server_fails_after_the_timeout(proxy, idefics2_path):
    faulty = proxy(lambda body: "hang")
    remote = OpenAICompatibleBackend(faulty.url, idefics2_path, max_new_tokens=8, timeout=0.5, max_retries=1)
    start = time.monotonic()
    with pytest.raises(RuntimeError, match="failed after 2 attempts: APITimeoutError"):
        remote.generate([GenerationRequest("hello")])
    assert time.monotonic() - start < 2.5  # two 0.5 s attempts and one back-off, not the server's 3 s
    assert faulty.chat_requests == 2


def test_each_answer_is_cached_as_it_completes(proxy, idefics2_path, tmp_path):
    """One request that keeps failing loses no other answer of its batch: a rerun asks only for that one."""
    faulty = proxy(lambda body: "fail" if "POISON" in _prompt(body) else "forward")
    remote = OpenAICompatibleBackend(faulty.url, idefics2_path, max_new_tokens=4, concurrency=2, max_retries=0)
    cache = AnswerCache(tmp_path / "cache.sqlite")
    describer = AttributeDescriber(remote, remote, cache)
    prompts = ["Name a bird.", "Name a colour.", "POISON", "Name a shape.", "Name a size."]
    with pytest.raises(RuntimeError, match="poisoned request"):
        describer.answer(remote, [(None, GenerationRequest(prompt)) for prompt in prompts])
    keys = {prompt: answer_key(None, prompt, remote.cache_id) for prompt in prompts}
    cached = cache.get_many(keys.values())
    # Requests already sent when the poisoned one failed finish and are kept; only unsent ones are dropped.
    assert keys["POISON"] not in cached and keys["Name a bird."] in cached and keys["Name a colour."] in cached
    assert len(cached) == faulty.chat_requests - 1


def test_timeout_and_retries_are_build_options(tmp_path):
    (config,) = parse_command_line(make_parser(), [
        "--sources", "imagefolder", "--source_dirs", f"imagefolder={tmp_path}", "--output_dir", str(tmp_path / "out"), "--negatives",
        "random", "--llm", "some-model", "--llm_base_url", "http://127.0.0.1:9/v1", "--timeout", "7.5",
        "--max_retries", "1",
    ])  # fmt: skip
    backend = make_backend(config.llm, config.llm_base_url, config)
    assert (backend.client.timeout, backend.client.max_retries) == (7.5, 1)


class StandInServer:
    """An OpenAI-compatible endpoint on 127.0.0.1 where `respond(handler, number)` writes the reply to each chat
    request (numbered from 0)."""

    def __init__(self, respond: Callable[[BaseHTTPRequestHandler, int], None]):
        self.chat_requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                server.chat_requests += 1
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client stopped reading
                    respond(self, server.chat_requests - 1)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stand_in() -> Iterator[Callable[[Callable[[BaseHTTPRequestHandler, int], None]], StandInServer]]:
    servers = []

    def make(respond: Callable[[BaseHTTPRequestHandler, int], None]) -> StandInServer:
        servers.append(StandInServer(respond))
        return servers[-1]

    yield make
    for started in servers:
        started.close()


def _completion(content: str) -> bytes:
    message = {"role": "assistant", "content": content}
    choice = {"index": 0, "message": message, "finish_reason": "stop"}
    return json.dumps(
        {"id": "0", "object": "chat.completion", "created": 0, "model": "m", "choices": [choice]}
    ).encode()


def _send_headers(handler: BaseHTTPRequestHandler, length: int) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(length))
    handler.end_headers()


def answers(*contents: str) -> Callable[[BaseHTTPRequestHandler, int], None]:
    """Reply to request n with the n-th of `contents` (the last one once they run out)."""

    def respond(handler: BaseHTTPRequestHandler, number: int) -> None:
        payload = _completion(contents[min(number, len(contents) - 1)])
        _send_headers(handler, len(payload))
        handler.wfile.write(payload)

    return respond


def trickle(handler: BaseHTTPRequestHandler, number: int) -> None:
    """A valid reply sent one byte every 100 ms, for at most 10 s: each read is quick, the reply takes 17 s."""
    payload = _completion("A jay.")
    _send_headers(handler, len(payload))
    stop = time.monotonic() + 10
    for byte in payload:
        if time.monotonic() > stop:
            return
        handler.wfile.write(bytes([byte]))
        time.sleep(0.1)


def broken_off_then_answered(handler: BaseHTTPRequestHandler, number: int) -> None:
    """The first reply stops half way (the connection closes), the next is whole."""
    payload = _completion("A jay.")
    _send_headers(handler, len(payload))
    handler.wfile.write(payload if number else payload[: len(payload) // 2])
    handler.close_connection = True


def test_reply_broken_off_midway_is_retried(stand_in):
    server = stand_in(broken_off_then_answered)
    remote = OpenAICompatibleBackend(server.url, "stand-in", max_retries=1)
    assert remote.generate([GenerationRequest("hello")]) == ["A jay."]
    assert server.chat_requests == 2


def test_trickling_reply_is_cut_at_the_deadline(stand_in):
    server = stand_in(trickle)
    remote = OpenAICompatibleBackend(server.url, "stand-in", timeout=1.0, max_retries=0)
    start = time.monotonic()
    with pytest.raises(RuntimeError, match=r"did not complete its reply within 1.0 s 1 times .*'hello'"):
        remote.generate([GenerationRequest("hello")])
    assert time.monotonic() - start < 3  # not the 10 s the server trickles for (margin for a loaded machine)


def test_oversized_replies_are_refused(stand_in):
    remote = OpenAICompatibleBackend(stand_in(answers("x" * 20_000_000)).url, "stand-in", max_new_tokens=8)
    with pytest.raises(RuntimeError, match=rf"sent a reply over {remote.max_reply_bytes} bytes 4 times"):
        remote.generate([GenerationRequest("hello")])
    text = " ".join(str(number) for number in range(300))  # 1089 characters, over 8 tokens' worth
    remote = OpenAICompatibleBackend(stand_in(answers(text)).url, "stand-in", max_new_tokens=8, max_retries=0)
    with pytest.raises(RuntimeError, match=r"sent a reply of 1089 characters \(the cap is 256\)"):
        remote.generate([GenerationRequest("hello")])


def test_empty_and_degenerate_replies_are_retried_then_refused(stand_in):
    empty = stand_in(answers("", "  \n"))
    remote = OpenAICompatibleBackend(empty.url, "stand-in", max_new_tokens=64, max_retries=1)
    with pytest.raises(RuntimeError, match=r"sent an empty reply 2 times for model 'stand-in' and the request 'Name"):
        remote.generate([GenerationRequest("Name a bird.")])
    assert empty.chat_requests == 2

    degenerate = stand_in(answers("the bird " * 100))
    remote = OpenAICompatibleBackend(degenerate.url, "stand-in", max_new_tokens=64, max_retries=1)
    with pytest.raises(RuntimeError, match=r"sent a degenerate reply \(the same text repeated\) 2 times"):
        remote.generate([GenerationRequest("Name a bird.")])

    recovering = stand_in(answers("", "A jay."))
    remote = OpenAICompatibleBackend(recovering.url, "stand-in", max_new_tokens=64, max_retries=1)
    assert remote.generate([GenerationRequest("Name a bird.")]) == ["A jay."]


def test_refused_replies_are_never_cached(stand_in, tmp_path):
    remote = OpenAICompatibleBackend(stand_in(answers("")).url, "stand-in", max_retries=0)
    cache = AnswerCache(tmp_path / "cache.sqlite")
    with pytest.raises(RuntimeError, match="empty reply"):
        AttributeDescriber(remote, remote, cache).discover_attributes("bird")
    assert len(cache) == 0


def test_cached_degenerate_answer_is_asked_again(stand_in, tmp_path, caplog):
    """A 100 KB degenerate reply cached by an older build: ignored with a warning and asked again, not a MemoryError
    on every rerun."""
    server = stand_in(answers("['wing color', 'bill shape']"))
    remote = OpenAICompatibleBackend(server.url, "stand-in", max_retries=0)
    cache = AnswerCache(tmp_path / "cache.sqlite")
    describer = AttributeDescriber(remote, remote, cache)
    key = answer_key(None, describer.prompts.discovery_prompt("bird"), remote.cache_id)
    cache.put_many({key: "[" + "-" * 100_000 + "1]"})
    with caplog.at_level(logging.WARNING):
        assert describer.discover_attributes("bird") == ["wing color", "bill shape"]
    assert server.chat_requests == 1 and "asking again" in caplog.text
    assert cache.get_many([key]) == {key: "['wing color', 'bill shape']"}
