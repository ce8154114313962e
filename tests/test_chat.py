"""The contract of `hf_finedefics.chat`, on the tiny processors: LLaVA-1.5's template ends an answer with nothing,
Idefics2's closes the turn with <end_of_utterance>."""

import pytest
from transformers import AutoProcessor

from hf_finedefics.chat import (
    assistant_turn,
    closes_turn,
    multiple_choice_text,
    prompt_completion,
    question_chat,
    render_answered_question,
    split_last_turn,
    user_turn,
)
from hf_finedefics.testing import create_tiny_checkpoint


@pytest.fixture(scope="module")
def llava():
    return AutoProcessor.from_pretrained(create_tiny_checkpoint("llava"))


@pytest.fixture(scope="module")
def idefics2():
    return AutoProcessor.from_pretrained(create_tiny_checkpoint("idefics2"))


def _answer_ids(processor, answer: str = "Pug") -> list[int]:
    _, rendered_answer = split_last_turn(processor, [user_turn("Which dog?"), assistant_turn(answer)])
    return processor.tokenizer(rendered_answer, add_special_tokens=False)["input_ids"]


def test_eos_is_appended_only_where_the_template_does_not_close_the_turn(llava, idefics2):
    assert not closes_turn(llava.tokenizer, _answer_ids(llava))
    assert closes_turn(idefics2.tokenizer, _answer_ids(idefics2))
    messages = [user_turn("Which dog?"), assistant_turn("Pug")]
    assert prompt_completion(llava, messages)["completion"] == f" Pug{llava.tokenizer.eos_token}"
    idefics2_completion = prompt_completion(idefics2, messages)["completion"]
    assert idefics2_completion == " Pug<end_of_utterance>\n"
    assert idefics2.tokenizer.eos_token not in idefics2_completion


def test_a_conversation_must_end_with_the_answer(llava):
    with pytest.raises(ValueError, match="must end with the assistant's answer"):
        split_last_turn(llava, [user_turn("Which dog?")])


def test_answered_question_counts_the_answer_and_the_end_of_the_turn(llava):
    text, answer_length = render_answered_question(llava, False, "Which dog?", "Pug")
    assert llava.image_token not in text
    ids = llava.tokenizer(text, add_special_tokens=False)["input_ids"]
    assert llava.tokenizer.decode(ids[-answer_length:]).strip() == f"Pug{llava.tokenizer.eos_token}"
    with_image, _ = render_answered_question(llava, True, "Which dog?", "Pug")
    assert with_image.index(llava.image_token) < with_image.index("Which dog?")


def test_question_chats(llava):
    assert llava.image_token not in question_chat(llava, "Describe a pug.", with_image=False)
    assert question_chat(llava, "Describe it.").rstrip().endswith("ASSISTANT:")
    assert "A. Japanese spaniel" in multiple_choice_text(["Japanese_spaniel", "Pug"], "dog")
    assert "A. Japanese_spaniel" in multiple_choice_text(["Japanese_spaniel", "Pug"], "dog", protocol="foci")
    with pytest.raises(ValueError, match="Unknown protocol"):
        multiple_choice_text(["a", "b"], "dog", protocol="paper")
