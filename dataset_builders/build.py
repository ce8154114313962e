"""One build, end to end: source -> attribute descriptions -> hard negatives -> Hub-ready folder.

Scaling out: run the description step on `num_shards` processes or machines with `shard_index=i`
(each writes `shards/descriptions-<i>-of-<n>.parquet` under the output folder), then run once more
without `shard_index` to merge the shards, mine negatives and write the dataset.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import datasets
import numpy as np
import yaml

from .attributes import AttributeDescriber, AttributePrompts, LocalBackend, OpenAICompatibleBackend
from .attributes.ablations import cub_ground_truth_descriptions
from .attributes.backends import GenerationBackend
from .attributes.pipeline import ATTRIBUTE_TYPE_KEYWORDS
from .cache import AnswerCache
from .hard_negatives import HardNegatives, mine_hard_negatives, pick_negative_images
from .publish import (
    DatasetCardInfo,
    build_hard_negative_index,
    build_instructions,
    build_triples,
    write_dataset_folder,
)
from .registry import SOURCES
from .sources import load_source
from .sources.synthetic import SyntheticFGVRConfig, category_neighbours, synthetic_categories, write_synthetic_fgvr

logger = logging.getLogger(__name__)

DescriptionSource = Literal["pipeline", "ground-truth", "tags"]
SHARD_FOLDER = "shards"


@dataclass
class BuildConfig:
    """Everything one build needs: the fields are the `finedefics build-dataset` flags (and `--config` YAML keys)."""

    source: str = field(metadata={"help": f"Dataset layout to read: one of {', '.join(SOURCES)}."})
    data_dir: str = field(metadata={"help": "Root of your copy of the dataset, in its native layout."})
    output_dir: str = field(metadata={"help": "Dataset folder to write (Hub-ready; `load_dataset` reads it)."})
    split: str = field(default="train", metadata={"help": "Split to build from (the paper uses train)."})
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
    cache: str | None = field(
        default=None,
        metadata={
            "help": "Answer cache file; unset: $HF_FINEDEFICS_CACHE/answers.sqlite or "
            "~/.cache/hf_finedefics/answers.sqlite."
        },
    )
    num_shards: int = field(default=1, metadata={"help": "Split the description step into this many shards."})
    shard_index: int | None = field(
        default=None, metadata={"help": "Describe only this shard; omit to merge the shards and finish the build."}
    )
    limit: int | None = field(default=None, metadata={"help": "Use only the first N images (for a trial run)."})
    seed: int = field(default=0, metadata={"help": "Seed of negative image picks and instruction shuffles."})
    license: str = field(default="other", metadata={"help": "License field of the dataset card."})
    pretty_name: str | None = field(default=None, metadata={"help": "Title of the dataset card."})

    def __post_init__(self):
        if self.source not in SOURCES:
            raise ValueError(f"Unknown source {self.source!r}; choose from {', '.join(SOURCES)}.")
        if unknown := set(self.remove_attribute_types) - set(ATTRIBUTE_TYPE_KEYWORDS):
            raise ValueError(
                f"Unknown remove_attribute_types {sorted(unknown)}; choose from {sorted(ATTRIBUTE_TYPE_KEYWORDS)}."
            )
        if self.negatives == "clip" and not self.clip:
            raise ValueError("--negatives clip needs --clip MODEL (or use --negatives random).")


def make_backend(model: str, base_url: str | None, config: BuildConfig) -> GenerationBackend:
    """An HTTP backend when a base URL is given, else the model loaded locally."""
    if base_url:
        api_key = config.api_key or os.environ.get("OPENAI_API_KEY")
        return OpenAICompatibleBackend(
            base_url, model, api_key=api_key, max_new_tokens=config.max_new_tokens, concurrency=config.concurrency
        )
    return LocalBackend(model, max_new_tokens=config.max_new_tokens, batch_size=config.batch_size)


def load_attribute_file(path: str | Path) -> dict[str, list[str]]:
    """A YAML mapping {superclass: [attribute, ...]} that replaces LLM discovery."""
    path = Path(path)
    content = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(content, dict) or not all(
        isinstance(names, list) and all(isinstance(name, str) for name in names) for names in content.values()
    ):
        raise ValueError(f"{path} must map each superclass to a list of attribute names, e.g. 'bird: [bill shape]'.")
    return content


def _describer(config: BuildConfig) -> AttributeDescriber:
    if not config.llm:
        raise ValueError(f"descriptions={config.descriptions!r} needs an LLM (--llm).")
    llm = make_backend(config.llm, config.llm_base_url, config)
    vqa = llm
    if config.descriptions == "pipeline":
        if not config.vqa:
            raise ValueError("descriptions='pipeline' needs a VQA model (--vqa).")
        if (config.vqa, config.vqa_base_url) != (config.llm, config.llm_base_url):
            vqa = make_backend(config.vqa, config.vqa_base_url, config)
    return AttributeDescriber(
        llm,
        vqa,
        cache=AnswerCache(config.cache) if config.cache else AnswerCache(),
        prompts=AttributePrompts.from_yaml(config.prompts) if config.prompts else AttributePrompts(),
        attributes=load_attribute_file(config.attributes) if config.attributes else None,
        removed_attribute_types=config.remove_attribute_types,
    )


def describe(config: BuildConfig, dataset: datasets.Dataset) -> tuple[list[str], dict]:
    """Attribute descriptions for `dataset` by the configured method, and what the card should say about it."""
    if config.descriptions == "ground-truth":
        if config.source != "bird-200":
            raise ValueError("Ground-truth attribute descriptions exist only for bird-200 (CUB annotations).")
        return cub_ground_truth_descriptions(dataset, config.data_dir), {}
    describer = _describer(config)
    if config.descriptions == "tags":
        descriptions = describer.describe_by_class(dataset)
    elif config.descriptions == "pipeline":
        descriptions = describer.describe(dataset)
    else:
        raise ValueError(f"Unknown description source {config.descriptions!r}; choose pipeline, ground-truth or tags.")
    provenance = {
        "models": {"LLM": describer.llm.model_id, "VQA": describer.vqa.model_id},
        "attributes": describer.discovered,
        "prompts": {k: v for k, v in describer.prompts.to_dict().items() if isinstance(v, str)},
    }
    return descriptions, provenance


def shard_path(output_dir: str | Path, index: int, num_shards: int) -> Path:
    return Path(output_dir) / SHARD_FOLDER / f"descriptions-{index:05d}-of-{num_shards:05d}.parquet"


def _load_source(config: BuildConfig) -> datasets.Dataset:
    dataset = load_source(config.source, config.data_dir, config.split, superclass=config.superclass)
    if config.limit is not None:
        dataset = dataset.select(range(min(config.limit, dataset.num_rows)))
    return dataset


def describe_shard(config: BuildConfig) -> Path:
    """Describe shard `config.shard_index` of `config.num_shards` and save it for the merge."""
    if config.shard_index is None or not 0 <= config.shard_index < config.num_shards:
        raise ValueError(f"shard_index must be in 0..{config.num_shards - 1}, got {config.shard_index}.")
    dataset = _load_source(config)
    dataset = dataset.add_column("row", range(dataset.num_rows))
    shard = dataset.shard(config.num_shards, config.shard_index, contiguous=True)
    descriptions, provenance = describe(config, shard)
    path = shard_path(config.output_dir, config.shard_index, config.num_shards)
    path.parent.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_dict({"row": shard["row"], "description": descriptions}).to_parquet(path)
    (path.with_suffix(".yaml")).write_text(yaml.safe_dump(provenance, allow_unicode=True), encoding="utf-8")
    return path


def merge_shards(config: BuildConfig, num_rows: int) -> tuple[list[str], dict]:
    """Descriptions of all rows from the shard files of a sharded build (all must be present)."""
    paths = [shard_path(config.output_dir, index, config.num_shards) for index in range(config.num_shards)]
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"Cannot merge: shard file(s) {missing} are missing; run those shards first.")
    merged = datasets.concatenate_datasets([datasets.Dataset.from_parquet(str(path)) for path in paths])
    if sorted(merged["row"]) != list(range(num_rows)):
        raise ValueError(f"The shards in {paths[0].parent} do not cover rows 0..{num_rows - 1} exactly once.")
    by_row = dict(zip(merged["row"], merged["description"]))
    provenance = yaml.safe_load(paths[0].with_suffix(".yaml").read_text(encoding="utf-8")) or {}
    return [by_row[row] for row in range(num_rows)], provenance


def build_dataset(config: BuildConfig) -> Path:
    """Run a build (or one shard of its description step, when `config.shard_index` is set)."""
    if config.shard_index is not None:
        return describe_shard(config)
    dataset = _load_source(config)
    if config.num_shards > 1:
        descriptions, provenance = merge_shards(config, dataset.num_rows)
    else:
        descriptions, provenance = describe(config, dataset)
    negatives = mine_hard_negatives(
        dataset, k=config.num_negatives, strategy=config.negatives, clip_model=config.clip, seed=config.seed
    )
    triples = build_triples(dataset, descriptions, negatives)
    configs = {
        "triples": triples,
        "instructions": build_instructions(triples, num_options=min(4, config.num_negatives + 1), seed=config.seed),
        "hard_negatives": build_hard_negative_index(negatives, dataset["label"]),
    }
    models = dict(provenance.get("models", {}))
    if config.negatives == "clip":
        models["CLIP"] = str(config.clip)
    info = DatasetCardInfo(
        pretty_name=config.pretty_name or f"Finedefics attribute triples: {config.source} ({config.split})",
        source=config.source,
        split=config.split,
        license=config.license,
        models=models,
        prompts=provenance.get("prompts", {}),
        attributes=provenance.get("attributes", {}),
        description_source=config.descriptions,
        negative_strategy=config.negatives,
        num_negatives=config.num_negatives,
        extra={"removed attribute types": ", ".join(config.remove_attribute_types)}
        if config.remove_attribute_types
        else {},
    )
    return write_dataset_folder(config.output_dir, configs, info)


def build_synthetic_dataset(config: SyntheticFGVRConfig, output_dir: Path, source_dir: Path) -> Path:
    """The embedded default's training data, published like `finedefics build-dataset` output: ground-truth
    attribute descriptions (the paper's upper-bound variant) and, as hard negatives, the categories nearest by
    ground-truth attributes (what a CLIP model finds on real data)."""
    write_synthetic_fgvr(source_dir, config)
    source = load_source("imagefolder", str(source_dir), "train", superclass=config.superclass)
    metadata = [json.loads(line) for line in (source_dir / "train" / "metadata.jsonl").read_text().splitlines()]
    description_of = {row["file_name"]: row["attribute_description"] for row in metadata}
    descriptions = [description_of[path] for path in _relative_paths(source, source_dir / "train")]

    names = source.features["label"].names
    neighbours = category_neighbours(synthetic_categories(config))
    nearest = np.array([[names.index(other) for other, _ in neighbours[name][:3]] for name in names])
    labels = np.asarray(source["label"], dtype=np.int64)
    negative_labels = nearest[labels]
    negatives = HardNegatives(
        labels=negative_labels,
        indices=pick_negative_images(labels, negative_labels, config.seed),
        scores=np.full(negative_labels.shape, np.nan, dtype=np.float32),
        strategy="ground-truth attribute distance",
    )
    triples = build_triples(source, descriptions, negatives)
    info = DatasetCardInfo(
        pretty_name="Finedefics synthetic FGVR (embedded default)",
        source="synthetic",
        split="train",
        license="apache-2.0",
        license_note="Generated by dataset_builders.sources.synthetic; no third-party images.",
        description_source="ground-truth attributes",
        negative_strategy=negatives.strategy,
    )
    configs = {
        "triples": triples,
        "instructions": build_instructions(triples, seed=config.seed),
        "hard_negatives": build_hard_negative_index(negatives, labels.tolist()),
    }
    return write_dataset_folder(output_dir, configs, info)


def _relative_paths(source: datasets.Dataset, root: Path) -> list[str]:
    stored = source.cast_column("image", datasets.Image(decode=False))["image"]
    return [os.path.relpath(image["path"], root) for image in stored]
