"""The two ways of scoring a multiple-choice question, reported side by side, under either protocol.

Protocol "ours" shows readable option names and reads answers with `parse_choice`; protocol "foci" is FOCI's
exactly (the paper's Table 2): its question nouns, option names as in the option file, 10 new tokens and
`foci_choice` (an answer is the option whose letter it starts with).

- `GenerationScorer`: greedy decoding, then `parse_choice` on the text. This is what the paper reports;
  it also measures instruction following (a model that answers "Chihuahua" or rambles fails).
- `LikelihoodScorer`: one forward pass; the option whose letter is the most probable next token after the
  generation prompt wins. Never fails to answer and needs no decoding loop, so it isolates recognition from
  answer formatting (the paper's Table 3a shows fine-tuning can break the latter).
- `ApiGenerationScorer`: `GenerationScorer` for a model served behind an OpenAI-compatible endpoint (`ApiModel`:
  vLLM, TGI, `transformers serve`), which applies the model's own chat template. An endpoint returns text, not
  logits, so the likelihood scorers need the model loaded here.
- `NameLikelihoodScorer`: letter-free (the cloze scoring of lm-evaluation-harness): the open-set question is asked
  and each option's *name* is scored by its log-likelihood as the answer. It measures recognition even where a
  model never learned to point at a letter.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image

from dataset_builders.attributes.backends import GenerationRequest, OpenAICompatibleBackend
from dataset_builders.prompts import GENERIC_SUPERCLASS, OPTION_LETTERS, Protocol, open_set_prompt
from dataset_builders.registry import get_spec

from ..backbones import unwrap_model
from ..chat import (
    adds_special_tokens,
    display_class_name,
    encode_answered_questions,
    multiple_choice_chat,
    multiple_choice_text,
)
from .parsing import foci_choice, parse_choice

# Generation budget per protocol (FOCI generates 10 new tokens).
DEFAULT_MAX_NEW_TOKENS: dict[str, int] = {"ours": 32, "foci": 10}


def format_question(dataset_name: str, options: list[str], protocol: Protocol = "foci") -> str:
    """The multiple-choice question of `dataset_name` (a registry name) for `options` in the given order, before
    the chat template. Protocol "foci" is FOCI's text exactly:
    ``Which of these {aircrafts|cars|...} is shown in the image?\nChoices:\nA. ...\nAnswer with the letter from
    the given choices directly.``, option names as in the option file."""
    return multiple_choice_text(options, get_spec(dataset_name).superclass, protocol)


def _accepts(model: Any, argument: str) -> bool:
    """Whether the forward of the transformers model inside `model` takes `argument`."""
    return argument in inspect.signature(unwrap_model(model).forward).parameters


class MultipleChoiceScorer(ABC):
    """Scores batches of (image, rendered chat, shown options); each result holds the chosen index or None."""

    name: str

    def __init__(self, model: Any, processor: Any):
        self.model = model
        self.processor = processor

    def chat(self, options: list[str], superclass: str | None, protocol: Protocol = "ours") -> str:
        """What `score` gets for a question: the lettered multiple-choice chat of `protocol`."""
        return multiple_choice_chat(self.processor, options, superclass, protocol)

    def _encode(self, images: list[Image.Image], chats: list[str]):
        # Left padding puts every prompt's last token at position -1 and lets generation continue from it.
        inputs = self.processor(
            text=chats,
            images=[[image] for image in images],
            padding=True,
            padding_side="left",
            add_special_tokens=adds_special_tokens(self.processor.tokenizer, chats),
            return_tensors="pt",
        )
        return inputs.to(self.model.device).to(self.model.dtype)

    @abstractmethod
    def score(self, images: list[Image.Image], chats: list[str], options: list[list[str]]) -> list[dict[str, Any]]:
        """One result per question: ``{"prediction": index | None, ...scorer-specific fields}``."""


class GenerationScorer(MultipleChoiceScorer):
    name = "generation"

    def __init__(self, model: Any, processor: Any, max_new_tokens: int | None = None, protocol: Protocol = "ours"):
        super().__init__(model, processor)
        self.max_new_tokens = max_new_tokens or DEFAULT_MAX_NEW_TOKENS[protocol]
        self.read_choice = foci_choice if protocol == "foci" else parse_choice

    @torch.inference_mode()
    def generate(self, images: list[Image.Image], chats: list[str]) -> list[str]:
        """The greedy answers to the rendered chats, stripped."""
        inputs = self._encode(images, chats)
        generated = self.model.generate(**inputs, do_sample=False, max_new_tokens=self.max_new_tokens)
        responses = self.processor.batch_decode(generated[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        return [response.strip() for response in responses]

    def score(self, images, chats, options):
        return [
            {"prediction": self.read_choice(response, shown), "response": response}
            for response, shown in zip(self.generate(images, chats), options)
        ]


@dataclass(frozen=True)
class ApiModel:
    """A model served behind an OpenAI-compatible chat-completions endpoint, e.g. `vllm serve <model>` at
    "http://localhost:8000/v1". Its results are cached by `model_id` (the endpoint's weights cannot be read)."""

    base_url: str
    model_id: str
    api_key: str | None = field(default=None, repr=False)  # read from the environment, never written anywhere
    concurrency: int = 8
    timeout: float = 60.0

    @property
    def fingerprint(self) -> str:
        return "api-" + hashlib.sha256(self.model_id.encode()).hexdigest()[:12]

    def backend(self, max_new_tokens: int) -> OpenAICompatibleBackend:
        """The project's OpenAI-compatible client (deadlines, reply caps, retries) for answers of `max_new_tokens`."""
        return OpenAICompatibleBackend(
            self.base_url,
            self.model_id,
            api_key=self.api_key,
            max_new_tokens=max_new_tokens,
            concurrency=self.concurrency,
            timeout=self.timeout,
        )


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


class ApiGenerationScorer(GenerationScorer):
    """Greedy answers from an `ApiModel`: the question text and the image go as one user message, the server
    renders the chat (there is no processor here). Answers are read as `GenerationScorer` reads them."""

    def __init__(self, model: ApiModel, max_new_tokens: int | None = None, protocol: Protocol = "ours"):
        super().__init__(model, None, max_new_tokens=max_new_tokens, protocol=protocol)
        self.backend = model.backend(self.max_new_tokens)

    def chat(self, options: list[str], superclass: str | None, protocol: Protocol = "ours") -> str:
        return multiple_choice_text(options, superclass, protocol)

    def generate(self, images: list[Image.Image], chats: list[str]) -> list[str]:
        requests = [GenerationRequest(chat, _png(image)) for image, chat in zip(images, chats)]
        return [answer.strip() for answer in self.backend.generate(requests)]


class LikelihoodScorer(MultipleChoiceScorer):
    name = "likelihood"

    def __init__(self, model: Any, processor: Any):
        super().__init__(model, processor)
        self._letter_token_ids: dict[int, list[list[int]]] = {}

    def letter_token_ids(self, chat: str, num_options: int) -> list[list[int]]:
        """Per option letter, the token ids that can start it right after the generation prompt.

        Found by tokenizing the chat with and without the letter appended, bare ("A") and after a space
        (" A"), since tokenizers differ on which one follows "Assistant:". A token shared by several letters
        (a lone space piece) says nothing about the choice and is dropped.
        """
        if num_options not in self._letter_token_ids:
            tokenizer = self.processor.tokenizer
            prompt_ids = tokenizer(chat, add_special_tokens=False)["input_ids"]
            candidates = []
            for letter in OPTION_LETTERS[:num_options]:
                ids = set()
                for continuation in (letter, f" {letter}"):
                    full_ids = tokenizer(chat + continuation, add_special_tokens=False)["input_ids"]
                    if full_ids[: len(prompt_ids)] == prompt_ids and len(full_ids) > len(prompt_ids):
                        ids.add(full_ids[len(prompt_ids)])
                candidates.append(ids)
            shared = {
                token for i, ids in enumerate(candidates) for other in candidates[i + 1 :] for token in ids & other
            }
            letter_ids = [sorted(ids - shared) for ids in candidates]
            if not all(letter_ids):
                raise ValueError(f"The tokenizer has no token that starts the option letters after {chat[-30:]!r}.")
            self._letter_token_ids[num_options] = letter_ids
        return self._letter_token_ids[num_options]

    @torch.inference_mode()
    def score(self, images, chats, options):
        inputs = self._encode(images, chats)
        # Only the last position is read; families whose forward cannot skip the others compute them all.
        keep = {"logits_to_keep": 1} if _accepts(self.model, "logits_to_keep") else {}
        logits = self.model(**inputs, **keep).logits[:, -1].float()
        log_probs = torch.log_softmax(logits, dim=-1)
        results = []
        for row, chat, shown in zip(log_probs, chats, options):
            # A letter's probability is the total over the tokens that spell it ("A" and " A").
            letter_log_probs = [
                torch.logsumexp(row[ids], dim=0).item() for ids in self.letter_token_ids(chat, len(shown))
            ]
            best = max(range(len(shown)), key=letter_log_probs.__getitem__)
            results.append(
                {
                    "prediction": best,
                    "letter_log_probs": [
                        round(value, 4) if math.isfinite(value) else None for value in letter_log_probs
                    ],
                }
            )
        return results


@torch.inference_mode()
def answer_log_likelihoods(
    model: Any, processor: Any, images: list[Image.Image | None], questions: list[str], answers: list[list[str]]
) -> list[list[float]]:
    """Per question, the summed log-probability of each candidate answer (its tokens and the end of the turn) after
    the question, with the image when there is one, exactly as stage II trains open-set answers."""
    turns = [
        (image, question, answer)
        for image, question, candidates in zip(images, questions, answers)
        for answer in candidates
    ]
    inputs, answer_lengths = encode_answered_questions(processor, turns)
    inputs = inputs.to(model.device)
    if "pixel_values" in inputs:
        inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
    log_probs = torch.log_softmax(model(**inputs).logits[:, :-1].float(), dim=-1)
    token_log_probs = log_probs.gather(-1, inputs["input_ids"][:, 1:, None])[..., 0]
    lengths = inputs["attention_mask"].sum(1).tolist()
    # Position t predicts token t + 1: the answer's tokens [length - n, length) are predicted at [length - n - 1, length - 1).
    sums = [
        token_log_probs[row, length - n - 1 : length - 1].sum().item()
        for row, (length, n) in enumerate(zip(lengths, answer_lengths))
    ]
    scores, start = [], 0
    for candidates in answers:
        scores.append(sums[start : start + len(candidates)])
        start += len(candidates)
    return scores


class NameLikelihoodScorer(MultipleChoiceScorer):
    """The option whose name is the most likely answer to the open-set question wins.

    Scores are summed, not length-normalised, log-probabilities: the sum is the log-probability of the whole answer
    string, the quantity a model's own answer maximises. Once its first tokens are out, the rest of a name is
    nearly certain, so a per-token mean would reward long names for their easy tail rather than for being right.
    The end-of-turn token is part of the answer, so a name is not credited for being the prefix of another.
    """

    name = "name_likelihood"

    def chat(self, options: list[str], superclass: str | None, protocol: Protocol = "ours") -> str:
        """The open-set question (no options, so the same under both protocols); names are scored as its answer."""
        return open_set_prompt(superclass or GENERIC_SUPERCLASS)

    def score(self, images, chats, options):
        names = [[display_class_name(option) for option in shown] for shown in options]
        scores = answer_log_likelihoods(self.model, self.processor, images, chats, names)
        results = []
        for row in scores:
            best = max(range(len(row)), key=row.__getitem__)
            results.append({"prediction": best, "name_log_likelihoods": [round(value, 4) for value in row]})
        return results
