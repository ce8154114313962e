"""The stage I forward and objective (paper section 3.2, eq. 5-8), shared by both trainers.

Stage I trains with it alone (`ContrastiveAlignmentTrainer`); the one-stage paradigm of stage II (Table 3c) adds
it to the instruction loss at every step (`stage1_objective_loss`). `cached_stage1_objective` computes the same
objective with gradient caching (GradCache, Gao et al. 2021), so the contrastive batch is not bounded by memory.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from peft import PeftModel
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from .backbones import get_backbone
from .embeddings import object_embeddings, text_embeddings
from .losses import AttributeAugmentedContrastiveLoss, distributed_is_active

# (model, batch) -> (weighted loss, unweighted terms to log)
AuxiliaryLoss = Callable[[nn.Module, dict[str, Any]], tuple[torch.Tensor, dict[str, torch.Tensor]]]


@dataclass
class ContrastiveAlignmentOutput(ModelOutput):
    object_embeds: torch.Tensor | None = None
    attribute_embeds: torch.Tensor | None = None
    category_embeds: torch.Tensor | None = None
    neg_attribute_embeds: torch.Tensor | None = None
    neg_category_embeds: torch.Tensor | None = None
    text_embeds: torch.Tensor | None = None
    generation_loss_sum: torch.Tensor | None = None
    generation_token_count: torch.Tensor | None = None


class ContrastiveAlignmentModel(nn.Module):
    """One stage I forward: objects, texts and the generation task through a VLM.

    It wraps the (peft) model so the whole step runs inside one `forward`, which is what DDP needs to
    synchronise gradients. The vision encoder and connector run once; their output feeds both the object
    embedding and the generation forward.
    """

    def __init__(self, model: PreTrainedModel | PeftModel):
        super().__init__()
        self.model = model
        self.backbone = get_backbone(model)
        # FSDP's auto-wrap policy looks for the decoder layer classes on the wrapped module.
        self._no_split_modules = getattr(self.backbone.model, "_no_split_modules", None)

    def activation_checkpointing_enable(self, **kwargs) -> None:
        """What the Trainer calls for `activation_checkpointing`: checkpoint the wrapped model's layers."""
        self.model.activation_checkpointing_enable(**kwargs)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        generation_labels: torch.Tensor | None = None,
        text_input_ids: torch.Tensor | None = None,
        text_attention_mask: torch.Tensor | None = None,
        attribute_index: torch.Tensor | None = None,
        category_index: torch.Tensor | None = None,
        neg_attribute_index: torch.Tensor | None = None,
        neg_category_index: torch.Tensor | None = None,
        **image_inputs: torch.Tensor,
    ) -> ContrastiveAlignmentOutput:
        """The whole step on a collator batch. Gradient caching runs parts of it: objects alone (image inputs only),
        objects and generation (image inputs and `generation_labels`) or texts alone (`text_*` only); parts go
        through `forward` all the same so that DDP and FSDP see every pass."""
        outputs = ContrastiveAlignmentOutput()
        if image_inputs:
            image_inputs = self.backbone.image_inputs(image_inputs)
            image_inputs["pixel_values"] = image_inputs["pixel_values"].to(self.backbone.model.dtype)
            image_outputs = self.backbone.image_features(image_inputs)
            outputs.object_embeds = object_embeddings(self.backbone, image_outputs, image_inputs, normalize=False)
            if generation_labels is not None:
                logits = self.model(
                    input_ids=input_ids,
                    attention_mask=attention_mask,
                    mm_encoder_outputs={"image": image_outputs},
                    use_cache=False,
                    **self.backbone.multimodal_forward_inputs(input_ids, image_inputs),
                ).logits
                shifted_labels = generation_labels[:, 1:]
                outputs.generation_loss_sum = F.cross_entropy(
                    logits[:, :-1].flatten(0, 1).float(), shifted_labels.flatten(), ignore_index=-100, reduction="sum"
                )
                outputs.generation_token_count = (shifted_labels != -100).sum()
        if text_input_ids is not None:
            outputs.text_embeds = text_embeddings(self.backbone, text_input_ids, text_attention_mask, normalize=False)
            if attribute_index is not None:
                outputs.attribute_embeds = outputs.text_embeds[attribute_index]
                outputs.category_embeds = outputs.text_embeds[category_index]
                outputs.neg_attribute_embeds = outputs.text_embeds[neg_attribute_index]
                outputs.neg_category_embeds = outputs.text_embeds[neg_category_index]
        return outputs


def generation_loss_scale(token_count: torch.Tensor, gather_across_processes: bool = True) -> torch.Tensor:
    """What turns a sum of answer-token cross-entropies into L_G^att, the mean over the answer tokens of the batch
    (of the global batch when gathering)."""
    count = token_count.float()
    if not (gather_across_processes and distributed_is_active()):
        return 1 / count.clamp(min=1)
    # DDP averages gradients over processes, so scale by the world size to get the gradient of the global mean.
    global_count = count.detach().clone()
    dist.all_reduce(global_count)
    return dist.get_world_size() / global_count.clamp(min=1)


def generation_loss(outputs: ContrastiveAlignmentOutput, gather_across_processes: bool = True) -> torch.Tensor:
    """L_G^att: mean cross-entropy over the answer tokens of the batch (of the global batch when gathering)."""
    return outputs.generation_loss_sum * generation_loss_scale(outputs.generation_token_count, gather_across_processes)


def stage1_objective(
    model: nn.Module, inputs: dict[str, torch.Tensor], contrastive_loss: AttributeAugmentedContrastiveLoss
) -> tuple[torch.Tensor, dict[str, torch.Tensor], ContrastiveAlignmentOutput]:
    """Eq. 8 on a `ContrastiveAlignmentCollator` batch: returns the weighted loss, the unweighted terms
    (`gen`, `oac`, `acc`, `ccc`) and the model outputs. `model` is a (DDP-wrapped) `ContrastiveAlignmentModel`;
    the weights, temperature and masking are `contrastive_loss.config`."""
    inputs = dict(inputs)
    labels = inputs.pop("class_labels", None)
    outputs: ContrastiveAlignmentOutput = model(**inputs)
    contrastive, terms = contrastive_loss(
        outputs.object_embeds,
        outputs.attribute_embeds,
        outputs.category_embeds,
        outputs.neg_attribute_embeds,
        outputs.neg_category_embeds,
        labels=labels,
    )
    terms = {"gen": generation_loss(outputs, contrastive_loss.gather_across_processes), **terms}
    return contrastive_loss.config.generation_loss_weight * terms["gen"] + contrastive, terms, outputs


TEXT_INPUTS = ("text_input_ids", "text_attention_mask")
TEXT_INDEXES = ("attribute_index", "category_index", "neg_attribute_index", "neg_category_index")
GENERATION_INPUTS = ("input_ids", "attention_mask", "generation_labels")


@contextlib.contextmanager
def _replayable_randomness(seed: int, device: torch.device) -> Iterator[None]:
    """Run a mini-batch in its own random stream, so its second pass draws the same dropout masks as its first.

    Each mini-batch gets a fresh seed rather than a snapshot of the global state: the generation forward that
    follows the replayed part in the second pass then draws numbers no other pass has used."""
    devices = [] if device.type == "cpu" else [device]
    with torch.random.fork_rng(devices=devices, device_type=device.type):
        torch.default_generator.manual_seed(seed)
        if devices:
            torch.get_device_module(device.type).manual_seed(seed)
        yield


def _mini_batches(size: int, mini_batch_size: int) -> list[slice]:
    return [slice(start, start + mini_batch_size) for start in range(0, size, mini_batch_size)]


def _rows_of(inputs: dict[str, torch.Tensor], rows: slice) -> dict[str, torch.Tensor]:
    """The inputs of a slice of rows. Qwen-VL's flat `pixel_values` stacks every image's patches (`image_grid_thw`
    holds each image's t x h x w), so it is cut at image boundaries rather than by row."""
    part = {key: value[rows] for key, value in inputs.items()}
    if "image_grid_thw" in inputs:
        grids = inputs["image_grid_thw"]
        offsets = torch.cat([grids.new_zeros(1), grids.prod(-1).cumsum(0)]).tolist()
        first, stop, _ = rows.indices(len(grids))
        part["pixel_values"] = inputs["pixel_values"][offsets[first] : offsets[stop]]
    return part


def cached_stage1_objective(
    model: nn.Module,
    inputs: dict[str, torch.Tensor],
    contrastive_loss: AttributeAugmentedContrastiveLoss,
    mini_batch_size: int,
    backward: Callable[[torch.Tensor], None] | None = None,
    no_sync: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
) -> tuple[torch.Tensor, dict[str, torch.Tensor], ContrastiveAlignmentOutput]:
    """`stage1_objective` with gradient caching: the same loss and gradients, in the memory of `mini_batch_size` rows.

    1. Embed the objects and the texts of the whole batch in mini-batches without a graph.
    2. Compute the contrastive terms (eq. 5-7) on the whole batch, gathered across processes as in the plain step,
       and their gradients with respect to the embeddings.
    3. Run each mini-batch again with a graph (same dropout masks) and backpropagate its embeddings against the
       cached gradients, together with its share of the generation loss L_G^att.

    `backward` runs the backward of each mini-batch (the trainer's, which scales for accumulation); all but the last
    run inside `no_sync()`, so a distributed model reduces gradients once. Without `backward` (evaluation), only the
    first pass runs, with the generation loss. Returns the detached loss, the terms and the first pass's outputs.
    """
    inputs = dict(inputs)
    labels = inputs.pop("class_labels", None)
    config = contrastive_loss.config
    rows = {key: value for key, value in inputs.items() if key not in TEXT_INPUTS + TEXT_INDEXES}
    texts = {key: inputs[key] for key in TEXT_INPUTS}
    batch_size, num_texts = len(inputs["input_ids"]), len(inputs["text_input_ids"])
    for key, value in rows.items():
        if len(value) != batch_size and not (key == "pixel_values" and "image_grid_thw" in rows):
            raise ValueError(
                f"Gradient caching splits the batch by rows, but input {key!r} has {len(value)} rows, not {batch_size}."
            )
    row_slices = _mini_batches(batch_size, mini_batch_size)
    text_slices = _mini_batches(num_texts, mini_batch_size)
    device = inputs["input_ids"].device
    seeds = torch.randint(2**62, (len(row_slices) + len(text_slices),)).tolist()
    row_seeds, text_seeds = seeds[: len(row_slices)], seeds[len(row_slices) :]
    generation_scale = generation_loss_scale(
        (inputs["generation_labels"][:, 1:] != -100).sum(), contrastive_loss.gather_across_processes
    )

    def run(part: dict[str, torch.Tensor], part_slice: slice, seed: int) -> ContrastiveAlignmentOutput:
        with _replayable_randomness(seed, device):
            return model(**_rows_of(part, part_slice))

    # Pass 1: no graph. Evaluation computes the generation loss here; training leaves it for pass 2.
    first_pass_rows = rows if backward is None else {k: v for k, v in rows.items() if k not in GENERATION_INPUTS}
    with torch.no_grad():
        row_outputs = [run(first_pass_rows, part, seed) for part, seed in zip(row_slices, row_seeds)]
        text_outputs = [run(texts, part, seed) for part, seed in zip(text_slices, text_seeds)]
    outputs = ContrastiveAlignmentOutput(
        object_embeds=torch.cat([output.object_embeds for output in row_outputs]),
        text_embeds=torch.cat([output.text_embeds for output in text_outputs]),
    )
    objects = outputs.object_embeds.detach().requires_grad_()
    all_texts = outputs.text_embeds.detach().requires_grad_()
    for name in TEXT_INDEXES:
        setattr(outputs, name.replace("_index", "_embeds"), outputs.text_embeds[inputs[name]])
    with torch.enable_grad():
        contrastive, terms = contrastive_loss(
            objects,
            all_texts[inputs["attribute_index"]],
            all_texts[inputs["category_index"]],
            all_texts[inputs["neg_attribute_index"]],
            all_texts[inputs["neg_category_index"]],
            labels=labels,
        )
    if backward is None:
        generation_sum = sum(output.generation_loss_sum for output in row_outputs)
    else:
        object_grads, text_grads = torch.autograd.grad(contrastive, [objects, all_texts], materialize_grads=True)
        # Pass 2: texts first, then rows, whose last mini-batch (which uses every trainable part) syncs gradients.
        generation_sum = 0.0
        num_parts = len(text_slices) + len(row_slices)
        parts = [(texts, part, seed, text_grads, "text_embeds") for part, seed in zip(text_slices, text_seeds)]
        parts += [(rows, part, seed, object_grads, "object_embeds") for part, seed in zip(row_slices, row_seeds)]
        for index, (part_inputs, part, seed, grads, name) in enumerate(parts):
            with no_sync() if index < num_parts - 1 else contextlib.nullcontext():
                output = run(part_inputs, part, seed)
                surrogate = (getattr(output, name) * grads[part]).sum()
                if output.generation_loss_sum is not None:
                    surrogate = (
                        surrogate + config.generation_loss_weight * generation_scale * output.generation_loss_sum
                    )
                    generation_sum = generation_sum + output.generation_loss_sum.detach()
                backward(surrogate)
    terms = {"gen": generation_sum * generation_scale, **{name: value.detach() for name, value in terms.items()}}
    return (config.generation_loss_weight * terms["gen"] + contrastive).detach(), terms, outputs


def stage1_objective_loss(contrastive_loss: AttributeAugmentedContrastiveLoss) -> AuxiliaryLoss:
    """Stage I's objective (eq. 8) as an auxiliary loss on `ContrastiveAlignmentCollator` batches, for the one-stage
    paradigm (Table 3c): stage I and stage II losses together, with the settings of `contrastive_loss.config`."""

    def loss(model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        total, terms, _ = stage1_objective(ContrastiveAlignmentModel(model), batch, contrastive_loss)
        return total, terms

    return loss
