from __future__ import annotations

import torch
from transformers.modeling_outputs import BaseModelOutputWithPooling

from .base import register_backbone
from .qwen2_5_vl import Qwen2_5_VLBackbone


@register_backbone
class Qwen3VLBackbone(Qwen2_5_VLBackbone):
    """Qwen3-VL: ViT -> patch merger -> Qwen3, with the same flat `pixel_values` / `image_grid_thw` layout and 3D
    M-RoPE as Qwen2.5-VL (so the same object positions and forward inputs), plus DeepStack: `get_image_features`
    also returns `deepstack_features`, one (tokens, D) map per chosen ViT layer, each from its own merger, which the
    full model adds to the hidden states at the image positions after the first LLM layers. The object embedding
    passes them too (`visual_pos_masks`, `deepstack_visual_embeds`), so it stays what the full model computes for the
    image followed by EOS. The deepstack mergers are part of the connector (LoRA, trained in full fine-tuning).
    """

    model_types = ("qwen3_vl",)
    lora_target_modules = (
        r".*(language_model.*(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
        r"|visual\.(merger|deepstack_merger_list\.\d+)\.linear_fc(1|2))$"
    )

    def freeze_vision_encoder(self) -> None:
        super().freeze_vision_encoder()
        self.vision_encoder.deepstack_merger_list.requires_grad_(True)

    def object_llm_inputs(
        self,
        image_inputs: dict[str, torch.Tensor],
        image_outputs: BaseModelOutputWithPooling,
        visual_mask: torch.Tensor,
        attention_mask: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        # visual_mask selects row-major positions: sample 0's tokens, then sample 1's, ... as the features concatenate.
        return {
            **super().object_llm_inputs(image_inputs, image_outputs, visual_mask, attention_mask),
            "visual_pos_masks": visual_mask,
            "deepstack_visual_embeds": [torch.cat(feature) for feature in image_outputs.deepstack_features],
        }
