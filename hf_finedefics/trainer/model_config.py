"""Model arguments shared by stage I and stage II: which base model, its LoRA and its quantization."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from peft import LoraConfig
from torch import nn
from transformers import BitsAndBytesConfig

from .backbones import get_backbone


@dataclass
class FinedeficsModelArguments:
    """The base model of a stage and its LoRA: the paper's r=8, alpha=8, dropout 0.2, gaussian init on the LLM and
    the connector; `load_in_4bit` gives the paper's QLoRA (NF4, bfloat16 compute)."""

    model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "Hub id or folder of the base VLM. Stage II may leave it out when `stage1_adapter` is given: "
            "the base recorded in the adapter is used."
        },
    )
    dtype: str = field(
        default="auto",
        metadata={"help": "Weight dtype: 'auto' (the checkpoint's), 'float32', 'bfloat16' or 'float16'."},
    )
    attn_implementation: str | None = field(
        default=None, metadata={"help": "Attention kernel, e.g. 'sdpa' or 'flash_attention_2'."}
    )
    processor_kwargs: dict[str, Any] = field(
        default_factory=dict,
        metadata={
            "help": "Keyword arguments for `AutoProcessor.from_pretrained`, e.g. {do_image_splitting: false} for the "
            "paper's 64 visual tokens per Idefics2 image."
        },
    )
    lora_r: int = field(default=8, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=8, metadata={"help": "LoRA alpha."})
    lora_dropout: float = field(default=0.2, metadata={"help": "LoRA dropout."})
    load_in_4bit: bool = field(
        default=False, metadata={"help": "QLoRA: load the (merged) base in 4-bit NF4 and train LoRA on top."}
    )
    bnb_4bit_compute_dtype: str = field(
        default="bfloat16", metadata={"help": "Compute dtype of the 4-bit layers (the paper: bfloat16)."}
    )
    use_bnb_nested_quant: bool = field(
        default=False, metadata={"help": "Also quantize the quantization constants (saves ~0.4 bit per weight)."}
    )

    def quantization_config(self) -> BitsAndBytesConfig | None:
        """QLoRA's 4-bit NF4 settings when `load_in_4bit`, else None."""
        if not self.load_in_4bit:
            return None
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=getattr(torch, self.bnb_4bit_compute_dtype),
            bnb_4bit_use_double_quant=self.use_bnb_nested_quant,
        )

    def lora_config(self, model: nn.Module, **kwargs) -> LoraConfig:
        """The paper's LoRA on the LLM and the connector of `model`'s family."""
        return get_backbone(model).lora_config(
            r=self.lora_r, alpha=self.lora_alpha, dropout=self.lora_dropout, **kwargs
        )

    def model_init_kwargs(self) -> dict:
        """Keyword arguments for `from_pretrained`."""
        kwargs = {"dtype": self.dtype, "quantization_config": self.quantization_config()}
        if self.attn_implementation is not None:
            kwargs["attn_implementation"] = self.attn_implementation
        return kwargs
