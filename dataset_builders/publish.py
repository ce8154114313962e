"""Assemble the published tables and write a Hub-ready dataset repository folder.

The folder holds one parquet directory per config and a dataset card whose YAML `configs:` tells
`load_dataset(folder_or_repo, config)` where each config lives:

- `triples`: (image, attribute description, category) triples with the hard negatives' descriptions,
  categories, labels and row indices (stage I data);
- `instructions`: one open-set QA and one 4-way multiple-choice conversation per image, in TRL's
  `messages` + `images` format, wrong options from the hard negatives (stage II data);
- `rl`: per image a multiple-choice and an open-set prompt without answers, with the ground truth and the
  shuffled options as columns (stage III data, `dataset_builders.rl`);
- `hard_negatives`: the mined index itself.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import yaml
from datasets.info import DatasetInfosDict
from datasets.table import embed_table_storage
from huggingface_hub import DatasetCardData
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

from .hard_negatives import HardNegatives
from .prompts import multiple_choice_answer, multiple_choice_prompt, open_set_prompt

CONFIG_NAMES = ("triples", "instructions", "rl", "hard_negatives")
DEFAULT_MAX_SHARD_BYTES = 500 * 1024 * 1024
# What a published card says instead of a path on the machine that built it.
LOCAL_NAME = "a local folder (not published)"


def is_hub_id(name: str | None) -> bool:
    """Whether `name` names a Hub repository rather than a local folder (which the Hub cannot link to)."""
    if not name or Path(name).exists():
        return False
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def public_name(name: str) -> str:
    """`name` (a model, dataset or adapter), or `LOCAL_NAME` when it is a path on this machine, which a published
    card must not show."""
    if os.path.isabs(os.path.expanduser(name)) or os.path.exists(name) or name.startswith(("./", "../")):
        return LOCAL_NAME
    return name


def build_triples(source: datasets.Dataset, descriptions: list[str], negatives: HardNegatives) -> datasets.Dataset:
    """Source rows + their attribute descriptions + hard negatives -> the `triples` table."""
    if len(descriptions) != source.num_rows or negatives.labels.shape[0] != source.num_rows:
        raise ValueError(
            f"Triples need one description and one negative set per image: {source.num_rows} images, "
            f"{len(descriptions)} descriptions, {negatives.labels.shape[0]} negative sets."
        )
    class_names = source.features["label"].names
    neg_indices = negatives.indices.tolist()
    features = datasets.Features(
        {
            "image": source.features["image"],
            "attribute": datasets.Value("string"),
            "category": datasets.Value("string"),
            "label": source.features["label"],
            "superclass": datasets.Value("string"),
            "neg_attributes": datasets.List(datasets.Value("string")),
            "neg_categories": datasets.List(datasets.Value("string")),
            "neg_labels": datasets.List(datasets.Value("int64")),
            "neg_indices": datasets.List(datasets.Value("int64")),
        }
    )
    # Only the cheap columns are read here; images stay as stored in `source`.
    return datasets.Dataset.from_dict(
        {
            "image": source.cast_column("image", datasets.Image(decode=False))["image"],
            "attribute": descriptions,
            "category": source["category"],
            "label": source["label"],
            "superclass": source["superclass"],
            "neg_attributes": [[descriptions[j] for j in row] for row in neg_indices],
            "neg_categories": [[class_names[label] for label in row] for row in negatives.labels.tolist()],
            "neg_labels": negatives.labels.tolist(),
            "neg_indices": neg_indices,
        },
        features=features,
    )


def build_hard_negative_index(negatives: HardNegatives, labels: list[int]) -> datasets.Dataset:
    return datasets.Dataset.from_dict(
        {
            "index": list(range(len(labels))),
            "label": labels,
            "neg_labels": negatives.labels.tolist(),
            "neg_indices": negatives.indices.tolist(),
            "neg_scores": negatives.scores.tolist(),
        },
        features=datasets.Features(
            {
                "index": datasets.Value("int64"),
                "label": datasets.Value("int64"),
                "neg_labels": datasets.List(datasets.Value("int64")),
                "neg_indices": datasets.List(datasets.Value("int64")),
                "neg_scores": datasets.List(datasets.Value("float32")),
            }
        ),
    )


INSTRUCTION_FEATURES = datasets.Features(
    {
        "images": datasets.List(datasets.Image()),
        "messages": [
            {
                "role": datasets.Value("string"),
                "content": [{"type": datasets.Value("string"), "text": datasets.Value("string")}],
            }
        ],
        "task": datasets.Value("string"),
        "category": datasets.Value("string"),
    }
)


def _conversation(prompt: str, answer: str) -> list[dict]:
    return [
        {"role": "user", "content": [{"type": "image", "text": None}, {"type": "text", "text": prompt}]},
        {"role": "assistant", "content": [{"type": "text", "text": answer}]},
    ]


def build_instructions(triples: datasets.Dataset, num_options: int = 4, seed: int = 0) -> datasets.Dataset:
    """Stage II data: per image an open-set question and a multiple-choice question whose wrong options are
    its hard-negative categories, shuffled with a seeded generator."""
    generator = random.Random(seed)
    rows = {"images": [], "messages": [], "task": [], "category": []}
    images = triples.cast_column("image", datasets.Image(decode=False))["image"]
    for image, category, superclass, negatives in zip(
        images, triples["category"], triples["superclass"], triples["neg_categories"]
    ):
        if len(negatives) < num_options - 1:
            raise ValueError(f"{num_options}-way questions need {num_options - 1} negatives, got {len(negatives)}.")
        options = [category, *negatives[: num_options - 1]]
        generator.shuffle(options)
        for task, prompt, answer in (
            ("open_set", open_set_prompt(superclass), category),
            (
                "multiple_choice",
                multiple_choice_prompt(options, superclass),
                multiple_choice_answer(options, options.index(category)),
            ),
        ):
            rows["images"].append([image])
            rows["messages"].append(_conversation(prompt, answer))
            rows["task"].append(task)
            rows["category"].append(category)
    return datasets.Dataset.from_dict(rows, features=INSTRUCTION_FEATURES)


@dataclass
class DatasetCardInfo:
    """What the card says about how the data was made."""

    pretty_name: str
    source: str
    split: str
    license: str = "other"
    license_note: str = "The images keep the license of the source dataset; check it before redistributing."
    models: dict[str, str] = field(default_factory=dict)
    prompts: dict[str, str] = field(default_factory=dict)
    description_source: str = "pipeline"
    negative_strategy: str = "clip"
    num_negatives: int = 3
    attributes: dict[str, list[str]] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)


def _write_parquet_shards(dataset: datasets.Dataset, folder: Path, max_shard_bytes: int) -> tuple[str, int]:
    """Write `dataset` (images embedded as bytes, so the folder is self-contained) as parquet shards named
    train-<fingerprint>-XXXXX-of-YYYYY.parquet; return the file pattern for the card and the data size in bytes.

    The content fingerprint in the names matters: `load_dataset` keys its cache on the folder name and the
    card, so without it a rebuilt folder (or another folder of the same name) would load stale rows. It also lets
    the new shards sit beside the previous build's until the card switches to them (see `write_dataset_folder`).
    """
    folder.mkdir(parents=True, exist_ok=True)
    for partial in folder.glob("*.parquet.tmp"):  # left by a killed build
        partial.unlink()
    # Embed referenced image files, like `push_to_hub` does, before estimating the size.
    embedded = dataset.with_format("arrow").map(
        embed_table_storage, batched=True, batch_size=256, desc="Embedding images"
    )
    embedded = embedded.with_format(None)
    num_shards = max(1, math.ceil(embedded.data.nbytes / max_shard_bytes))
    digest = hashlib.sha256()
    written = []
    for index in range(num_shards):
        path = folder / f"{index:05d}-of-{num_shards:05d}.parquet.tmp"
        embedded.shard(num_shards, index, contiguous=True).to_parquet(path)
        digest.update(path.read_bytes())
        written.append(path)
    fingerprint = digest.hexdigest()[:12]
    for path in written:
        path.rename(folder / f"train-{fingerprint}-{path.name.removesuffix('.tmp')}")
    return f"{folder.name}/train-{fingerprint}-*.parquet", embedded.data.nbytes


def dataset_card(
    configs: dict[str, datasets.Dataset], info: DatasetCardInfo, written: dict[str, tuple[str, int]]
) -> str:
    """README.md text: YAML front matter (license, configs, features) and a description of the build."""
    card_data = DatasetCardData(
        license=info.license,
        pretty_name=info.pretty_name,
        task_categories=["image-classification", "visual-question-answering"],
        tags=["fine-grained-visual-recognition", "finedefics", "attribute-descriptions", "hard-negatives"],
        size_categories=[_size_category(max(d.num_rows for d in configs.values()))],
        configs=[
            {"config_name": name, "data_files": [{"split": "train", "path": written[name][0]}]} for name in configs
        ],
    )
    # The features and split sizes in the layout `load_dataset` reads (`dataset_info`), written by `datasets` itself.
    DatasetInfosDict(
        {
            name: datasets.DatasetInfo(
                features=d.features,
                splits=datasets.SplitDict({"train": datasets.SplitInfo("train", written[name][1], d.num_rows)}),
            )
            for name, d in configs.items()
        }
    ).to_dataset_card_data(card_data)
    lines = [
        "---",
        card_data.to_yaml(),
        "---",
        "",
        f"# {info.pretty_name}",
        "",
        "Training data for [Finedefics](https://arxiv.org/abs/2501.15140) (ICLR 2025), built with "
        "`finedefics build-dataset` from hf-finedefics.",
        "",
        f"- Source: `{info.source}`, split `{info.split}`.",
        f"- Attribute descriptions: `{info.description_source}`.",
        f"- Negatives: {info.num_negatives} per image, strategy `{info.negative_strategy}`.",
    ]
    lines += [f"- {role} model: `{public_name(model)}`" for role, model in info.models.items()]
    lines += [f"- {key}: {value}" for key, value in info.extra.items()]
    lines += ["", "## Configs", ""]
    lines += [f"- `{name}`: {d.num_rows} rows, columns {', '.join(d.column_names)}." for name, d in configs.items()]
    lines += [
        "",
        "```python",
        "from datasets import load_dataset",
        "",
        'triples = load_dataset("<this repo>", "triples", split="train")',
        "```",
    ]
    if info.attributes:
        lines += ["", "## Discovered attributes", ""]
        lines += [f"- {superclass}: {', '.join(names)}" for superclass, names in info.attributes.items()]
    if info.prompts:
        lines += ["", "## Prompts", ""]
        for name, prompt in info.prompts.items():
            lines += [f"### {name}", "", "```text", prompt, "```", ""]
    lines += ["", "## License", "", info.license_note, ""]
    return "\n".join(lines)


def _size_category(rows: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if rows < limit:
            return label
    return "n>1M"


def write_dataset_folder(
    output_dir: str | Path,
    configs: dict[str, datasets.Dataset],
    info: DatasetCardInfo,
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
) -> Path:
    """Write each config as parquet shards under `output_dir/<config>/` plus README.md and build_info.json.

    The card is the manifest, written last and atomically: its `configs:` name the new shards by their content
    fingerprint, so until it is replaced loaders read the previous build's shards, which are deleted only after.
    A kill at any point leaves either the previous dataset or the new one, and a first build killed before its
    card leaves no README.md, which `finedefics run` and `check_dataset_folder` take as not built."""
    unknown = set(configs) - set(CONFIG_NAMES)
    if unknown:
        raise ValueError(f"Unknown config(s) {sorted(unknown)}; expected {list(CONFIG_NAMES)}.")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    written = {
        name: _write_parquet_shards(dataset, output_dir / name, max_shard_bytes) for name, dataset in configs.items()
    }
    _write_atomically(output_dir / "build_info.json", json.dumps(info.__dict__, indent=2))
    _write_atomically(output_dir / "README.md", dataset_card(configs, info, written))
    for name, (pattern, _) in written.items():
        current = set(output_dir.glob(pattern))
        for stale in (output_dir / name).glob("*.parquet"):
            if stale not in current:
                stale.unlink()
    return output_dir


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(f"{path.name}.tmp")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


def check_dataset_folder(folder: str | Path) -> Path:
    """Fail clearly if `folder` is not a dataset folder written by `write_dataset_folder`."""
    folder = Path(folder)
    card = folder / "README.md"
    if not card.is_file():
        raise FileNotFoundError(f"{card} does not exist: {folder} is not a built dataset folder.")
    for name in _card_configs(card):
        if not list((folder / name["config_name"]).glob("*.parquet")):
            raise FileNotFoundError(
                f"Config {name['config_name']!r} has no parquet files in {folder / name['config_name']}."
            )
    return folder


def _card_configs(card: Path) -> list[dict]:
    """The `configs:` of a dataset card's YAML header."""
    text = card.read_text(encoding="utf-8")
    if not text.startswith("---") or "configs:" not in text.split("---", 2)[1]:
        raise ValueError(f"{card} has no YAML `configs:` header.")
    return yaml.safe_load(text.split("---", 2)[1]).get("configs", [])


def push_dataset_folder(
    folder: str | Path,
    repo_id: str,
    token: str | None = None,
    private: bool = False,
    revision: str | None = None,
    create_repo: bool = True,
    commit_message: str = "Upload Finedefics training data",
) -> str:
    """Upload a built folder to the Hub dataset repo `repo_id` in one commit; returns the commit URL.

    Only the card and the parquet shards its `configs:` name are sent: the rest of the folder (build_info.json and
    the run's fingerprint.json with local paths and endpoints, partial files of a killed build, shard outputs,
    per-source parts) stays on the machine."""
    from huggingface_hub import HfApi

    folder = check_dataset_folder(folder)
    shards = [files["path"] for config in _card_configs(folder / "README.md") for files in config["data_files"]]
    api = HfApi(token=token)
    if create_repo:
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    commit = api.upload_folder(
        folder_path=folder,
        repo_id=repo_id,
        repo_type="dataset",
        revision=revision,
        commit_message=commit_message,
        allow_patterns=["README.md", *shards],
    )
    return str(getattr(commit, "commit_url", commit))
