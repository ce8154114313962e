"""Tokenizers and processors built in-process (nothing can be downloaded): a byte-level BPE trained on a small
English corpus, with the special tokens and chat template of the real model it stands in for.

Used by the tiny test checkpoints (`hf_finedefics.testing`) and by the small pretrained model of the synthetic world
(`hf_finedefics.world`).
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import Idefics2Processor, PreTrainedTokenizerFast
from transformers.models.idefics2.image_processing_pil_idefics2 import Idefics2ImageProcessorPil

# The chat templates of HuggingFaceM4/idefics2-8b and llava-hf/llava-1.5-7b-hf.
IDEFICS2_CHAT_TEMPLATE = (
    "{% for message in messages %}{{message['role'].capitalize()}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
LLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}{% endif %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' '}}"
    "{% endfor %}{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)

# A small English corpus so the byte-level BPE learns whole words for the vocabulary FGVR prompts use.
_CORPUS = """
Which of these birds is shown in the image? Which of these dogs, aircraft, flowers, pets or cars is this?
Choices: A. B. C. D. Answer with the letter from the given choices directly. The answer is
Describe this image in details. Describe the color, shape, texture and size of the object in this photo.
Summarize the information you get about the bird from the general description and attribute description
with five sentences. Your task is to tell me what are the useful attributes for distinguishing species.
The bird has a red crest, black wings, a white belly, a short curved bill, long legs and a striped tail.
The dog is small with a round head, large ears, a fluffy coat, a pointed snout and a curled tail.
The aircraft has two engines under swept wings, a narrow body, a tall tail fin and winglets.
The flower has five pink petals with yellow spots, a green stem and a dark center.
The creature is tiny, medium or large; smooth, spotted, striped or scaly; round, square, triangle, star.
Its body is blue, green, orange, purple, brown, grey, gold. It looks like a Chihuahua or a Japanese spaniel.
"""


def byte_level_tokenizer(
    special_tokens: list[str], extra_corpus: Iterable[str] = (), vocab_size: int = 768, **special_token_kwargs: str
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE (so any text encodes) on the corpus above plus `extra_corpus` (the words a model
    must read as whole tokens, e.g. a synthetic world's category names) and wrap it for transformers."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator([*_CORPUS.split("\n") * 4, *extra_corpus], trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, **special_token_kwargs)


def idefics2_processor(
    image_size: int,
    image_seq_len: int,
    extra_corpus: Iterable[str] = (),
    vocab_size: int = 768,
    do_image_splitting: bool = False,
) -> Idefics2Processor:
    """An Idefics2 processor for `image_size` images (whole by default, as the paper evaluates; `do_image_splitting`
    adds 4 crops like the Hub's processor) whose tokenizer is trained in-process; the processor adds
    <fake_token_around_image>, <image> and <end_of_utterance> like the real one."""
    tokenizer = byte_level_tokenizer(
        ["<unk>", "<s>", "</s>"],
        extra_corpus,
        vocab_size,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<unk>",
    )
    image_processor = Idefics2ImageProcessorPil(
        do_image_splitting=do_image_splitting, size={"shortest_edge": image_size, "longest_edge": image_size}
    )
    return Idefics2Processor(
        image_processor, tokenizer, image_seq_len=image_seq_len, chat_template=IDEFICS2_CHAT_TEMPLATE
    )
