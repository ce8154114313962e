"""One adapter per VLM family; importing this package registers them all."""

from .base import VisionLanguageBackbone, get_backbone, register_backbone, supported_model_types, unwrap_model
from .idefics2 import Idefics2Backbone
from .idefics3 import Idefics3Backbone
from .llava import LlavaBackbone

__all__ = [
    "Idefics2Backbone",
    "Idefics3Backbone",
    "LlavaBackbone",
    "VisionLanguageBackbone",
    "get_backbone",
    "register_backbone",
    "supported_model_types",
    "unwrap_model",
]
