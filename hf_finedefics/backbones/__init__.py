"""One adapter per VLM family; importing this package registers them all."""

from .base import VisionLanguageBackbone, get_backbone, register_backbone, supported_model_types, unwrap_model
from .gemma3 import Gemma3Backbone
from .idefics2 import Idefics2Backbone
from .idefics3 import Idefics3Backbone
from .llava import LlavaBackbone
from .llava_onevision import LlavaOnevisionBackbone
from .qwen2_5_vl import Qwen2_5_VLBackbone
from .qwen3_vl import Qwen3VLBackbone

__all__ = [
    "Gemma3Backbone",
    "Idefics2Backbone",
    "Idefics3Backbone",
    "LlavaBackbone",
    "LlavaOnevisionBackbone",
    "Qwen2_5_VLBackbone",
    "Qwen3VLBackbone",
    "VisionLanguageBackbone",
    "get_backbone",
    "register_backbone",
    "supported_model_types",
    "unwrap_model",
]
