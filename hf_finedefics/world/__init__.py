"""A small pretrained MLLM of the synthetic world: the embedded default's stand-in for a pretrained Idefics2.

It perceives the critters' attributes and knows each category's attributes from text, but has never seen an image
named: the paper's starting point (sections 2.2-2.4), where visual objects and category names are misaligned.
"""

from .config import WorldPretrainingConfig
from .data import WorldExample, WorldExamples, draw_world_images, pairs_image_with_name
from .pretraining import ensure_world_base, load_world_record, pretrain_world, world_key

__all__ = [
    "WorldExample",
    "WorldExamples",
    "WorldPretrainingConfig",
    "draw_world_images",
    "ensure_world_base",
    "load_world_record",
    "pairs_image_with_name",
    "pretrain_world",
    "world_key",
]
