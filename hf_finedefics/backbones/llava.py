from __future__ import annotations

from .base import VisionLanguageBackbone, register_backbone


@register_backbone
class LlavaBackbone(VisionLanguageBackbone):
    """LLaVA-1.5: CLIP encoder -> two-layer MLP projector (the connector) -> Llama/Vicuna."""

    model_types = ("llava",)
    lora_target_modules = r".*(language_model|multi_modal_projector).*(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj|linear_1|linear_2)$"
    vision_encoder_name = "vision_tower"
    image_input_names = ("pixel_values", "image_sizes")
