from __future__ import annotations

from .base import VisionLanguageBackbone, register_backbone


@register_backbone
class Idefics3Backbone(VisionLanguageBackbone):
    """Idefics3 / SmolVLM / SmolVLM2: SigLIP encoder -> pixel shuffle + linear projection (the connector) -> Llama.

    The image processor splits an image into tiles plus a downscaled global view (`do_image_splitting`); each sample's
    `pooler_output` holds all its tiles' tokens in the order the prompt lays them out (row-major tiles, then the global
    image), without the `<row_i_col_j>` / `<global-img>` text tokens that separate them in a prompt. Tiles padded into
    a batch are all-zero and dropped by the model; `pixel_attention_mask` marks the padded pixels of each tile.
    """

    model_types = ("idefics3", "smolvlm")
    lora_target_modules = r".*(text_model|connector).*(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj|proj)$"
    vision_encoder_name = "vision_model"
    image_input_names = ("pixel_values", "pixel_attention_mask")
