"""One model configuration for every command: which base model, how it is loaded, its LoRA and quantization."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trl import ModelConfig

from ..recipe_sections import require_at_least_one, require_in_range

# torch, peft and transformers load when a model does: every command's --help parses this config without them.
if TYPE_CHECKING:
    from peft import LoraConfig, PeftModel
    from torch import nn
    from transformers import BitsAndBytesConfig, ProcessorMixin


COMPUTE_DTYPES = ("float32", "bfloat16", "float16")
DTYPES = ("auto", *COMPUTE_DTYPES)
# Files of which a model folder needs one to tokenize (and to carry a chat template).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
_PATH_PREFIXES = ("/", "./", "../", "~")
# `testing:<architecture>`: a small randomly initialised checkpoint of that family, built in-process on first use
# (`hf_finedefics.testing.create_tiny_checkpoint`), for trying a recipe or a command without a download.
TESTING_PREFIX = "testing:"
# The keys `FinedeficsModelConfig.load` reads: a command that loads a model and trains none takes only these.
LOADING_KEYS = (
    "model_name_or_path",
    "model_revision",
    "dtype",
    "attn_implementation",
    "load_in_8bit",
    "load_in_4bit",
    "bnb_4bit_quant_type",
    "use_bnb_nested_quant",
    "bnb_4bit_quant_storage",
    "bnb_4bit_compute_dtype",
    "processor_kwargs",
    "device_map",
)


def check_model_location(name: str | None, key: str = "model_name_or_path", *, missing_ok: bool = False) -> None:
    """Refuse, before any work, a model that cannot load: a path that does not exist (rather than reading it as a
    bad Hub id; unless `missing_ok`, for commands that check their data first), a model folder without a
    tokenizer, an adapter that does not name its base."""
    if not name:
        return
    path = Path(name).expanduser()
    if not path.exists():
        if name.startswith(_PATH_PREFIXES) and not missing_ok:
            raise FileNotFoundError(f"{key}: {name} does not exist.")
        return  # a Hub id
    if not path.is_dir():
        raise NotADirectoryError(f"{key}: {name} is a file; give the model's folder (or a Hub id).")
    adapter_config = path / "adapter_config.json"
    if adapter_config.is_file():
        try:
            base = json.loads(adapter_config.read_text(encoding="utf-8")).get("base_model_name_or_path")
        except (ValueError, AttributeError):
            raise ValueError(f"{key}: {adapter_config} is not a JSON object.") from None
        if not base:
            raise ValueError(
                f"{key}: {adapter_config} has no base_model_name_or_path: set it to the Hub id or folder of the "
                "model the adapter was trained on."
            )
    elif not (path / "config.json").is_file():
        raise ValueError(f"{key}: {name} holds no model (no config.json, no adapter_config.json).")
    elif not any((path / file).is_file() for file in TOKENIZER_FILES):
        raise ValueError(
            f"{key}: {name} has no tokenizer (none of {', '.join(TOKENIZER_FILES)}): save the processor of the "
            "model it came from into it (`AutoProcessor.from_pretrained(base).save_pretrained(folder)`)."
        )


def parse_processor_kwargs(value: dict[str, Any] | str | None) -> dict[str, Any]:
    """`processor_kwargs` from YAML (a mapping) or the command line (a JSON object, e.g.
    '{"do_image_splitting": false}')."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise ValueError(f"processor_kwargs must be a JSON object, got {value!r} ({error}).") from None
    if not isinstance(value, dict):
        raise ValueError(f"processor_kwargs must be a mapping, got {value!r}.")
    # Processors take `do_*` switches as given: a string such as "maybe" is truthy and silently means true.
    for key, switch in value.items():
        if key.startswith("do_") and not isinstance(switch, bool):
            raise ValueError(f"processor_kwargs.{key} must be true or false, got {switch!r}.")
    return value


def unused_model_keys(used: Collection[str]) -> frozenset[str]:
    """The `FinedeficsModelConfig` keys outside `used`: what the parser of a command reading only `used` leaves out."""
    return frozenset(field.name for field in dataclasses.fields(FinedeficsModelConfig) if field.init) - set(used)


@dataclass
class FinedeficsModelConfig(ModelConfig):
    """TRL's [`~trl.ModelConfig`] with the paper's defaults: LoRA r=8, alpha=8, dropout 0.2, gaussian init on the
    LLM and the connector (never the vision encoder); `load_in_4bit` gives the paper's QLoRA (NF4, bfloat16
    compute). `processor_kwargs` reach `AutoProcessor.from_pretrained`, e.g. `{do_image_splitting: false}` for the
    paper's 64 visual tokens per Idefics2 image."""

    model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "Hub id or folder of the VLM (a full checkpoint, or a peft adapter whose recorded base is "
            "loaded under it), or `testing:<architecture>` for a small randomly initialised one built in-process. "
            "Stage II may leave it out when `stage1_adapter` is given."
        },
    )
    dtype: str = field(
        default="auto",
        metadata={"help": "Weight dtype: 'auto' (the checkpoint's), 'float32', 'bfloat16' or 'float16'."},
    )
    processor_kwargs: dict[str, Any] | str | None = field(
        default_factory=dict,
        metadata={
            "help": "Keyword arguments for `AutoProcessor.from_pretrained`, e.g. {do_image_splitting: false} for the "
            "paper's 64 visual tokens per Idefics2 image (YAML mapping, or JSON on the command line)."
        },
    )
    use_peft: bool = field(
        default=True, metadata={"help": "Train a LoRA adapter (the paper); False trains all weights."}
    )
    lora_r: int = field(default=8, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=8, metadata={"help": "LoRA alpha."})
    lora_dropout: float = field(default=0.2, metadata={"help": "LoRA dropout."})
    lora_target_modules: list[str] | None = field(
        default=None,
        metadata={"help": "LoRA target modules; default: the backbone's LLM + connector (never the vision encoder)."},
    )
    # TRL's keys that no stage reads, out of every parser and recipe (`hf_finedefics.scripts.REFUSED_KEYS` says why).
    lora_task_type: str = field(default="CAUSAL_LM", init=False)
    lora_target_parameters: list[str] | None = field(default=None, init=False)
    device_map: str | None = field(
        default=None,
        metadata={"help": "Inference commands only: placement of the weights, e.g. 'auto' to spread them over GPUs."},
    )
    bnb_4bit_compute_dtype: str = field(
        default="bfloat16", metadata={"help": "Compute dtype of the 4-bit layers (the paper: bfloat16)."}
    )

    def __post_init__(self):
        super().__post_init__()
        self.processor_kwargs = parse_processor_kwargs(self.processor_kwargs)
        if self.load_in_4bit and self.load_in_8bit:
            raise ValueError("Choose one of load_in_4bit and load_in_8bit.")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}.")
        if self.bnb_4bit_compute_dtype not in COMPUTE_DTYPES:
            raise ValueError(
                f"bnb_4bit_compute_dtype must be one of {', '.join(COMPUTE_DTYPES)}, got {self.bnb_4bit_compute_dtype!r}."
            )
        require_at_least_one(self, "lora_r", "lora_alpha")
        require_in_range(self, "lora_dropout", 0, 1)
        if self.model_name_or_path is not None and self.model_name_or_path.startswith(TESTING_PREFIX):
            from ..testing import create_tiny_checkpoint

            self.model_name_or_path = str(create_tiny_checkpoint(self.model_name_or_path.removeprefix(TESTING_PREFIX)))
        check_model_location(self.model_name_or_path, missing_ok=True)

    def quantization_config(self) -> BitsAndBytesConfig | None:
        """QLoRA's 4-bit NF4 settings when `load_in_4bit`, 8-bit with `load_in_8bit`, else None."""
        import torch

        from ..modeling import quantization_config

        if self.load_in_4bit:
            return quantization_config(
                "4bit",
                compute_dtype=getattr(torch, self.bnb_4bit_compute_dtype),
                quant_type=self.bnb_4bit_quant_type,
                nested=self.use_bnb_nested_quant,
                quant_storage=self.bnb_4bit_quant_storage,
            )
        return quantization_config("8bit") if self.load_in_8bit else None

    def lora_config(self, model: nn.Module, **kwargs) -> LoraConfig:
        """The paper's LoRA on the LLM and the connector of `model`'s family (or `lora_target_modules`)."""
        from ..backbones import get_backbone

        if self.lora_target_modules is not None:
            kwargs["target_modules"] = self.lora_target_modules
        if self.lora_modules_to_save is not None:
            kwargs["modules_to_save"] = self.lora_modules_to_save
        return get_backbone(model).lora_config(
            r=self.lora_r,
            alpha=self.lora_alpha,
            dropout=self.lora_dropout,
            use_rslora=self.use_rslora,
            use_dora=self.use_dora,
            **kwargs,
        )

    def load(
        self,
        adapter: str | None = None,
        *,
        is_trainable: bool = False,
        model_name_or_path: str | None = None,
        require_backbone: bool = True,
    ) -> tuple[nn.Module | PeftModel, ProcessorMixin]:
        """`load_finedefics_model` with these settings (`model_name_or_path` overrides the configured one;
        `require_backbone=False` loads a family without a backbone adapter, for zero-shot evaluation)."""
        import torch

        from ..modeling import load_finedefics_model

        name = model_name_or_path or self.model_name_or_path
        if name is None:
            raise ValueError("Set model_name_or_path.")
        # Inference commands use the GPU when there is one; the Trainer places training models itself.
        device_map = self.device_map or ("cuda" if torch.cuda.is_available() and not is_trainable else None)
        model_kwargs = {}
        if self.attn_implementation is not None:
            model_kwargs["attn_implementation"] = self.attn_implementation
        return load_finedefics_model(
            name,
            adapter,
            quantization=self.quantization_config(),
            dtype=self.dtype,
            is_trainable=is_trainable,
            revision=self.model_revision,
            processor_kwargs=self.processor_kwargs,
            device_map=device_map,
            require_backbone=require_backbone,
            **model_kwargs,
        )
