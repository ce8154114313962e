"""Where answers come from: a local Hugging Face model or an OpenAI-compatible HTTP endpoint.

Both take a list of `GenerationRequest`s (a prompt, optionally with one image) and return one answer
per request, in order, or (`iter_answers`) each answer as soon as it is ready, which the pipeline caches at once.
The pipeline hands each backend `batch_size` requests at a time: the local backend runs them as one padded
`generate` call, the HTTP backend sends them concurrently. An empty, oversized or degenerate reply
(`reply_problem`) is no answer: the HTTP backend retries it, then refuses it, and the pipeline never caches it.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import time
import zlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass

import torch
from PIL import Image

from ..images import to_rgb

logger = logging.getLogger(__name__)

# A reply longer than this many characters per new token is no answer (text runs about 4 per token).
MAX_CHARS_PER_TOKEN = 32
# Replies this long that compress below this ratio repeat themselves (a model stuck in a loop): prose compresses to
# about 0.4.
DEGENERATE_MIN_CHARS = 256
DEGENERATE_COMPRESSION = 0.1


def reply_problem(answer: str, max_chars: int) -> str | None:
    """What makes `answer` no answer (empty, over `max_chars` characters, or the same text repeated), or None."""
    if not answer.strip():
        return "an empty reply"
    if len(answer) > max_chars:
        return f"a reply of {len(answer)} characters (the cap is {max_chars})"
    data = answer.encode("utf-8")
    if len(answer) >= DEGENERATE_MIN_CHARS and len(zlib.compress(data)) < DEGENERATE_COMPRESSION * len(data):
        return "a degenerate reply (the same text repeated)"
    return None


@dataclass(frozen=True)
class GenerationRequest:
    """One prompt, with the encoded bytes of one image for VQA questions (None for text-only prompts)."""

    prompt: str
    image: bytes | None = None

    def __str__(self) -> str:
        return f"the request {self.prompt[:100]!r}" + (" (with an image)" if self.image is not None else "")


class GenerationBackend(ABC):
    """A model that answers prompts. `cache_id` names the model and its generation settings in cache keys."""

    model_id: str
    batch_size: int
    max_new_tokens: int

    @property
    def cache_id(self) -> str:
        return f"{self.model_id}|max_new_tokens={self.max_new_tokens}|greedy"

    @property
    def max_answer_chars(self) -> int:
        """The longest answer taken (`reply_problem`)."""
        return self.max_new_tokens * MAX_CHARS_PER_TOKEN

    @abstractmethod
    def iter_answers(self, requests: list[GenerationRequest]) -> Iterator[tuple[int, str]]:
        """Answer each request greedily, yielding (position in `requests`, answer) as each answer is ready, so
        that callers can keep it even if a later request fails."""

    def generate(self, requests: list[GenerationRequest]) -> list[str]:
        """Answer each request, greedily, in order."""
        answers: list[str] = [""] * len(requests)
        for position, answer in self.iter_answers(requests):
            answers[position] = answer
        return answers


def _decode_image(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        return to_rgb(image)


class LocalBackend(GenerationBackend):
    """Any image-text-to-text model (Idefics2, LLaVA, Qwen2-VL, ...) or causal LM, with batched generation.

    Requests with and without images go to separate `generate` calls, so a VLM can serve as the LLM too.
    """

    def __init__(
        self,
        model_id: str,
        max_new_tokens: int = 256,
        batch_size: int = 8,
        device: str | None = None,
        dtype: str | torch.dtype = "auto",
    ):
        from transformers import (
            AutoConfig,
            AutoModelForCausalLM,
            AutoModelForImageTextToText,
            AutoProcessor,
            AutoTokenizer,
        )
        from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

        self.model_id = model_id
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        config = AutoConfig.from_pretrained(model_id)
        self.is_multimodal = config.model_type in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES
        if self.is_multimodal:
            self.processor = AutoProcessor.from_pretrained(model_id)
            self.tokenizer = self.processor.tokenizer
            model_class = AutoModelForImageTextToText
        else:
            self.processor = self.tokenizer = AutoTokenizer.from_pretrained(model_id)
            model_class = AutoModelForCausalLM
        # Decoder-only generation needs the prompt flush against the new tokens.
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = model_class.from_pretrained(model_id, dtype=dtype).to(self.device).eval()

    def _prompt_text(self, request: GenerationRequest) -> str:
        content = [{"type": "text", "text": request.prompt}]
        if request.image is not None:
            content.insert(0, {"type": "image"})
        if self.tokenizer.chat_template is None and getattr(self.processor, "chat_template", None) is None:
            return request.prompt
        # Text-only tokenizers take plain-string content; processors take typed parts.
        messages = [{"role": "user", "content": content if self.is_multimodal else request.prompt}]
        return self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    @torch.inference_mode()
    def _generate_group(self, requests: list[GenerationRequest]) -> list[str]:
        texts = [self._prompt_text(request) for request in requests]
        with_images = requests[0].image is not None
        if with_images:
            if not self.is_multimodal:
                raise ValueError(f"{self.model_id} is a text-only model and cannot answer questions about images.")
            images = [[_decode_image(request.image)] for request in requests]
            inputs = self.processor(text=texts, images=images, padding=True, return_tensors="pt")
        else:
            inputs = self.processor(text=texts, padding=True, return_tensors="pt")
        inputs = inputs.to(self.device)
        outputs = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        new_tokens = outputs[:, inputs["input_ids"].shape[1] :]
        return [text.strip() for text in self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]

    def iter_answers(self, requests: list[GenerationRequest]) -> Iterator[tuple[int, str]]:
        for has_image in (True, False):
            positions = [i for i, request in enumerate(requests) if (request.image is not None) == has_image]
            for start in range(0, len(positions), self.batch_size):
                batch = positions[start : start + self.batch_size]
                yield from zip(batch, self._generate_group([requests[i] for i in batch]))


def _start(body: bytes) -> str:
    """The start of a reply body, for messages."""
    return body[:500].decode("utf-8", errors="replace")


class OpenAICompatibleBackend(GenerationBackend):
    """An OpenAI-compatible chat-completions endpoint, through the official `openai` client.

    `base_url` is the API root, e.g. "http://localhost:8000/v1" for `transformers serve <model>` (one process, fine
    for small runs) or, to scale out, `vllm serve <model>` or Text Generation Inference (batched serving on GPUs).
    Requests run `concurrency` at a time; each answer is handed back as soon as it arrives. The client retries
    timeouts, dropped connections, 408/409/429 and 5xx replies `max_retries` times with exponential back-off; this
    backend also retries replies without `choices` (some servers answer 200 with an error body), replies not
    complete `timeout` seconds after the request was sent (the client's own timeout bounds each read, so a server
    trickling bytes is cut at the first byte past this deadline), replies over `max_reply_bytes` (not read further)
    and answers that are empty, oversized or degenerate (`reply_problem`). The final error names the endpoint, the
    request, the problem and the start of the body.
    """

    def __init__(
        self,
        base_url: str,
        model_id: str,
        api_key: str | None = None,
        max_new_tokens: int = 256,
        concurrency: int = 8,
        timeout: float = 60.0,
        max_retries: int = 3,
    ):
        from openai import OpenAI

        self.base_url = base_url.rstrip("/")
        self.model_id = model_id
        self.max_new_tokens = max_new_tokens
        self.concurrency = concurrency
        # Hand the pipeline enough requests per batch to keep every connection busy.
        self.batch_size = concurrency * 4
        self.timeout = timeout
        self.max_retries = max_retries
        # The JSON of the longest answer taken (up to 12 bytes per character, escaped) and its envelope.
        self.max_reply_bytes = 12 * self.max_answer_chars + 64 * 1024
        # Local servers need no key, but the client insists on one.
        self.client = OpenAI(
            base_url=self.base_url, api_key=api_key or "no-key", timeout=timeout, max_retries=max_retries
        )

    def _messages(self, request: GenerationRequest) -> list[dict]:
        content: list[dict] = [{"type": "text", "text": request.prompt}]
        if request.image is not None:
            # Re-encode as PNG so the data URL's media type is always right, whatever the source format.
            buffer = io.BytesIO()
            _decode_image(request.image).save(buffer, format="PNG")
            url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
            content.insert(0, {"type": "image_url", "image_url": {"url": url}})
        return [{"role": "user", "content": content}]

    def _attempt(self, request: GenerationRequest) -> tuple[str, str | None, str]:
        """One request: (answer, what makes the reply no answer or None, the start of the body)."""
        import httpx2  # the openai client's HTTP library

        deadline = time.monotonic() + self.timeout
        body = bytearray()
        with self.client.chat.completions.with_streaming_response.create(
            model=self.model_id, messages=self._messages(request), max_tokens=self.max_new_tokens, temperature=0.0
        ) as response:
            try:
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > self.max_reply_bytes:
                        return "", f"sent a reply over {self.max_reply_bytes} bytes", _start(body)
                    if time.monotonic() > deadline:
                        return "", f"did not complete its reply within {self.timeout} s", _start(body)
            except httpx2.TransportError as error:  # the body is read here, after the client's own retries
                return "", f"broke off its reply ({type(error).__name__}: {error})", _start(body)
        try:
            answer = (json.loads(body)["choices"][0]["message"]["content"] or "").strip()
        except (ValueError, LookupError, TypeError):
            return "", f"answered {response.status_code} without choices", _start(body)
        problem = reply_problem(answer, self.max_answer_chars)
        return answer, problem and f"sent {problem}", _start(body)

    def _answer(self, request: GenerationRequest) -> str:
        import openai

        endpoint = f"{self.base_url}/chat/completions"
        for attempt in range(self.max_retries + 1):
            try:
                answer, problem, body = self._attempt(request)
            except openai.APIStatusError as error:
                raise RuntimeError(
                    f"{endpoint} answered {error.status_code} for model {self.model_id!r}: {error.response.text[:500]}"
                ) from error
            except openai.APIError as error:  # connection dropped or timed out on every try
                raise RuntimeError(
                    f"{endpoint} failed after {self.max_retries + 1} attempts: {type(error).__name__}: {error}"
                ) from error
            if problem is None:
                return answer
            if attempt < self.max_retries:
                logger.warning("%s %s for %s (%r); retrying.", endpoint, problem, request, body)
                time.sleep(min(2**attempt * 0.5, 8.0))
        raise RuntimeError(
            f"{endpoint} {problem} {self.max_retries + 1} times for model {self.model_id!r} and {request}, which is "
            f"refused (not cached); last body: {body!r}"
        )

    def iter_answers(self, requests: list[GenerationRequest]) -> Iterator[tuple[int, str]]:
        pool = ThreadPoolExecutor(max_workers=self.concurrency)
        futures = {pool.submit(self._answer, request): position for position, request in enumerate(requests)}
        failure: BaseException | None = None
        try:
            for future in as_completed(futures):
                try:
                    answer = future.result()
                except Exception as error:
                    # Requests not yet sent are dropped; those in flight still finish and are handed back.
                    if failure is None:
                        failure = error
                        for pending in futures:
                            pending.cancel()
                    continue
                yield futures[future], answer
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        if failure is not None:
            raise failure
