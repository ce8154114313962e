import pytest
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

from hf_finedefics.chat import display_class_name, multiple_choice_chat, prompt_completion
from hf_finedefics.evaluation import (
    GenerationScorer,
    LikelihoodScorer,
    NameLikelihoodScorer,
    load_mc_items,
    parse_choice,
    score_items,
)
from hf_finedefics.testing import create_tiny_checkpoint
from tests.architectures import TINY_ARCHITECTURE_PARAMS


@pytest.fixture(scope="module", params=TINY_ARCHITECTURE_PARAMS)
def tiny_model(request):
    path = create_tiny_checkpoint(request.param)
    return AutoModelForImageTextToText.from_pretrained(path).eval(), AutoProcessor.from_pretrained(path)


@pytest.fixture
def questions(native_dataset):
    root, options_file = native_dataset("dog-120")
    items = load_mc_items("dog-120", root, options_file)[:5]
    options = [item.shuffled_options(seed=0) for item in items]
    images = [Image.open(item.image).convert("RGB") for item in items]
    return items, images, options


def test_chat_has_image_question_and_generation_prompt(tiny_model):
    _, processor = tiny_model
    chat = multiple_choice_chat(processor, ["Japanese_spaniel", "Chihuahua", "Pug", "Boxer"], "dog")
    assert "Which of these dogs is shown in the image?" in chat
    assert "A. Japanese spaniel\nB. Chihuahua" in chat
    assert chat.index(processor.image_token) < chat.index("Which of these dogs")
    assert chat.rstrip().endswith(("Assistant:", "ASSISTANT:", "<start_of_turn>model", "<|im_start|>assistant"))


def test_letter_tokens_cover_bare_and_spaced_letters(tiny_model):
    model, processor = tiny_model
    chat = multiple_choice_chat(processor, ["a", "b", "c", "d"], "dog")
    letter_ids = LikelihoodScorer(model, processor).letter_token_ids(chat, 4)
    tokenizer = processor.tokenizer
    for letter, ids in zip("ABCD", letter_ids):
        expected = {tokenizer.convert_tokens_to_ids(letter), tokenizer.convert_tokens_to_ids(f"Ġ{letter}")}
        assert set(ids) == expected


def _single_letter_log_probs(model, processor, image, chat, letter_ids):
    """The reference: an unpadded, unbatched forward over the full sequence (with one BOS: Gemma 3's chat already
    starts with it)."""
    written = chat.startswith(processor.tokenizer.bos_token or "\0")
    inputs = processor(text=[chat], images=[[image]], add_special_tokens=not written, return_tensors="pt")
    log_probs = torch.log_softmax(model(**inputs).logits[0, -1].float(), dim=-1)
    return [torch.logsumexp(log_probs[ids], dim=0).item() for ids in letter_ids]


def test_likelihood_scores_match_unbatched_forward(tiny_model, questions):
    model, processor = tiny_model
    items, images, options = questions
    scorer = LikelihoodScorer(model, processor)
    chats = [multiple_choice_chat(processor, shown, "dog") for shown in options]
    results = scorer.score(images, chats, options)
    for image, chat, result in zip(images, chats, results):
        reference = _single_letter_log_probs(model, processor, image, chat, scorer.letter_token_ids(chat, 4))
        assert result["letter_log_probs"] == pytest.approx(reference, abs=2e-3)
        assert result["prediction"] == max(range(4), key=reference.__getitem__)


def test_generation_is_batch_invariant_and_parsed(tiny_model, questions):
    model, processor = tiny_model
    items, images, options = questions
    scorer = GenerationScorer(model, processor, max_new_tokens=6)
    chats = [multiple_choice_chat(processor, shown, "dog") for shown in options]
    batched = scorer.score(images, chats, options)
    one_by_one = [scorer.score([image], [chat], [shown])[0] for image, chat, shown in zip(images, chats, options)]
    assert [result["response"] for result in batched] == [result["response"] for result in one_by_one]
    assert all(result["response"] for result in batched)
    for result, shown in zip(batched, options):
        assert result["prediction"] == parse_choice(result["response"], shown)


def test_score_items_records(tiny_model, questions, tmp_path):
    model, processor = tiny_model
    items, _, options = questions
    results = score_items(
        LikelihoodScorer(model, processor), items, tmp_path / "results.jsonl", superclass="dog", batch_size=2
    )
    assert [result["image"] for result in results] == [item.image_id for item in items]
    assert [result["options"] for result in results] == options
    assert all(result["options"][result["answer"]] == result["groundtruth"] for result in results)
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == len(items)


def test_name_likelihood_sums_the_answer_tokens_like_an_unbatched_forward(tiny_model, questions):
    model, processor = tiny_model
    items, images, options = questions
    scorer = NameLikelihoodScorer(model, processor)
    question = scorer.chat(options[0], "dog")
    assert question == "What is the name of the dog in this image?"
    results = scorer.score(images[:2], [question] * 2, options[:2])
    for image, shown, result in zip(images[:2], options[:2], results):
        reference = []
        for name in shown:
            messages = [
                {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]},
                {"role": "assistant", "content": [{"type": "text", "text": display_class_name(name)}]},
            ]
            rendered = prompt_completion(processor, messages)
            inputs = processor(
                text=[rendered["prompt"] + rendered["completion"]],
                images=[[image]],
                add_special_tokens=False,
                return_tensors="pt",
            )
            answer = processor.tokenizer(rendered["completion"], add_special_tokens=False)["input_ids"]
            log_probs = torch.log_softmax(model(**inputs).logits[0, :-1].float(), dim=-1)
            targets = inputs["input_ids"][0, 1:]
            assert targets[-len(answer) :].tolist() == answer  # the answer is the sequence's tail
            reference.append(log_probs[-len(answer) :].gather(-1, targets[-len(answer) :, None]).sum().item())
        assert result["name_log_likelihoods"] == pytest.approx(reference, abs=1e-3)
        assert result["prediction"] == max(range(len(reference)), key=reference.__getitem__)
