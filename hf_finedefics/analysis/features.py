"""Representations the analyses probe: objects, category names and generated category descriptions (section 2)."""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
from tqdm.auto import tqdm
from transformers import ProcessorMixin

from ..chat import adds_special_tokens, question_chat

DESCRIPTION_PROMPT = "Give a brief description of distinguishing features of {class_name}"


@torch.no_grad()
def generate_category_descriptions(
    model: torch.nn.Module,
    processor: ProcessorMixin,
    class_names: Sequence[str],
    *,
    num_descriptions: int = 200,
    max_new_tokens: int = 96,
    temperature: float = 1.0,
    top_p: float = 0.95,
    batch_size: int = 50,
    seed: int = 0,
    show_progress: bool = True,
) -> dict[str, list[str]]:
    """Sample `num_descriptions` answers per class to the paper's knowledge probe, "Give a brief description of
    distinguishing features of {CLASS NAME}" (text only, through the model's chat template)."""
    tokenizer = processor.tokenizer
    device = next(model.parameters()).device
    torch.manual_seed(seed)
    descriptions = {}
    for class_name in tqdm(class_names, desc="Generating descriptions", disable=not show_progress):
        prompt = question_chat(processor, DESCRIPTION_PROMPT.format(class_name=class_name), with_image=False)
        inputs = tokenizer([prompt], add_special_tokens=adds_special_tokens(tokenizer, [prompt]), return_tensors="pt")
        inputs = inputs.to(device)
        texts = []
        while len(texts) < num_descriptions:
            count = min(batch_size, num_descriptions - len(texts))
            generated = model.generate(
                **inputs,
                do_sample=True,
                temperature=temperature,
                top_p=top_p,
                max_new_tokens=max_new_tokens,
                num_return_sequences=count,
                pad_token_id=tokenizer.pad_token_id,
            )
            texts += tokenizer.batch_decode(generated[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        descriptions[class_name] = [text.strip() for text in texts]
    return descriptions


def mask_class_name(text: str, class_name: str) -> str:
    """Replace the class name (with its article, singular or plural) by a demonstrative pronoun, so a probe on
    the description cannot read the label: "The Chihuahua is tiny. Chihuahuas ..." -> "This is tiny. These ..."."""
    name = r"\s+".join(map(re.escape, class_name.split()))
    pattern = re.compile(rf"(?:\b(?:the|a|an)\s+)?\b{name}(?P<plural>e?s)?\b", re.IGNORECASE)

    def pronoun(match: re.Match) -> str:
        word = "these" if match.group("plural") else "this"
        at_sentence_start = match.start() == 0 or text[: match.start()].rstrip().endswith((".", "!", "?", "\n"))
        return word.capitalize() if at_sentence_start else word

    return pattern.sub(pronoun, text)
