from __future__ import annotations

from .base import VisionLanguageBackbone, register_backbone


@register_backbone
class LlavaOnevisionBackbone(VisionLanguageBackbone):
    """LLaVA-OneVision: SigLIP encoder -> two-layer MLP projector (the connector) -> Qwen2, with anyres tiling.

    The image processor resizes an image onto the best of `image_grid_pinpoints` and cuts it into crops of the
    encoder's size, after a downscaled base image; `image_sizes` keeps the original size. `get_image_features` packs
    each image as the full model places it in a prompt: the base image's tokens, then the crops' token grid with the
    padding rows/columns removed (`unpad_image`), interpolated down past `anyres_max_9`, each row closed by the learned
    `image_newline` vector. `pooler_output` holds that sequence per image, so the object embedding reads exactly the
    tokens a prompt's `<image>` expands to. `image_newline` is not a linear layer: LoRA leaves it as it is, full
    fine-tuning trains it with the connector.
    """

    model_types = ("llava_onevision",)
    lora_target_modules = r".*(language_model.*(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)|multi_modal_projector\.linear_(1|2))$"
    vision_encoder_name = "vision_tower"
    image_input_names = ("pixel_values", "image_sizes", "batch_num_images")
