"""Where answers come from: a local Hugging Face model or an OpenAI-compatible HTTP endpoint.

Both take a list of `GenerationRequest`s (a prompt, optionally with one image) and return one answer
per request, in order. The pipeline hands each backend `batch_size` requests at a time: the local
backend runs them as one padded `generate` call, the HTTP backend sends them concurrently.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import time
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch
from PIL import Image

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenerationRequest:
    """One prompt, with the encoded bytes of one image for VQA questions (None for text-only prompts)."""

    prompt: str
    image: bytes | None = None


class GenerationBackend(ABC):
    """A model that answers prompts. `cache_id` names the model and its generation settings in cache keys."""

    model_id: str
    batch_size: int
    max_new_tokens: int

    @property
    def cache_id(self) -> str:
        return f"{self.model_id}|max_new_tokens={self.max_new_tokens}|greedy"

    @abstractmethod
    def generate(self, requests: list[GenerationRequest]) -> list[str]:
        """Answer each request, greedily, in order."""


def _decode_image(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


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

    def generate(self, requests: list[GenerationRequest]) -> list[str]:
        answers: list[str | None] = [None] * len(requests)
        for has_image in (True, False):
            positions = [i for i, request in enumerate(requests) if (request.image is not None) == has_image]
            for start in range(0, len(positions), self.batch_size):
                batch = positions[start : start + self.batch_size]
                for position, answer in zip(batch, self._generate_group([requests[i] for i in batch])):
                    answers[position] = answer
        return answers


class OpenAICompatibleBackend(GenerationBackend):
    """An OpenAI-compatible chat-completions endpoint (vLLM, TGI, `transformers serve`, OpenAI).

    `base_url` is the API root, e.g. "http://localhost:8000/v1". Requests run `concurrency` at a time;
    failed calls are retried with exponential back-off before the error is raised.
    """

    def __init__(
        self,
        base_url: str,
        model_id: str,
        api_key: str | None = None,
        max_new_tokens: int = 256,
        concurrency: int = 8,
        timeout: float = 300.0,
        max_retries: int = 3,
    ):
        self.endpoint = base_url.rstrip("/") + "/chat/completions"
        self.model_id = model_id
        self.api_key = api_key
        self.max_new_tokens = max_new_tokens
        self.concurrency = concurrency
        # Hand the pipeline enough requests per batch to keep every connection busy.
        self.batch_size = concurrency * 4
        self.timeout = timeout
        self.max_retries = max_retries

    def _payload(self, request: GenerationRequest) -> dict:
        content: list[dict] = [{"type": "text", "text": request.prompt}]
        if request.image is not None:
            # Re-encode as PNG so the data URL's media type is always right, whatever the source format.
            buffer = io.BytesIO()
            _decode_image(request.image).save(buffer, format="PNG")
            url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
            content.insert(0, {"type": "image_url", "image_url": {"url": url}})
        return {
            "model": self.model_id,
            "messages": [{"role": "user", "content": content}],
            "max_tokens": self.max_new_tokens,
            "temperature": 0.0,
        }

    def _post(self, request: GenerationRequest) -> str:
        body = json.dumps(self._payload(request)).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        attempt = 0
        while True:
            try:
                http_request = urllib.request.Request(self.endpoint, data=body, headers=headers, method="POST")
                with urllib.request.urlopen(http_request, timeout=self.timeout) as response:
                    reply = json.loads(response.read())
                return (reply["choices"][0]["message"]["content"] or "").strip()
            except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
                # Client errors (bad model name, bad payload) will not fix themselves: fail at once.
                if isinstance(error, urllib.error.HTTPError) and 400 <= error.code < 500 and error.code != 429:
                    detail = error.read().decode("utf-8", "replace")[:500]
                    raise RuntimeError(f"{self.endpoint} rejected the request ({error.code}): {detail}") from error
                if attempt == self.max_retries:
                    raise RuntimeError(f"{self.endpoint} failed after {attempt + 1} attempts: {error}") from error
                delay = 2**attempt
                logger.warning("Request to %s failed (%s); retrying in %ss.", self.endpoint, error, delay)
                time.sleep(delay)
                attempt += 1
            except (KeyError, IndexError, json.JSONDecodeError) as error:
                raise RuntimeError(f"{self.endpoint} returned a reply without choices[0].message.content.") from error

    def generate(self, requests: list[GenerationRequest]) -> list[str]:
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(self._post, requests))
