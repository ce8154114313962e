from __future__ import annotations

import torch
from peft import LoraConfig
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.models.gemma3.modeling_gemma3 import create_masks_for_vision_model, get_block_sequence_ids_for_mask

from .base import VisionLanguageBackbone, register_backbone


@register_backbone
class Gemma3Backbone(VisionLanguageBackbone):
    """Gemma 3: SigLIP encoder -> average pool to `mm_tokens_per_image` + RMSNorm + one projection matrix (the
    connector) -> Gemma 3.

    - `pooler_output` is (B, mm_tokens_per_image, D): a fixed number of tokens per image (256 on the Hub's
      checkpoints), in raster order of the pooled patch grid.
    - Image tokens attend to each other bidirectionally in the full model (`token_type_ids` 1 on the image soft
      tokens); text stays causal. The object sequence (visual tokens + EOS) gets that same mask, so the object
      embedding is what the full model computes at an EOS right after the image; the collator's prompt + answer
      sequences get `token_type_ids` back from `input_ids`.
    - The connector's projection is a bare `nn.Parameter`, not a linear layer: peft wraps such a weight only
      without LoRA dropout (`ParamWrapper`), which the paper's dropout 0.2 rules out, so the connector is trained in
      full and saved with the adapter (`modules_to_save`); LoRA goes on the LLM as for the other families.
    """

    model_types = ("gemma3",)
    lora_target_modules = r".*language_model.*(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)$"
    vision_encoder_name = "vision_tower"

    def lora_config(self, r: int = 8, alpha: int = 8, dropout: float = 0.2, **kwargs) -> LoraConfig:
        if kwargs.get("modules_to_save") is None:
            kwargs["modules_to_save"] = ["multi_modal_projector"]
        return super().lora_config(r=r, alpha=alpha, dropout=dropout, **kwargs)

    def object_llm_inputs(
        self,
        image_inputs: dict[str, torch.Tensor],
        image_outputs: BaseModelOutputWithPooling,
        visual_mask: torch.Tensor,
        attention_mask: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        # The masks the full model builds from token_type_ids (bidirectional within the image block, causal
        # elsewhere, sliding window on the local layers); the text model takes them precomputed.
        # Only the shape, dtype and device of the embeddings shape the mask.
        dtype = image_outputs.pooler_output.dtype
        inputs_embeds = torch.empty(*attention_mask.shape, 0, dtype=dtype, device=attention_mask.device)
        masks = create_masks_for_vision_model(
            config=self.model.config.get_text_config(),
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            cache=None,
            position_ids=None,
            block_sequence_ids=get_block_sequence_ids_for_mask(visual_mask.long()),
        )
        return {"attention_mask": masks}

    def multimodal_forward_inputs(
        self, input_ids: torch.Tensor, image_inputs: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        return {"token_type_ids": (input_ids == self.model.config.image_token_id).long()}
