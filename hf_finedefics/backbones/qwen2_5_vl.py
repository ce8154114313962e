from __future__ import annotations

import torch
from transformers.modeling_outputs import BaseModelOutputWithPooling

from .base import VisionLanguageBackbone, register_backbone


@register_backbone
class Qwen2_5_VLBackbone(VisionLanguageBackbone):
    """Qwen2.5-VL: window-attention ViT -> patch merger (2x2 patches -> one token; the connector) -> Qwen2.5.

    - `pixel_values` is flat: every image's patches stacked, (sum_i t_i*h_i*w_i, C*T*P*P); `image_grid_thw` (one
      (t, h, w) row per image) splits it. `get_image_features` returns one (t*h*w / merge**2, D) tensor per image in
      `pooler_output`, in raster order of the merged grid; `last_hidden_state` is the pre-merger ViT output in window
      order and is never used.
    - The LLM uses 3D M-RoPE: an image's tokens get (temporal, row, column) positions and the text after it continues
      from max(h, w) / merge. An object sequence (visual tokens + EOS) gets exactly the positions the model gives an
      image followed by one text token (`get_rope_index`), so the object embedding reads the image as prompts do.
      The LLM is called directly, so the `rope_deltas` the full model caches between generation steps play no part.
    """

    model_types = ("qwen2_5_vl",)
    # The connector is `visual.merger` (two linear layers); the rest of `visual` is the frozen vision encoder.
    lora_target_modules = (
        r".*(language_model.*(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)|visual\.merger\.mlp\.(0|2))$"
    )
    vision_encoder_name = "visual"
    image_input_names = ("pixel_values", "image_grid_thw")

    def freeze_vision_encoder(self) -> None:
        super().freeze_vision_encoder()
        self.vision_encoder.merger.requires_grad_(True)  # the connector lives inside `visual`

    def _token_types(self, visual_mask: torch.Tensor) -> torch.Tensor:
        return visual_mask.int()  # text 0, image 1 (video 2 is never used)

    def object_llm_inputs(
        self,
        image_inputs: dict[str, torch.Tensor],
        image_outputs: BaseModelOutputWithPooling,
        visual_mask: torch.Tensor,
        attention_mask: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        # get_rope_index reads the token layout from mm_token_type_ids; input_ids only give the shape.
        position_ids, _ = self.model.model.get_rope_index(
            torch.zeros_like(attention_mask),
            mm_token_type_ids=self._token_types(visual_mask),
            image_grid_thw=image_inputs["image_grid_thw"],
            attention_mask=attention_mask,
        )
        return {"position_ids": position_ids}

    def multimodal_forward_inputs(
        self, input_ids: torch.Tensor, image_inputs: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        return {
            "image_grid_thw": image_inputs["image_grid_thw"],
            "mm_token_type_ids": self._token_types(input_ids == self.model.config.image_token_id),
        }
