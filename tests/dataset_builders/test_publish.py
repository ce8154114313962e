import io
import os
from pathlib import Path

import datasets
import numpy as np
import pytest
import yaml
from PIL import Image

from dataset_builders import load_source
from dataset_builders.hard_negatives import mine_hard_negatives
from dataset_builders.prompts import OPTION_LETTERS
from dataset_builders.publish import (
    DatasetCardInfo,
    build_hard_negative_index,
    build_instructions,
    build_triples,
    check_dataset_folder,
    write_dataset_folder,
)

from ..kills import Killed, kill_at
from . import layouts


@pytest.fixture
def built(tmp_path):
    source = load_source(
        "imagefolder", layouts.make_image_folder(tmp_path / "src", ["a", "b", "c", "d", "e"], 2), "train"
    )
    descriptions = [f"Description {i}: a {row['category']} with {i} spots." for i, row in enumerate(source)]
    negatives = mine_hard_negatives(source, k=3, strategy="random", seed=1)
    triples = build_triples(source, descriptions, negatives)
    configs = {
        "triples": triples,
        "instructions": build_instructions(triples, seed=0),
        "hard_negatives": build_hard_negative_index(negatives, source["label"]),
    }
    info = DatasetCardInfo(pretty_name="Tiny triples", source="imagefolder", split="train", license="cc-by-4.0")
    folder = write_dataset_folder(tmp_path / "out", configs, info, max_shard_bytes=2_000)
    return source, configs, folder


def test_triples_round_trip_through_load_dataset(built):
    source, configs, folder = built
    loaded = datasets.load_dataset(str(folder), "triples", split="train")
    triples = configs["triples"]
    assert loaded.features == triples.features
    assert len(list((folder / "triples").glob("*.parquet"))) > 1  # small max_shard_bytes forces several shards
    for column in triples.column_names:
        if column != "image":
            assert loaded[column] == triples[column], column
    for row, original in zip(loaded, source):
        np.testing.assert_array_equal(np.asarray(row["image"]), np.asarray(original["image"]))


def test_triples_negatives_are_consistent(built):
    _, configs, _ = built
    triples = configs["triples"]
    names = triples.features["label"].names
    for row in triples:
        assert row["category"] not in row["neg_categories"]
        assert [names[label] for label in row["neg_labels"]] == row["neg_categories"]
        assert [triples[j]["attribute"] for j in row["neg_indices"]] == row["neg_attributes"]
        assert [triples[j]["label"] for j in row["neg_indices"]] == row["neg_labels"]


def test_instructions_are_trl_conversations(built):
    _, configs, folder = built
    loaded = datasets.load_dataset(str(folder), "instructions", split="train")
    triples = configs["triples"]
    assert loaded.num_rows == 2 * triples.num_rows
    assert loaded["task"] == ["open_set", "multiple_choice"] * triples.num_rows
    for index, row in enumerate(loaded):
        triple = triples[index // 2]
        user, assistant = row["messages"]
        assert user["role"] == "user" and assistant["role"] == "assistant"
        assert [item["type"] for item in user["content"]] == ["image", "text"]
        assert len(row["images"]) == 1 and isinstance(row["images"][0], Image.Image)
        answer = assistant["content"][0]["text"]
        if row["task"] == "open_set":
            assert answer == triple["category"]
        else:
            prompt = user["content"][1]["text"]
            options = [line[3:] for line in prompt.splitlines() if line[:1] in OPTION_LETTERS and line[1:3] == ". "]
            assert sorted(options) == sorted([triple["category"], *triple["neg_categories"]])
            assert answer == f"{OPTION_LETTERS[options.index(triple['category'])]}. {triple['category']}"


def test_card_declares_configs_features_and_license(built):
    _, configs, folder = built
    header = yaml.safe_load((folder / "README.md").read_text().split("---")[1])
    assert header["license"] == "cc-by-4.0"
    assert [c["config_name"] for c in header["configs"]] == ["triples", "instructions", "hard_negatives"]
    features = {info["config_name"]: info["features"] for info in header["dataset_info"]}
    assert [f["name"] for f in features["triples"]] == configs["triples"].column_names
    loaded_index = datasets.load_dataset(str(folder), "hard_negatives", split="train")
    assert loaded_index["neg_indices"] == configs["triples"]["neg_indices"]
    assert check_dataset_folder(folder) == folder


def test_images_are_embedded_not_referenced(built, tmp_path):
    _, _, folder = built
    for image in (tmp_path / "src").rglob("*.png"):
        image.unlink()
    loaded = datasets.load_dataset(str(folder), "triples", split="train")
    raw = loaded.cast_column("image", datasets.Image(decode=False))[0]["image"]
    assert Image.open(io.BytesIO(raw["bytes"])).size == (16, 16)


def test_check_dataset_folder_names_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="README.md"):
        check_dataset_folder(tmp_path)


def test_rebuilt_folders_never_load_stale_rows(tmp_path):
    # `load_dataset` caches by folder name and card; the content fingerprint in file names keeps builds apart.
    loaded = []
    for index in range(2):
        table = datasets.Dataset.from_dict(
            {"index": [index], "label": [0], "neg_labels": [[1]], "neg_indices": [[0]], "neg_scores": [[0.5]]}
        )
        folder = write_dataset_folder(
            tmp_path / str(index) / "out", {"hard_negatives": table}, DatasetCardInfo("x", "y", "train")
        )
        loaded.append(datasets.load_dataset(str(folder), "hard_negatives", split="train")["index"][0])
    assert loaded == [0, 1]


def _hard_negative_table(first_index: int, num_rows: int = 12) -> datasets.Dataset:
    indices = list(range(first_index, first_index + num_rows))
    return datasets.Dataset.from_dict(
        {
            "index": indices,
            "label": [0] * num_rows,
            "neg_labels": [[1]] * num_rows,
            "neg_indices": [[0]] * num_rows,
            "neg_scores": [[0.5]] * num_rows,
        }  # fmt: skip
    )


PUBLISH_WRITES = [(datasets.Dataset, "to_parquet"), (Path, "rename"), (Path, "unlink"), (Path, "write_text"),
                  (Path, "replace"), (os, "replace")]  # fmt: skip


@pytest.mark.parametrize("previous", [True, False], ids=["rebuild", "first-build"])
def test_killed_build_leaves_the_old_or_the_new_dataset(tmp_path, monkeypatch, previous):
    """A kill at any file-system step of a (re)build leaves the folder either complete and loadable (old or new
    rows) or, for a first build, without a card, so `check_dataset_folder` and `finedefics run` rebuild it."""
    info = DatasetCardInfo("x", "y", "train")
    old, new = _hard_negative_table(0), _hard_negative_table(100)
    step = 0
    while True:
        step += 1
        folder = tmp_path / str(step) / "out"
        if previous:
            write_dataset_folder(folder, {"hard_negatives": old}, info, max_shard_bytes=200)
        with monkeypatch.context() as patch:
            reached = kill_at(patch, step, PUBLISH_WRITES)
            try:
                write_dataset_folder(folder, {"hard_negatives": new}, info, max_shard_bytes=200)
                finished = True
            except Killed:
                finished = False
        if not previous and not (folder / "README.md").exists():
            with pytest.raises(FileNotFoundError):
                check_dataset_folder(folder)
        else:
            check_dataset_folder(folder)
            loaded = datasets.load_dataset(str(folder), "hard_negatives", split="train", cache_dir=str(tmp_path / "c"))
            assert loaded["index"] in (old["index"], new["index"]), f"killed at step {step}"
            if finished:
                assert loaded["index"] == new["index"]
        if finished:
            break
    assert reached[0] > 3  # several shards: the kill was tried at every step
    # the next complete build leaves no file of killed or earlier builds behind
    write_dataset_folder(folder, {"hard_negatives": new}, info, max_shard_bytes=200)
    pattern = yaml.safe_load((folder / "README.md").read_text().split("---")[1])["configs"][0]["data_files"][0]["path"]
    assert sorted((folder / "hard_negatives").iterdir()) == sorted(folder.glob(pattern))
