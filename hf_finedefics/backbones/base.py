"""What Finedefics needs from a vision-language model family, in one small adapter per family.

The trainer, the losses and the analyses only talk to a `VisionLanguageBackbone`; supporting a new family
(Qwen2-VL, InternVL, ...) means one new subclass registered with `register_backbone`, nothing else.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from peft import LoraConfig
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPooling

_REGISTRY: dict[str, type[VisionLanguageBackbone]] = {}


def register_backbone(cls: type[VisionLanguageBackbone]) -> type[VisionLanguageBackbone]:
    for model_type in cls.model_types:
        _REGISTRY[model_type] = cls
    return cls


def supported_model_types() -> list[str]:
    return sorted(_REGISTRY)


def unwrap_model(model: nn.Module) -> PreTrainedModel:
    """The transformers model inside DDP / peft / our stage-I wrapper (LoRA layers stay in place)."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, nn.Module):  # DDP, FSDP
            model = model.module
        elif hasattr(model, "get_base_model"):  # peft.PeftModel
            model = model.get_base_model()
        elif isinstance(model, PreTrainedModel):
            return model
        elif hasattr(model, "model") and isinstance(model.model, nn.Module):  # ContrastiveAlignmentModel
            model = model.model
        else:
            raise TypeError(f"Cannot find a transformers model inside {type(model).__name__}.")


class VisionLanguageBackbone:
    """Access to the parts of a VLM named in the paper's section 2: vision encoder V, connector F,
    embedding layer E and LLM layers L.

    Subclasses set the class attributes; the defaults use the `get_image_features` / `get_decoder` API that
    transformers' image-text-to-text models share.
    """

    model_types: ClassVar[tuple[str, ...]] = ()
    # peft `target_modules` regex: LoRA on the LLM and the connector, never the vision encoder.
    lora_target_modules: ClassVar[str]
    # Attribute of the inner `model.model` holding the vision encoder V (frozen in both stages).
    vision_encoder_name: ClassVar[str]
    # Processor outputs that carry the image.
    image_input_names: ClassVar[tuple[str, ...]] = ("pixel_values",)

    def __init__(self, model: nn.Module):
        self.model = unwrap_model(model)

    @property
    def language_model(self) -> nn.Module:
        """The LLM layers L (without the LM head)."""
        return self.model.get_decoder()

    @property
    def input_embeddings(self) -> nn.Embedding:
        """The embedding layer E of the LLM."""
        return self.model.get_input_embeddings()

    @property
    def vision_encoder(self) -> nn.Module:
        return getattr(self.model.model, self.vision_encoder_name)

    def freeze_vision_encoder(self) -> None:
        """Full fine-tuning keeps V frozen like LoRA does (the paper trains only the connector and the LLM)."""
        self.vision_encoder.requires_grad_(False)

    @property
    def eos_token_id(self) -> int:
        eos = self.model.config.get_text_config().eos_token_id
        if isinstance(eos, list):
            eos = eos[0]
        if eos is None:
            raise ValueError(f"{type(self.model).__name__}'s text config has no eos_token_id; Finedefics needs one.")
        return eos

    def lora_config(self, r: int = 8, alpha: int = 8, dropout: float = 0.2, **kwargs) -> LoraConfig:
        """The paper's LoRA: gaussian init on the LLM and the connector; the vision encoder stays frozen."""
        kwargs.setdefault("target_modules", self.lora_target_modules)
        return LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, init_lora_weights="gaussian", **kwargs)

    def image_inputs(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {name: batch[name] for name in self.image_input_names if name in batch}

    def image_features(self, image_inputs: dict[str, torch.Tensor]) -> BaseModelOutputWithPooling:
        """Run V and F once. `pooler_output` holds one (m_i, D) visual token sequence S_o per sample, and the
        whole output can be handed back to the model's forward as `mm_encoder_outputs={"image": ...}`."""
        return self.model.get_image_features(**image_inputs, return_dict=True)

    def object_llm_inputs(
        self,
        image_inputs: dict[str, torch.Tensor],
        image_outputs: BaseModelOutputWithPooling,
        visual_mask: torch.Tensor,
        attention_mask: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """Extra LLM-layer inputs for object sequences (visual tokens, then EOS, right-padded): `visual_mask` marks
        the visual tokens, `attention_mask` every real token. Families whose LLM places image tokens in a special
        way (Qwen's 3D M-RoPE positions) return it here, so a visual-token-only sequence sees what it sees in a
        prompt; the default 1D positions 0..n-1 are right for the others. An `attention_mask` returned here replaces
        the padding mask in the LLM call (Gemma 3's bidirectional image block)."""
        return {}

    def multimodal_forward_inputs(
        self, input_ids: torch.Tensor, image_inputs: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """Inputs the model's forward needs beside `mm_encoder_outputs` when the image features are precomputed
        (stage I's generation task), for sequences the collator assembled itself."""
        return {}


def get_backbone(model: nn.Module) -> VisionLanguageBackbone:
    model_type = unwrap_model(model).config.model_type
    if model_type not in _REGISTRY:
        raise ValueError(
            f"Model type {model_type!r} has no Finedefics backbone adapter; supported: {supported_model_types()}. "
            "Add a `VisionLanguageBackbone` subclass in hf_finedefics/backbones/."
        )
    return _REGISTRY[model_type](model)
