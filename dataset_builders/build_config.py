"""`BuildConfig`, the options of `finedefics build-dataset`, in a module that imports nothing heavy: the command
line builds its --help without loading `datasets` or torch. The build itself is `dataset_builders.build`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .registry import DEFAULT_MAX_IMAGE_PIXELS, SOURCES

DescriptionSource = Literal["pipeline", "ground-truth", "tags"]
# Attribute types of the paper's removal ablation (Table 5), and the words that mark an attribute as one.
ATTRIBUTE_TYPE_KEYWORDS: dict[str, tuple[str, ...]] = {
    "color": ("color", "colour", "hue"),
    "shape": ("shape", "silhouette", "outline", "contour"),
    "texture": ("texture", "pattern", "marking", "spots", "stripes", "fur", "coat", "feather"),
    "size": ("size", "length", "width", "height", "span", "proportion"),
}


@dataclass
class BuildConfig:
    """Everything one build needs: the fields are the `finedefics build-dataset` flags (and `--config` YAML keys)."""

    sources: list[str] = field(
        metadata={
            "help": f"Datasets to read, one or several (the paper: all six FGVR sets): {', '.join(SOURCES)}. They "
            "become one dataset with one label space."
        }
    )
    output_dir: str = field(metadata={"help": "Dataset folder to write (Hub-ready; `load_dataset` reads it)."})
    data_dir: str | None = field(
        default=None,
        metadata={"help": "Folder holding each source in its native layout, as <data_dir>/<name> (e.g. bird-200/)."},
    )
    source_dirs: str | None = field(
        default=None, metadata={"help": "Per-source folders as 'name=path,...'; override --data_dir."}
    )
    split: str = field(
        default="train",
        metadata={
            "help": "train: each source's paper training split (Aircraft, Pets: trainval; Flowers: train+val); "
            "any other value: that split of every source."
        },
    )
    superclass: str | None = field(
        default=None, metadata={"help": "Super-category noun, e.g. 'bird' (needed for imagefolder)."}
    )
    descriptions: DescriptionSource = field(
        default="pipeline",
        metadata={
            "help": "pipeline: discovery + VQA + summary (the paper); ground-truth: CUB's annotations; tags: "
            "per-class LLM descriptions (baseline)."
        },
    )
    llm: str | None = field(default=None, metadata={"help": "LLM for discovery and summarization (id or folder)."})
    vqa: str | None = field(default=None, metadata={"help": "VQA model for attribute extraction (id or folder)."})
    llm_base_url: str | None = field(default=None, metadata={"help": "OpenAI-compatible endpoint serving --llm."})
    vqa_base_url: str | None = field(default=None, metadata={"help": "OpenAI-compatible endpoint serving --vqa."})
    api_key: str | None = field(
        default=None, metadata={"help": "Endpoint API key; unset falls back to $OPENAI_API_KEY."}
    )
    max_new_tokens: int = field(default=256, metadata={"help": "Generation budget of every answer."})
    batch_size: int = field(default=8, metadata={"help": "Local generation batch size."})
    concurrency: int = field(default=8, metadata={"help": "Parallel HTTP requests to an endpoint."})
    timeout: float = field(
        default=60.0, metadata={"help": "Seconds to wait for one HTTP reply before the request is retried."}
    )
    max_retries: int = field(
        default=3,
        metadata={
            "help": "HTTP retries (with back-off) of timeouts, dropped connections, 429/5xx replies and replies "
            "without choices."
        },
    )
    prompts: str | None = field(default=None, metadata={"help": "YAML file overriding prompt templates."})
    attributes: str | None = field(
        default=None, metadata={"help": "YAML {superclass: [attributes]} replacing attribute discovery."}
    )
    remove_attribute_types: list[str] = field(
        default_factory=list,
        metadata={"help": f"Attribute types to leave out (ablation): {', '.join(sorted(ATTRIBUTE_TYPE_KEYWORDS))}."},
    )
    clip: str | None = field(
        default=None, metadata={"help": "CLIP model for hard-negative mining (transformers or sentence-transformers)."}
    )
    negatives: Literal["clip", "random"] = field(
        default="clip", metadata={"help": "clip: hard negatives (the paper); random: simple negatives (Table 6a)."}
    )
    num_negatives: int = field(default=3, metadata={"help": "Hard-negative categories per image."})
    noisy_descriptions: float = field(
        default=0.0,
        metadata={
            "help": "Ablation (Table 6c): this fraction of all attribute sentences is replaced by sentences of other "
            "categories' descriptions (0: none)."
        },
    )
    short_descriptions: bool = field(
        default=False, metadata={"help": "Ablation (Table 6d): keep only the first sentence of every description."}
    )
    cache: str | None = field(
        default=None,
        metadata={
            "help": "Answer cache file; unset: $HF_FINEDEFICS_CACHE/answers.sqlite or "
            "$HF_HOME/finedefics/answers.sqlite."
        },
    )
    num_shards: int = field(default=1, metadata={"help": "Split the description step into this many shards."})
    shard_index: int | None = field(
        default=None, metadata={"help": "Describe only this shard; omit to merge the shards and finish the build."}
    )
    limit: int | None = field(default=None, metadata={"help": "Use only the first N images (for a trial run)."})
    max_image_pixels: int = field(
        default=DEFAULT_MAX_IMAGE_PIXELS,
        metadata={"help": "Skip (and count) images whose header declares more pixels, before decoding them."},
    )
    rl_examples_per_class: int | None = field(
        default=None,
        metadata={
            "help": "Images per class in the stage III `rl` config (the few-shot regime, e.g. 4); unset: every "
            "training image."
        },
    )
    seed: int = field(default=0, metadata={"help": "Seed of negative image picks and instruction shuffles."})
    license: str = field(default="other", metadata={"help": "License field of the dataset card."})
    pretty_name: str | None = field(default=None, metadata={"help": "Title of the dataset card."})

    def folders(self) -> dict[str, Path]:
        """Each source's folder (`source_dirs`, else `data_dir/<name>`)."""
        from .sources import parse_pairs, source_folders

        return source_folders(self.sources, self.data_dir, parse_pairs(self.source_dirs))

    def __post_init__(self):
        if isinstance(self.sources, str):
            self.sources = [self.sources]
        if not self.sources:
            raise ValueError("Give at least one source (--sources NAME ...).")
        if unknown := [name for name in self.sources if name not in SOURCES]:
            raise ValueError(f"Unknown sources {unknown}; choose from {', '.join(SOURCES)}.")
        if len(set(self.sources)) != len(self.sources):
            raise ValueError(f"A source is listed twice in --sources {self.sources}.")
        if self.descriptions == "ground-truth" and self.sources != ["bird-200"]:
            raise ValueError("Ground-truth attribute descriptions exist only for bird-200 (CUB annotations).")
        if unknown := set(self.remove_attribute_types) - set(ATTRIBUTE_TYPE_KEYWORDS):
            raise ValueError(
                f"Unknown remove_attribute_types {sorted(unknown)}; choose from {sorted(ATTRIBUTE_TYPE_KEYWORDS)}."
            )
        if not 0.0 <= self.noisy_descriptions <= 1.0:
            raise ValueError(f"noisy_descriptions is a fraction in [0, 1], got {self.noisy_descriptions}.")
        if self.negatives == "clip" and not self.clip:
            raise ValueError("--negatives clip needs --clip MODEL (or use --negatives random).")
        at_least = {"max_new_tokens": 1, "batch_size": 1, "concurrency": 1, "num_negatives": 1, "num_shards": 1,
                    "limit": 1, "max_image_pixels": 1, "max_retries": 0, "rl_examples_per_class": 1}  # fmt: skip
        for name, minimum in at_least.items():
            value = getattr(self, name)
            if value is not None and value < minimum:
                raise ValueError(f"--{name} must be at least {minimum}, got {value}.")
        if self.timeout <= 0:
            raise ValueError(f"--timeout must be positive, got {self.timeout}.")
        if self.prompts:  # read now: a bad template must not wait for the first request of its step
            from .attributes.prompts import AttributePrompts

            AttributePrompts.from_yaml(self.prompts)
