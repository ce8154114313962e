"""The stage I forward and objective (paper section 3.2, eq. 5-8), shared by both trainers.

Stage I trains with it alone (`ContrastiveAlignmentTrainer`); the one-stage paradigm of stage II (Table 3c) adds
it to the instruction loss at every step (`stage1_objective_loss`).
"""

from __future__ import annotations

from collections.abc import Callable
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
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        generation_labels: torch.Tensor,
        text_input_ids: torch.Tensor,
        text_attention_mask: torch.Tensor,
        attribute_index: torch.Tensor,
        category_index: torch.Tensor,
        neg_attribute_index: torch.Tensor,
        neg_category_index: torch.Tensor,
        **image_inputs: torch.Tensor,
    ) -> ContrastiveAlignmentOutput:
        image_inputs = self.backbone.image_inputs(image_inputs)
        image_inputs["pixel_values"] = image_inputs["pixel_values"].to(self.backbone.model.dtype)
        image_outputs = self.backbone.image_features(image_inputs)
        objects = object_embeddings(self.backbone, image_outputs, image_inputs, normalize=False)

        logits = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            mm_encoder_outputs={"image": image_outputs},
            use_cache=False,
            **self.backbone.multimodal_forward_inputs(input_ids, image_inputs),
        ).logits
        shifted_labels = generation_labels[:, 1:]
        generation_loss_sum = F.cross_entropy(
            logits[:, :-1].flatten(0, 1).float(), shifted_labels.flatten(), ignore_index=-100, reduction="sum"
        )

        texts = text_embeddings(self.backbone, text_input_ids, text_attention_mask, normalize=False)
        return ContrastiveAlignmentOutput(
            object_embeds=objects,
            attribute_embeds=texts[attribute_index],
            category_embeds=texts[category_index],
            neg_attribute_embeds=texts[neg_attribute_index],
            neg_category_embeds=texts[neg_category_index],
            generation_loss_sum=generation_loss_sum,
            generation_token_count=(shifted_labels != -100).sum(),
        )


def generation_loss(outputs: ContrastiveAlignmentOutput, gather_across_processes: bool = True) -> torch.Tensor:
    """L_G^att: mean cross-entropy over the answer tokens of the batch (of the global batch when gathering)."""
    count = outputs.generation_token_count.float()
    if not (gather_across_processes and distributed_is_active()):
        return outputs.generation_loss_sum / count.clamp(min=1)
    # DDP averages gradients over processes, so scale by the world size to get the gradient of the global mean.
    global_count = count.detach().clone()
    dist.all_reduce(global_count)
    return outputs.generation_loss_sum * dist.get_world_size() / global_count.clamp(min=1)


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


def stage1_objective_loss(contrastive_loss: AttributeAugmentedContrastiveLoss) -> AuxiliaryLoss:
    """Stage I's objective (eq. 8) as an auxiliary loss on `ContrastiveAlignmentCollator` batches, for the one-stage
    paradigm (Table 3c): stage I and stage II losses together, with the settings of `contrastive_loss.config`."""

    def loss(model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        total, terms, _ = stage1_objective(ContrastiveAlignmentModel(model), batch, contrastive_loss)
        return total, terms

    return loss
