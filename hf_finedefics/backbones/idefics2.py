from __future__ import annotations

import torch

from .base import VisionLanguageBackbone, register_backbone


@register_backbone
class Idefics2Backbone(VisionLanguageBackbone):
    """Idefics2: SigLIP encoder -> MLP projection + perceiver resampler (the connector) -> Mistral."""

    model_types = ("idefics2",)
    lora_target_modules = r".*(text_model|modality_projection|perceiver_resampler).*(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)$"
    vision_encoder_name = "vision_model"
    image_input_names = ("pixel_values", "pixel_attention_mask")

    def image_inputs(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        inputs = super().image_inputs(batch)
        # (batch, images per sample, C, H, W): a processor that splits images gives 5 per sample (4 crops + the image).
        if inputs["pixel_values"].ndim == 5 and inputs["pixel_values"].shape[1] > 1:
            raise ValueError(
                f"The processor gave {inputs['pixel_values'].shape[1]} images per sample: it splits images into crops "
                "(Idefics2's do_image_splitting, on by default on the Hub). Finedefics embeds each object as one whole "
                "image (64 visual tokens): load the processor with processor_kwargs {do_image_splitting: false}."
            )
        return inputs
