"""Object and text last-token embeddings (paper sections 2 and 3.2) on both tiny architectures."""

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from transformers import AutoImageProcessor, AutoModelForImageTextToText

from hf_finedefics.backbones import get_backbone
from hf_finedefics.embeddings import (
    encode_images,
    encode_texts,
    image_inputs,
    last_token_pool,
    text_embeddings,
    tokenize_texts,
)
from hf_finedefics.testing import create_tiny_checkpoint

TEXTS = ["Chihuahua", "A small dog with large upright ears, a round head and a short smooth coat.", "Maltese dog"]


def test_last_token_pool_reads_the_mask():
    hidden = torch.arange(2 * 4 * 1, dtype=torch.float).view(2, 4, 1)
    right = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    left = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    assert last_token_pool(hidden, right).flatten().tolist() == [1.0, 7.0]
    assert last_token_pool(hidden, left).flatten().tolist() == [3.0, 7.0]


@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_text_embeddings_ignore_padding(tiny_model_tokenizer_and_image_processor, padding_side):
    model, tokenizer, _ = tiny_model_tokenizer_and_image_processor
    backbone = get_backbone(model)
    tokenizer.padding_side = padding_side
    batch = tokenize_texts(tokenizer, TEXTS, backbone.eos_token_id)
    assert (batch["input_ids"][batch["attention_mask"].bool()].view(-1) == backbone.eos_token_id).sum() == len(TEXTS)
    with torch.no_grad():
        batched = text_embeddings(backbone, batch["input_ids"], batch["attention_mask"])
        for i, text in enumerate(TEXTS):
            single = tokenize_texts(tokenizer, [text], backbone.eos_token_id)
            alone = text_embeddings(backbone, single["input_ids"], single["attention_mask"])
            torch.testing.assert_close(batched[i], alone[0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(batched.norm(dim=-1), torch.ones(len(TEXTS)))


def _assert_object_embeddings_are_what_the_full_model_computes(model, image_processor, images):
    """Embedded in one batch, each image's object embedding == the full model's forward on its image placeholders
    + EOS at the EOS position."""
    backbone = get_backbone(model)
    embeddings = encode_images(model, image_processor, images, batch_size=len(images))
    assert embeddings.shape == (len(images), model.config.get_text_config().hidden_size)
    with torch.no_grad():
        for i, image in enumerate(images):
            inputs = image_inputs(image_processor, [image], backbone)
            num_visual = len(backbone.image_features(inputs).pooler_output[0])
            input_ids = torch.tensor([[model.config.image_token_id] * num_visual + [backbone.eos_token_id]])
            hidden = model.model(
                input_ids=input_ids,
                attention_mask=torch.ones_like(input_ids),
                **{**inputs, **backbone.multimodal_forward_inputs(input_ids, inputs)},
            ).last_hidden_state[0, -1]
            torch.testing.assert_close(embeddings[i], F.normalize(hidden, dim=-1), rtol=1e-4, atol=1e-5)
    return embeddings


def test_object_embedding_is_what_the_full_model_computes(tiny_model_tokenizer_and_image_processor):
    """Visual tokens + EOS through the LLM alone == the full model's forward on image placeholders + EOS at the
    EOS position: same visual tokens, same order, same positions (Qwen's 3D M-RoPE included), same attention
    (Gemma 3's bidirectional image block). Images of different sizes and aspect ratios in one batch (different
    token counts / grids) match each image alone."""
    model, _, image_processor = tiny_model_tokenizer_and_image_processor
    images = [Image.new("RGB", size, (200, 40 * i, 10)) for i, size in enumerate([(40, 30), (64, 16), (16, 16)])]
    embeddings = _assert_object_embeddings_are_what_the_full_model_computes(model, image_processor, images)
    assert not torch.allclose(embeddings[0], embeddings[1])


def test_llava_onevision_object_is_the_packed_anyres_sequence():
    """A 128 px image tiles into 4x4 crops of 32 px: 16 x 16 patch tokens, more than anyres_max_9 allows (9 crops'
    worth, 144), so the model interpolates the grid to 12 x 12 and closes each row with image_newline, after the
    base image's 4 x 4 tokens: 16 + 12 * 13 = 172 tokens, embedded in a batch with an unpadded 2-crop image."""
    path = create_tiny_checkpoint("llava_onevision")
    model = AutoModelForImageTextToText.from_pretrained(path).eval()
    image_processor = AutoImageProcessor.from_pretrained(path)
    images = [Image.new("RGB", (128, 128), (20, 90, 200)), Image.new("RGB", (40, 30), (200, 40, 10))]
    with torch.no_grad():
        inputs = image_inputs(image_processor, images, get_backbone(model))
        assert [len(tokens) for tokens in get_backbone(model).image_features(inputs).pooler_output][0] == 172
    _assert_object_embeddings_are_what_the_full_model_computes(model, image_processor, images)


def test_mean_pooling_and_no_eos_variants_differ(tiny_model_and_processor):
    model, processor = tiny_model_and_processor
    images = [Image.new("RGB", (32, 32), (10, 200, 30))]
    last = encode_images(model, processor, images)
    assert not torch.allclose(last, encode_images(model, processor, images, pooling="mean"))
    assert not torch.allclose(last, encode_images(model, processor, images, append_eos=False))
    assert encode_texts(model, processor, TEXTS, pooling="mean").shape == (3, last.shape[1])


def test_unsupported_family_is_named(tiny_model_and_processor):
    model, _ = tiny_model_and_processor
    model.config.model_type = "qwen2_vl"
    with pytest.raises(
        ValueError,
        match=r"'qwen2_vl' has no Finedefics backbone adapter; supported: \['gemma3', 'idefics2', 'idefics3', 'llava', 'llava_onevision', 'qwen2_5_vl', 'qwen3_vl', 'smolvlm'\]",
    ):
        get_backbone(model)
