"""Chat rendering, written once for every stage: stage I's collator, stage II's trainer, evaluation, the demo's
recognizer, analysis and world pretraining all talk to the model through the functions here, so training and
inference render the same turns the same way.

It owns:

- the messages of a question about an image (`user_turn`, `assistant_turn`) and the question builders
  (`question_chat`, `multiple_choice_text`, `multiple_choice_chat`, `open_set_chat`), with class names shown as
  the model reads them (`display_class_name`);
- the prompt/completion split of a conversation (`split_last_turn`, `prompt_completion`) and the rendering of an
  answered question exactly as stage II trains it (`render_answered_question`, `encode_answered_questions`);
- the EOS rule (`closes_turn`): an answer whose template does not close the turn with a special token gets EOS;
- how a rendered chat is tokenized (`special_prefix`, `adds_special_tokens`, `special_token_ids`).

A low-level module: it imports transformers types and the shared prompts, nothing of the trainers, evaluation,
the pipeline or the run code (they import it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any

from PIL import Image
from transformers import BatchFeature, PreTrainedTokenizerBase, ProcessorMixin

from dataset_builders.prompts import PROTOCOLS, Protocol, multiple_choice_prompt, open_set_prompt

Messages = list[dict[str, Any]]


def display_class_name(name: str) -> str:
    """Class names as the model reads them (as training data writes them): the option files say
    "Japanese_spaniel", the model sees "Japanese spaniel"."""
    return " ".join(name.replace("_", " ").split())


def user_turn(question: str, with_image: bool = True) -> dict[str, Any]:
    """The user message asking `question`, after the image placeholder when there is an image."""
    image = [{"type": "image"}] if with_image else []
    return {"role": "user", "content": [*image, {"type": "text", "text": question}]}


def assistant_turn(answer: str) -> dict[str, Any]:
    return {"role": "assistant", "content": [{"type": "text", "text": answer}]}


def question_chat(processor: ProcessorMixin, question: str, with_image: bool = True) -> str:
    """The rendered chat of one user turn (the image, then `question`) ending in the generation prompt."""
    return processor.apply_chat_template([user_turn(question, with_image)], add_generation_prompt=True, tokenize=False)


def multiple_choice_text(options: list[str], superclass: str | None, protocol: Protocol = "ours") -> str:
    """The multiple-choice question of `protocol` (before the chat template) for the options in the given order:
    FOCI's shows the option names as in the option file, ours as the model reads them."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"Unknown protocol {protocol!r}; choose from {', '.join(PROTOCOLS)}.")
    shown = options if protocol == "foci" else [display_class_name(option) for option in options]
    return multiple_choice_prompt(shown, superclass, protocol)


def multiple_choice_chat(
    processor: ProcessorMixin, options: list[str], superclass: str | None, protocol: Protocol = "ours"
) -> str:
    """The multiple-choice question of `protocol` with lettered options, rendered as a chat."""
    return question_chat(processor, multiple_choice_text(options, superclass, protocol))


def open_set_chat(processor: ProcessorMixin, superclass: str | None) -> str:
    """The stage II open-set question ("What is the name of the bird in this image?"), rendered as a chat."""
    return question_chat(processor, open_set_prompt(superclass))


def special_prefix(tokenizer: PreTrainedTokenizerBase) -> str:
    """The special tokens (e.g. BOS) the tokenizer puts before a text when it adds special tokens."""
    with_special = tokenizer("a")["input_ids"]
    without = tokenizer("a", add_special_tokens=False)["input_ids"]
    start = next(i for i in range(len(with_special)) if with_special[i : i + len(without)] == without)
    return tokenizer.decode(with_special[:start])


def adds_special_tokens(tokenizer: PreTrainedTokenizerBase, chats: Sequence[str]) -> bool:
    """Whether tokenizing rendered chats should add the tokenizer's special tokens: not when the chat template
    already wrote them (Gemma 3's template starts with <bos> and its tokenizer adds one too: two BOS otherwise)."""
    prefix = special_prefix(tokenizer)
    return not (prefix and all(chat.startswith(prefix) for chat in chats))


def special_token_ids(tokenizer: PreTrainedTokenizerBase) -> set[int]:
    """Every special token id: the named ones and the added tokens the vocabulary marks special (Gemma's
    <end_of_turn> is only the latter)."""
    marked = {index for index, token in tokenizer.added_tokens_decoder.items() if token.special}
    return set(tokenizer.all_special_ids) | marked


def closes_turn(tokenizer: PreTrainedTokenizerBase, answer_ids: Iterable[int]) -> bool:
    """The EOS rule: whether a rendered answer's tokens already hold a special token closing the turn. Templates that
    close it (Idefics2's <end_of_utterance>, Gemma's <end_of_turn>, ChatML's <|im_end|>) teach the model to stop;
    the others (LLaVA-1.5) end answers with EOS, as in their original training, so callers append it."""
    return bool(special_token_ids(tokenizer) & set(answer_ids))


def split_last_turn(processor: ProcessorMixin, messages: Messages) -> tuple[str, str]:
    """A conversation rendered as (prompt, answer) strings: everything before the last turn, with the generation
    prompt, and the rest of the rendering (the assistant's answer and what the template closes it with)."""
    if messages[-1]["role"] != "assistant":
        raise ValueError(f"A conversation must end with the assistant's answer, got role {messages[-1]['role']!r}.")
    prompt = processor.apply_chat_template(messages[:-1], add_generation_prompt=True, tokenize=False)
    full = processor.apply_chat_template(messages, tokenize=False)
    if not full.startswith(prompt):
        raise ValueError(
            "The chat template renders the prompt differently with and without the answer, so the answer cannot be "
            f"told apart.\nprompt: {prompt!r}\nfull: {full!r}"
        )
    return prompt, full[len(prompt) :]


def prompt_completion(processor: ProcessorMixin, messages: Messages) -> dict[str, str]:
    """A conversation as TRL's {"prompt", "completion"} strings, as stage II trains it: the prompt is exactly what
    inference feeds the model (with the special prefix the processor adds when it tokenizes), the completion the
    answer, ending with EOS where the template does not close the turn (`closes_turn`)."""
    tokenizer = processor.tokenizer
    prompt, completion = split_last_turn(processor, messages)
    if not closes_turn(tokenizer, tokenizer(completion, add_special_tokens=False)["input_ids"]):
        completion = completion.rstrip() + tokenizer.eos_token
    prefix = special_prefix(tokenizer)
    if not prompt.startswith(prefix):
        prompt = prefix + prompt
    return {"prompt": prompt, "completion": completion}


def render_answered_question(
    processor: ProcessorMixin, with_image: bool, question: str, answer: str
) -> tuple[str, int]:
    """One single-turn chat rendered exactly as stage II trains it, and the number of answer tokens (the answer and
    the end of the turn) that end it."""
    rendered = prompt_completion(processor, [user_turn(question, with_image), assistant_turn(answer)])
    answer_length = len(processor.tokenizer(rendered["completion"], add_special_tokens=False)["input_ids"])
    return rendered["prompt"] + rendered["completion"], answer_length


def encode_answered_questions(
    processor: ProcessorMixin,
    turns: list[tuple[Image.Image | None, str, str]],
    render: Callable[[bool, str, str], tuple[str, int]] | None = None,
) -> tuple[BatchFeature, list[int]]:
    """Right-padded model inputs of single-turn chats (image or None, question, answer), rendered exactly as stage II
    trains them, and the number of answer tokens ending each sequence. `render(with_image, question, answer)`
    replaces `render_answered_question` (e.g. a memoised one, for a pretraining loop that repeats its questions)."""
    render = render or partial(render_answered_question, processor)
    texts, pictures, answer_lengths = [], [], []
    for image, question, answer in turns:
        text, answer_length = render(image is not None, question, answer)
        texts.append(text)
        answer_lengths.append(answer_length)
        pictures.append([image] if image is not None else [])
    inputs = processor(
        text=texts,
        images=pictures if any(pictures) else None,
        padding=True,
        padding_side="right",
        add_special_tokens=False,
        return_tensors="pt",
    )
    return inputs, answer_lengths
