from __future__ import annotations

from .base import VisionLanguageBackbone, register_backbone


@register_backbone
class Idefics2Backbone(VisionLanguageBackbone):
    """Idefics2: SigLIP encoder -> MLP projection + perceiver resampler (the connector) -> Mistral."""

    model_types = ("idefics2",)
    lora_target_modules = r".*(text_model|modality_projection|perceiver_resampler).*(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)$"
    vision_encoder_name = "vision_model"
    image_input_names = ("pixel_values", "pixel_attention_mask")
