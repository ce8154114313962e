"""Gradient caching for stage I (`contrastive_mini_batch_size`): the same loss and gradients as the plain step."""

import pytest
import torch
from transformers import AutoModelForImageTextToText

from hf_finedefics.backbones import get_backbone
from hf_finedefics.testing import create_tiny_checkpoint, tiny_architecture
from hf_finedefics.trainer.contrastive_alignment_config import ContrastiveAlignmentConfig
from hf_finedefics.trainer.contrastive_alignment_trainer import ContrastiveAlignmentTrainer

from ..conftest import TINY_TRAINING_ARGS, synthetic_triples
from .test_contrastive_alignment_trainer import paper_processor

BATCH = 8


@pytest.fixture(scope="module")
def triples():
    return synthetic_triples(num_categories=8, train_per_category=2, test_per_category=1)


def _trainer(checkpoint, triples, tmp_path, mini_batch_size, dropout=0.0, eval_dataset=None, **overrides):
    model = AutoModelForImageTextToText.from_pretrained(checkpoint, dtype=torch.float64)
    config = ContrastiveAlignmentConfig(
        **{
            **TINY_TRAINING_ARGS,
            "output_dir": str(tmp_path / f"out-{mini_batch_size}"),
            "per_device_train_batch_size": BATCH,
            "max_steps": 1,
            "seed": 0,
            "train_sampling_strategy": "sequential",
            "contrastive_mini_batch_size": mini_batch_size,
            **overrides,
        }
    )
    trainer = ContrastiveAlignmentTrainer(
        model,
        config,
        train_dataset=triples,
        eval_dataset=eval_dataset,
        processing_class=paper_processor(model),
        peft_config=get_backbone(model).lora_config(dropout=dropout),
    )
    # LoRA starts with B = 0, where A gets no gradient: start both variants from the same random adapter instead.
    generator = torch.Generator().manual_seed(0)
    for name, param in trainer.model.named_parameters():
        if "lora_" in name:
            param.data = 0.1 * torch.randn(param.shape, generator=generator, dtype=param.dtype)
    return trainer


def _step(trainer, rows, seed=0):
    batch = trainer._prepare_inputs(trainer.data_collator(rows))
    trainer.current_gradient_accumulation_steps = 1
    trainer.model.zero_grad()
    torch.manual_seed(seed)
    loss = trainer.training_step(trainer.model, batch)
    grads = {name: p.grad.clone() for name, p in trainer.model.named_parameters() if p.requires_grad}
    return loss, grads


@pytest.mark.parametrize("mini_batch_size", [3, BATCH])
def test_cached_step_equals_the_plain_step(tiny_checkpoint, triples, tmp_path, mini_batch_size):
    rows = [triples[i] for i in range(BATCH)]
    plain_loss, plain_grads = _step(_trainer(tiny_checkpoint, triples, tmp_path, None), rows)
    cached = _trainer(tiny_checkpoint, triples, tmp_path, mini_batch_size)
    cached_loss, cached_grads = _step(cached, rows)
    # Exact in float64, except where the model rounds at float32 precision: Idefics3's and SmolVLM2's tiled vision
    # path (a relative 8e-8 on the loss between mini-batch 3 and 6, measured), Gemma 3, whose RMSNorm computes in
    # float32 (`x.float()`; 3.3e-8, measured), and the Qwen-VL families, whose vision RMSNorm and attention softmax
    # compute in float32 (9.2e-8 for Qwen2.5-VL, measured): there the check is at that precision.
    float32 = tiny_architecture(tiny_checkpoint) in ("idefics3", "smolvlm", "gemma3", "qwen2_5_vl", "qwen3_vl")
    loss_rtol, grad_rtol = (1e-6, 1e-5) if float32 else (1e-10, 1e-8)
    torch.testing.assert_close(cached_loss, plain_loss, rtol=loss_rtol, atol=0)
    assert plain_grads.keys() == cached_grads.keys()
    assert all(grad.abs().sum() > 0 for grad in plain_grads.values())  # every LoRA weight takes part
    for name, grad in plain_grads.items():
        torch.testing.assert_close(cached_grads[name], grad, rtol=grad_rtol, atol=1e-9 if float32 else 1e-12, msg=name)
    # the terms are logged as in the plain step
    assert set(cached._metrics["train"]) >= {"loss_gen", "loss_oac", "loss_acc", "loss_ccc"}


def test_second_pass_replays_dropout(tiny_checkpoint, triples, tmp_path):
    """With LoRA dropout 0.2, the graph pass of every mini-batch sees exactly the embeddings of its no-graph pass,
    so the cached gradients belong to the masks the gradient flows through."""
    trainer = _trainer(tiny_checkpoint, triples, tmp_path, 3, dropout=0.2)
    calls = []

    def record(module, args, kwargs, output):
        for name in ("object_embeds", "text_embeds"):
            if getattr(output, name) is not None:
                calls.append((name, torch.is_grad_enabled(), getattr(output, name).detach().clone()))

    trainer.model.register_forward_hook(record, with_kwargs=True)
    rows = [triples[i] for i in range(BATCH)]
    _step(trainer, rows)
    first = [(name, value) for name, grad, value in calls if not grad]
    second = [(name, value) for name, grad, value in calls if grad]
    assert len(first) == len(second) > 2
    # pass 2 runs texts first, then rows
    by_name = {name: [value for n, value in second if n == name] for name in ("object_embeds", "text_embeds")}
    for name in ("object_embeds", "text_embeds"):
        replayed = by_name[name]
        original = [value for n, value in first if n == name]
        assert len(replayed) == len(original)
        for a, b in zip(original, replayed):
            torch.testing.assert_close(b, a, rtol=0, atol=0)
    # each mini-batch draws its own masks: the same rows in two mini-batches embed differently
    calls.clear()
    _step(trainer, rows[:3] * 2)
    repeated = [value for name, grad, value in calls if name == "object_embeds" and not grad]
    assert len(repeated) == 2 and not torch.allclose(repeated[0], repeated[1])
    # dropout is really on: the same rows without dropout embed differently
    trainer.model.eval()
    with torch.no_grad():
        batch = trainer._prepare_inputs(trainer.data_collator(rows[:3]))
        image_inputs = get_backbone(trainer.model).image_inputs(batch)
        without_dropout = trainer.model(**image_inputs).object_embeds
    assert not torch.allclose(without_dropout, by_name["object_embeds"][0])


def test_cached_training_with_accumulation_gives_the_same_weights(triples, tmp_path):
    """Two optimizer steps of two accumulated batches each, then evaluation: same weights and logs."""
    checkpoint = create_tiny_checkpoint("idefics2")
    results = []
    for mini_batch_size in (None, 3):
        trainer = _trainer(
            checkpoint,
            triples,
            tmp_path,
            mini_batch_size,
            max_steps=2,
            per_device_train_batch_size=4,
            gradient_accumulation_steps=2,
            learning_rate=1e-2,
            eval_strategy="steps",
            eval_steps=2,
            per_device_eval_batch_size=BATCH,
            eval_dataset=triples.select(range(BATCH)),
        )
        trainer.train()
        weights = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
        results.append((weights, trainer.state.log_history))
    (plain_weights, plain_logs), (cached_weights, cached_logs) = results
    for name, weight in plain_weights.items():
        torch.testing.assert_close(cached_weights[name], weight, rtol=1e-7, atol=1e-10, msg=name)
    for plain, cached in zip(plain_logs, cached_logs):
        for key, value in plain.items():
            if key.startswith(("loss", "eval_loss", "eval_accuracy", "accuracy", "grad_norm")):
                # Float32 sums in another order (per mini-batch): equal to a few units of float32 epsilon (1.2e-7).
                assert cached[key] == pytest.approx(value, rel=1e-6), key


def test_rejects_a_non_positive_mini_batch_size(tmp_path):
    with pytest.raises(ValueError, match="contrastive_mini_batch_size must be positive, got 0"):
        ContrastiveAlignmentConfig(output_dir=str(tmp_path), contrastive_mini_batch_size=0)
