"""One build, end to end: sources -> attribute descriptions -> hard negatives -> one Hub-ready folder.

Several sources (the paper: the six FGVR training sets) are built one by one, each into
`sources/<name>/` under the output folder (descriptions, negatives mined within the source, triples), which a
rerun reuses; then the parts are joined into one dataset with one label space ("<source>/<category>") and the
instructions are written, each in its source's own wording.

Scaling out: run the description step on `num_shards` processes or machines with `shard_index=i`
(each writes `shards/<source>/descriptions-<i>-of-<n>.parquet` under the output folder), then run once more
without `shard_index` to merge the shards, mine negatives and write the dataset.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
from pathlib import Path

import datasets
import numpy as np
import yaml

from .attributes import AttributeDescriber, AttributePrompts, LocalBackend, OpenAICompatibleBackend
from .attributes.ablations import cub_ground_truth_descriptions, noisy_descriptions, short_descriptions
from .attributes.backends import GenerationBackend
from .build_config import BuildConfig
from .cache import AnswerCache
from .hard_negatives import HardNegatives, mine_hard_negatives, pick_negative_images
from .publish import (
    DatasetCardInfo,
    build_hard_negative_index,
    build_instructions,
    build_triples,
    write_dataset_folder,
)
from .rl import build_rl_prompts
from .sources import LABEL_SEPARATOR, folder_fingerprint, load_source, paper_split
from .sources.synthetic import SyntheticFGVRConfig, category_neighbours, synthetic_categories, write_synthetic_fgvr

logger = logging.getLogger(__name__)

SHARD_FOLDER = "shards"
PART_FOLDER = "sources"
# Fields that do not change a source's part (where it is written, how fast, how the card is titled).
PART_INDEPENDENT_FIELDS = (
    "sources",
    "data_dir",
    "source_dirs",
    "output_dir",
    "shard_index",
    "license",
    "pretty_name",
    "concurrency",
    "batch_size",
    "api_key",
    "cache",
)


def make_backend(model: str, base_url: str | None, config: BuildConfig) -> GenerationBackend:
    """An HTTP backend when a base URL is given, else the model loaded locally."""
    if base_url:
        api_key = config.api_key or os.environ.get("OPENAI_API_KEY")
        return OpenAICompatibleBackend(
            base_url,
            model,
            api_key=api_key,
            max_new_tokens=config.max_new_tokens,
            concurrency=config.concurrency,
            timeout=config.timeout,
            max_retries=config.max_retries,
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


def _check_description_models(config: BuildConfig) -> None:
    """Refuse a description method without the models it asks, before any source is read."""
    if config.descriptions == "ground-truth":
        return
    if not config.llm:
        raise ValueError(f"descriptions={config.descriptions!r} needs an LLM (--llm).")
    if config.descriptions == "pipeline" and not config.vqa:
        raise ValueError("descriptions='pipeline' needs a VQA model (--vqa).")


def _describer(config: BuildConfig) -> AttributeDescriber:
    _check_description_models(config)
    llm = make_backend(config.llm, config.llm_base_url, config)
    vqa = llm
    if config.descriptions == "pipeline" and (config.vqa, config.vqa_base_url) != (config.llm, config.llm_base_url):
        vqa = make_backend(config.vqa, config.vqa_base_url, config)
    return AttributeDescriber(
        llm,
        vqa,
        cache=AnswerCache(config.cache) if config.cache else AnswerCache(),
        prompts=AttributePrompts.from_yaml(config.prompts) if config.prompts else AttributePrompts(),
        attributes=load_attribute_file(config.attributes) if config.attributes else None,
        removed_attribute_types=config.remove_attribute_types,
    )


def describe(config: BuildConfig, dataset: datasets.Dataset, folder: Path) -> tuple[list[str], dict]:
    """Attribute descriptions for `dataset` (read from `folder`) by the configured method, and what the card should
    say about it."""
    if config.descriptions == "ground-truth":
        return cub_ground_truth_descriptions(dataset, folder), {}
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


def shard_path(output_dir: str | Path, source: str, index: int, num_shards: int) -> Path:
    return Path(output_dir) / SHARD_FOLDER / source / f"descriptions-{index:05d}-of-{num_shards:05d}.parquet"


def _load_source(config: BuildConfig, name: str) -> datasets.Dataset:
    split = paper_split(name, config.split)
    dataset = load_source(
        name, config.folders()[name], split, config.superclass, max_image_pixels=config.max_image_pixels
    )
    if config.limit is not None:
        dataset = dataset.select(range(min(config.limit, dataset.num_rows)))
    return dataset


def describe_shard(config: BuildConfig) -> list[Path]:
    """Describe shard `config.shard_index` of `config.num_shards` of every source and save it for the merge."""
    if config.shard_index is None or not 0 <= config.shard_index < config.num_shards:
        raise ValueError(f"shard_index must be in 0..{config.num_shards - 1}, got {config.shard_index}.")
    paths = []
    for name in config.sources:
        dataset = _load_source(config, name)
        dataset = dataset.add_column("row", range(dataset.num_rows))
        shard = dataset.shard(config.num_shards, config.shard_index, contiguous=True)
        descriptions, provenance = describe(config, shard, config.folders()[name])
        path = shard_path(config.output_dir, name, config.shard_index, config.num_shards)
        path.parent.mkdir(parents=True, exist_ok=True)
        datasets.Dataset.from_dict({"row": shard["row"], "description": descriptions}).to_parquet(path)
        (path.with_suffix(".yaml")).write_text(yaml.safe_dump(provenance, allow_unicode=True), encoding="utf-8")
        paths.append(path)
    return paths


def merge_shards(config: BuildConfig, name: str, num_rows: int) -> tuple[list[str], dict]:
    """Descriptions of all rows of source `name` from the shard files of a sharded build (all must be present)."""
    paths = [shard_path(config.output_dir, name, index, config.num_shards) for index in range(config.num_shards)]
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"Cannot merge: shard file(s) {missing} are missing; run those shards first.")
    merged = datasets.concatenate_datasets([datasets.Dataset.from_parquet(str(path)) for path in paths])
    if sorted(merged["row"]) != list(range(num_rows)):
        raise ValueError(f"The shards in {paths[0].parent} do not cover rows 0..{num_rows - 1} exactly once.")
    by_row = dict(zip(merged["row"], merged["description"]))
    provenance = yaml.safe_load(paths[0].with_suffix(".yaml").read_text(encoding="utf-8")) or {}
    return [by_row[row] for row in range(num_rows)], provenance


def _part_settings(config: BuildConfig, name: str) -> dict:
    """What a source's part depends on: a part built under other settings, or from a source folder whose files
    changed since, is rebuilt, not reused."""
    settings = dataclasses.asdict(config)
    for key in PART_INDEPENDENT_FIELDS:
        settings.pop(key)
    folder = config.folders()[name]
    files = folder_fingerprint(folder)
    return json.loads(json.dumps({**settings, "source": name, "folder": str(folder), "files": files}))


def build_source_part(config: BuildConfig, name: str) -> tuple[datasets.Dataset, datasets.Dataset, dict]:
    """One source's triples and hard-negative index (labels and rows in the source's own numbering), and the
    card's provenance. Saved under `sources/<name>/` of the output folder; a rerun with the same settings reuses
    it, so a build of several sources resumes at the first source not yet done."""
    folder = Path(config.output_dir) / PART_FOLDER / name
    settings = _part_settings(config, name)
    settings_file = folder / "settings.json"
    if settings_file.is_file() and json.loads(settings_file.read_text(encoding="utf-8")) == settings:
        logger.info("%s: reusing %s", name, folder)
        provenance = yaml.safe_load((folder / "provenance.yaml").read_text(encoding="utf-8")) or {}
        return (
            datasets.load_from_disk(folder / "triples"),
            datasets.load_from_disk(folder / "hard_negatives"),
            provenance,
        )
    dataset = _load_source(config, name)
    # Refused before any request: a description method without its models (a merge of shards describes nothing),
    # and a source too small for its negatives, which are mined after the descriptions.
    if config.num_shards == 1:
        _check_description_models(config)
    if (categories := len(set(dataset["label"]))) < config.num_negatives + 1:
        raise ValueError(
            f"{name}: {config.num_negatives} negatives per image need at least {config.num_negatives + 1} categories "
            f"with images, but {dataset.num_rows} image(s) read (limit: {config.limit}) cover {categories}."
        )
    if config.num_shards > 1:
        descriptions, provenance = merge_shards(config, name, dataset.num_rows)
    else:
        descriptions, provenance = describe(config, dataset, config.folders()[name])
    if config.short_descriptions:
        descriptions = short_descriptions(descriptions)
    if config.noisy_descriptions:
        descriptions = noisy_descriptions(descriptions, dataset["label"], config.noisy_descriptions, config.seed)
    negatives = mine_hard_negatives(
        dataset, k=config.num_negatives, strategy=config.negatives, clip_model=config.clip, seed=config.seed
    )
    triples = build_triples(dataset, descriptions, negatives)
    index = build_hard_negative_index(negatives, dataset["label"])
    if folder.exists():
        shutil.rmtree(folder)
    triples.save_to_disk(folder / "triples")
    index.save_to_disk(folder / "hard_negatives")
    (folder / "provenance.yaml").write_text(yaml.safe_dump(provenance, allow_unicode=True), encoding="utf-8")
    settings_file.write_text(json.dumps(settings, indent=2), encoding="utf-8")  # last: marks the part complete
    return triples, index, provenance


def join_parts(
    parts: dict[str, tuple[datasets.Dataset, datasets.Dataset]],
) -> tuple[datasets.Dataset, datasets.Dataset]:
    """Per-source triples and hard-negative indexes as one dataset: labels become one ClassLabel over every
    (source, category) pair ("<source>/<category>"), row indices and negative labels are shifted to match, and a
    `source` column says where each row came from."""
    label_names, label_offsets, row_offsets = [], {}, {}
    rows = 0
    for name, (triples, _) in parts.items():
        label_offsets[name], row_offsets[name] = len(label_names), rows
        label_names += [f"{name}{LABEL_SEPARATOR}{category}" for category in triples.features["label"].names]
        rows += triples.num_rows
    first_triples, first_index = next(iter(parts.values()))
    triple_features = datasets.Features(
        {**first_triples.features, "label": datasets.ClassLabel(names=label_names), "source": datasets.Value("string")}
    )

    def shift(batch: dict, name: str) -> dict:
        labels, row = label_offsets[name], row_offsets[name]
        shifted = {
            "label": [label + labels for label in batch["label"]],
            "neg_labels": [[label + labels for label in row_labels] for row_labels in batch["neg_labels"]],
            "neg_indices": [[index + row for index in row_indices] for row_indices in batch["neg_indices"]],
        }
        if "index" in batch:
            shifted["index"] = [index + row for index in batch["index"]]
        else:
            shifted["source"] = [name] * len(batch["label"])
        return shifted

    triples = datasets.concatenate_datasets(
        [
            part.cast_column("label", datasets.Value("int64")).map(
                shift, batched=True, fn_kwargs={"name": name}, features=triple_features, desc=f"Joining {name}"
            )
            for name, (part, _) in parts.items()
        ]
    )
    index = datasets.concatenate_datasets(
        [
            part.map(shift, batched=True, fn_kwargs={"name": name}, features=first_index.features)
            for name, (_, part) in parts.items()
        ]
    )
    return triples, index


def build_dataset(config: BuildConfig) -> Path | list[Path]:
    """Run a build (or one shard of its description step, when `config.shard_index` is set): every source
    described, its negatives mined within it, then all joined into one dataset folder with one label space."""
    if config.shard_index is not None:
        return describe_shard(config)
    parts, provenance = {}, {}
    for name in config.sources:
        triples, index, source_provenance = build_source_part(config, name)
        parts[name] = (triples, index)
        for key, value in source_provenance.items():
            provenance.setdefault(key, {}).update(value)
    triples, index = join_parts(parts)
    configs = {
        "triples": triples,
        "instructions": build_instructions(triples, num_options=min(4, config.num_negatives + 1), seed=config.seed),
        "rl": build_rl_prompts(
            triples,
            num_options=min(4, config.num_negatives + 1),
            seed=config.seed,
            examples_per_class=config.rl_examples_per_class,
        ),
        "hard_negatives": index,
    }
    models = dict(provenance.get("models", {}))
    if config.negatives == "clip":
        models["CLIP"] = str(config.clip)
    extra = {}
    if config.remove_attribute_types:
        extra["removed attribute types"] = ", ".join(config.remove_attribute_types)
    if config.noisy_descriptions:
        extra["noisy descriptions (Table 6c)"] = f"{config.noisy_descriptions:.0%} of sentences from other categories"
    if config.short_descriptions:
        extra["short descriptions (Table 6d)"] = "first sentence only"
    splits = ", ".join(f"{name} {paper_split(name, config.split)}" for name in config.sources)
    info = DatasetCardInfo(
        pretty_name=config.pretty_name or f"Finedefics attribute triples: {', '.join(config.sources)}",
        source=", ".join(config.sources),
        split=splits,
        license=config.license,
        models=models,
        prompts=provenance.get("prompts", {}),
        attributes=provenance.get("attributes", {}),
        description_source=config.descriptions,
        negative_strategy=config.negatives,
        num_negatives=config.num_negatives,
        extra=extra,
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
        "rl": build_rl_prompts(triples, seed=config.seed),
        "hard_negatives": build_hard_negative_index(negatives, labels.tolist()),
    }
    return write_dataset_folder(output_dir, configs, info)


def _relative_paths(source: datasets.Dataset, root: Path) -> list[str]:
    stored = source.cast_column("image", datasets.Image(decode=False))["image"]
    return [os.path.relpath(image["path"], root) for image in stored]
