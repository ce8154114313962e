"""A minimal OpenAI-compatible chat-completions server for a local model.

`transformers serve` is the first choice for serving a model over HTTP, but it needs the optional
serving dependencies (`pip install transformers[serving]`, which pulls in `openai`). This stdlib server
covers the part of the protocol the HTTP backend uses (`POST /v1/chat/completions` with text and
base64 `image_url` parts, `GET /v1/models`), so a build can be split between a GPU box that serves and
machines that only read data:

    python -m dataset_builders.attributes.server --model HuggingFaceM4/idefics2-8b --port 8000

It answers one request at a time per model (a lock around `generate`).
"""

from __future__ import annotations

import argparse
import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .backends import GenerationRequest, LocalBackend


def request_from_messages(messages: list[dict]) -> GenerationRequest:
    """The last user turn of an OpenAI chat request as a `GenerationRequest`."""
    user_turns = [message for message in messages if message.get("role") == "user"]
    if not user_turns:
        raise ValueError("messages contains no user turn.")
    content = user_turns[-1]["content"]
    if isinstance(content, str):
        return GenerationRequest(content)
    texts, images = [], []
    for part in content:
        if part.get("type") == "text":
            texts.append(part["text"])
        elif part.get("type") == "image_url":
            url = part["image_url"]["url"]
            if not url.startswith("data:") or ";base64," not in url:
                raise ValueError("Only base64 data URLs are supported for images.")
            images.append(base64.b64decode(url.split(";base64,", 1)[1]))
        else:
            raise ValueError(f"Unsupported content part type {part.get('type')!r}.")
    if len(images) > 1:
        raise ValueError(f"One image per request is supported, got {len(images)}.")
    return GenerationRequest("\n".join(texts), images[0] if images else None)


def make_handler(backend: LocalBackend, served_name: str) -> type[BaseHTTPRequestHandler]:
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args) -> None:  # keep stderr quiet; errors go in replies
            pass

        def do_GET(self) -> None:
            if self.path.rstrip("/") in ("/v1/models", "/models"):
                self._reply(200, {"object": "list", "data": [{"id": served_name, "object": "model"}]})
            elif self.path == "/health":
                self._reply(200, {"status": "ok"})
            else:
                self._reply(404, {"error": {"message": f"No route {self.path}"}})

        def do_POST(self) -> None:
            if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
                self._reply(404, {"error": {"message": f"No route {self.path}"}})
                return
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                if body.get("model") not in (None, served_name):
                    raise ValueError(f"This server serves {served_name!r}, not {body.get('model')!r}.")
                request = request_from_messages(body["messages"])
            except (ValueError, KeyError, TypeError) as error:
                self._reply(400, {"error": {"message": str(error)}})
                return
            with lock:
                backend.max_new_tokens = int(body.get("max_tokens") or default_max_new_tokens)
                answer = backend.generate([request])[0]
            self._reply(
                200,
                {
                    "id": f"chatcmpl-{time.time_ns()}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": served_name,
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}
                    ],
                },
            )

    default_max_new_tokens = backend.max_new_tokens
    return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="model id or local folder")
    parser.add_argument("--served-name", default=None, help="name clients pass as `model` (default: --model)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port (printed on start)")
    parser.add_argument("--max-new-tokens", type=int, default=256, help="default when a request sets no max_tokens")
    parser.add_argument("--device", default=None)
    args = parser.parse_args(argv)
    backend = LocalBackend(args.model, max_new_tokens=args.max_new_tokens, batch_size=1, device=args.device)
    server = ThreadingHTTPServer((args.host, args.port), make_handler(backend, args.served_name or args.model))
    host, port = server.server_address[:2]
    print(f"Serving {args.model} on http://{host}:{port}/v1", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
