"""What determines the small pretrained MLLM of the synthetic world: the model's size and its pretraining."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class WorldPretrainingConfig:
    r"""
    The small Idefics2 that stands in for a pretrained MLLM in the embedded default, and how it is pretrained.

    Sizes: the probe of REFERENCE.md section 6 found that a 128-wide, 4-layer language model with a 64-wide, 2-layer
    vision encoder (patch 8 on the 32 px critters: 16 patches) and a one-layer perceiver with 8 latents (8 visual
    tokens per image), ~1.2 M parameters all trained, learns to perceive the attributes in ~1,000 steps of 32.
    Idefics2's image pathway collapsed here at its library defaults (issue 10): within ~25 steps the connector's
    visual tokens stopped depending on the image (`visual_token_spread` 0.5 at init, ~0.03 by step 50, 1.7e-6 after
    1,200 steps) while text knowledge was learned perfectly. A 10x lower learning rate for the vision encoder and
    connector (`vision_lr_ratio`) keeps the image visible: spread 0.34-0.85 over the first 150 steps and 92 % colour
    perception by step 150 (notes/issue10.md, "Collapse fix").
    """

    text_hidden_size: int = field(default=128, metadata={"help": "Width of the language model."})
    text_layers: int = field(default=4, metadata={"help": "Decoder layers of the language model."})
    text_heads: int = field(default=4, metadata={"help": "Attention heads of the language model."})
    text_kv_heads: int = field(default=2, metadata={"help": "Key/value heads of the language model (GQA)."})
    text_intermediate_size: int = field(default=256, metadata={"help": "FFN width of the language model."})
    vision_hidden_size: int = field(default=64, metadata={"help": "Width of the vision encoder."})
    vision_layers: int = field(default=2, metadata={"help": "Layers of the vision encoder."})
    patch_size: int = field(default=8, metadata={"help": "Vision patch side in pixels."})
    num_latents: int = field(default=8, metadata={"help": "Perceiver latents, i.e. visual tokens per image."})
    vocab_size: int = field(default=1024, metadata={"help": "Byte-level BPE vocabulary, trained on the world's text."})
    num_images: int = field(
        default=2048,
        metadata={"help": "Pretraining images: random attribute combinations (not only the categories'), drawn once."},
    )
    max_steps: int = field(default=1200, metadata={"help": "Optimizer steps of world pretraining."})
    batch_size: int = field(default=32, metadata={"help": "Examples per step (image and text-only mixed)."})
    text_fraction: float = field(
        default=0.3, metadata={"help": "Share of each batch that is text-only knowledge about the categories."}
    )
    document_fraction: float = field(
        default=0.15,
        metadata={
            "help": "Share of each batch that is plain text documents (names, attribute sentences, captions), each "
            "text ended by EOS: it trains the EOS position every stage I embedding is read at."
        },
    )
    multiple_choice_fraction: float = field(
        default=0.2, metadata={"help": "Share of examples asked in the lettered multiple-choice format."}
    )
    learning_rate: float = field(default=1e-3, metadata={"help": "Peak AdamW learning rate."})
    vision_lr_ratio: float = field(
        default=0.1,
        metadata={
            "help": "Learning rate of the vision encoder and connector relative to `learning_rate`. At the full rate "
            "the connector collapsed to image-independent tokens within ~25 steps (issue 10); slower, the image "
            "pathway stays informative while the language model learns to read it."
        },
    )
    warmup_steps: int = field(default=30, metadata={"help": "Linear warm-up steps."})
    min_lr_ratio: float = field(default=0.1, metadata={"help": "Cosine decay ends at this fraction of the peak."})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay."})
    save_steps: int = field(default=300, metadata={"help": "Save a resumable checkpoint every N steps."})
    seed: int = field(default=0, metadata={"help": "Seed of initialisation, images and batches."})

    def __post_init__(self):
        fractions = (self.text_fraction, self.document_fraction, self.multiple_choice_fraction)
        if not (0 <= self.text_fraction < 1 and 0 <= self.document_fraction < 1 and 0 <= fractions[2] <= 1):
            raise ValueError(
                "text_fraction and document_fraction must be in [0, 1) and multiple_choice_fraction in [0, 1], got "
                f"{', '.join(map(str, fractions))}."
            )
        if self.vision_lr_ratio <= 0:
            raise ValueError(f"vision_lr_ratio must be positive, got {self.vision_lr_ratio}.")
        if min(self.max_steps, self.batch_size, self.num_images, self.save_steps) < 1:
            raise ValueError("max_steps, batch_size, num_images and save_steps must be at least 1.")
