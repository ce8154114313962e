"""`finedefics build-dataset` and `finedefics push-dataset` end to end on fixture layouts and tiny models."""

import logging
import re

import datasets
import pytest
import yaml
from huggingface_hub import HfApi

from dataset_builders.publish import LOCAL_NAME
from hf_finedefics.cli import main as finedefics
from hf_finedefics.testing import create_tiny_checkpoint

from . import layouts


@pytest.fixture(scope="module")
def pets(tmp_path_factory):
    root = tmp_path_factory.mktemp("pets")
    layouts.make_pets(root)
    # A fourth breed so that 3 negatives per image exist.
    for j in range(2):
        layouts.write_image(root / "images" / f"Bengal_{j + 1}.jpg", layouts.PALETTE[3])
    with open(root / "annotations" / "trainval.txt", "a") as handle:
        handle.write("Bengal_1 4 1 4\nBengal_2 4 1 4\n")
    return root


def build_args(pets, out, idefics2_path, cache, *extra):
    return [
        "build-dataset",
        "--sources", "pet-37",
        "--source_dirs", f"pet-37={pets}",
        "--llm", idefics2_path,
        "--vqa", idefics2_path,
        "--clip", str(create_tiny_checkpoint("clip")),
        "--max-new-tokens", "6",
        "--attributes", str(pets / "attributes.yaml"),
        "--cache", str(cache),
        "--output_dir", str(out),
        *extra,
    ]  # fmt: skip


def test_build_then_shard_and_merge(pets, idefics2_path, tmp_path):
    (pets / "attributes.yaml").write_text(yaml.safe_dump({"pet": ["ear shape", "coat color"]}))
    whole = tmp_path / "whole"
    finedefics(build_args(pets, whole, idefics2_path, tmp_path / "a.sqlite", "--license", "cc-by-sa-4.0"))
    triples = datasets.load_dataset(str(whole), "triples", split="train")
    assert triples.num_rows == 8
    assert triples.features["label"].names == [
        f"pet-37/{name}" for name in ("Abyssinian", "American Pit Bull Terrier", "Great Pyrenees", "Bengal")
    ]
    assert set(triples["source"]) == {"pet-37"}
    for row in triples:
        assert len(row["neg_categories"]) == 3 and row["category"] not in row["neg_categories"]
        assert row["neg_attributes"] == [triples[j]["attribute"] for j in row["neg_indices"]]
    instructions = datasets.load_dataset(str(whole), "instructions", split="train")
    assert instructions.num_rows == 16
    card = (whole / "README.md").read_text()
    # the card is published: the local CLIP folder is not named
    assert "license: cc-by-sa-4.0" in card and f"CLIP model: `{LOCAL_NAME}`" in card
    assert "- pet: ear shape, coat color" in card

    # Two shards described separately (own caches, so the work is really redone), then merged.
    sharded = tmp_path / "sharded"
    for index in (0, 1):
        finedefics(
            build_args(
                pets,
                sharded,
                idefics2_path,
                tmp_path / f"s{index}.sqlite",
                "--num-shards",
                "2",
                "--shard-index",
                str(index),
            )
        )
    with pytest.raises(FileNotFoundError, match="descriptions-00002-of-00003"):
        finedefics(build_args(pets, sharded, idefics2_path, tmp_path / "m.sqlite", "--num-shards", "3"))
    finedefics(build_args(pets, sharded, idefics2_path, tmp_path / "m.sqlite", "--num-shards", "2"))
    merged = datasets.load_dataset(str(sharded), "triples", split="train")
    assert merged["attribute"] == triples["attribute"]
    assert merged["neg_labels"] == triples["neg_labels"]


def test_ground_truth_variant_with_random_negatives(tmp_path):
    data_dir = layouts.make_cub(tmp_path, images_per_class=3)
    out = tmp_path / "out"
    finedefics(["build-dataset", "--sources", "bird-200", "--source_dirs", f"bird-200={data_dir}", "--descriptions",
                "ground-truth", "--negatives", "random", "--num-negatives", "2", "--output_dir", str(out)])  # fmt: skip
    triples = datasets.load_dataset(str(out), "triples", split="train")
    assert triples["attribute"][:2] == ["Bill shape: curved (up or down)."] * 2
    index = datasets.load_dataset(str(out), "hard_negatives", split="train")
    assert all(len(labels) == 2 for labels in index["neg_labels"])
    assert "Negatives: 2 per image, strategy `random`" in (out / "README.md").read_text()


def test_build_dataset_rejects_incomplete_options(tmp_path, capsys):
    with pytest.raises(SystemExit):
        finedefics(
            ["build-dataset", "--sources", "pet-37", "--data-dir", str(tmp_path), "--output_dir", str(tmp_path / "o")]
        )
    assert "--negatives clip needs --clip" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        finedefics(["build-dataset", "--source", "pet-37", "--output_dir", str(tmp_path / "o")])
    assert "--source was renamed: use --sources" in capsys.readouterr().err


def test_push_dataset_uploads_the_folder_in_one_call(tmp_path, monkeypatch):
    data_dir = layouts.make_cub(tmp_path, images_per_class=3)
    out = tmp_path / "out"
    finedefics(["build-dataset", "--sources", "bird-200", "--source_dirs", f"bird-200={data_dir}", "--descriptions",
                "ground-truth", "--negatives", "random", "--num-negatives", "2", "--output_dir", str(out)])  # fmt: skip
    calls = []
    monkeypatch.setattr(HfApi, "upload_folder", lambda self, **kwargs: calls.append(kwargs) or "https://hub/commit/1")
    finedefics(
        ["push-dataset", "--dataset_name", str(out), "--repo_id", "user/finedefics-bird", "--create_repo", "false"]
    )
    assert len(calls) == 1
    assert calls[0]["folder_path"] == out and calls[0]["repo_id"] == "user/finedefics-bird"
    assert calls[0]["repo_type"] == "dataset"
    with pytest.raises(FileNotFoundError, match="README.md"):
        finedefics(["push-dataset", "--dataset_name", str(tmp_path), "--repo_id", "user/x", "--create_repo", "false"])


@pytest.mark.parametrize(
    "flag, value",
    [
        ("--concurrency", "0"),
        ("--num_negatives", "0"),
        ("--limit", "-5"),
        ("--batch_size", "-1"),
        ("--max_new_tokens", "0"),
        ("--num_shards", "0"),
        ("--timeout", "0"),
        ("--max_retries", "-1"),
        ("--max_image_pixels", "0"),
    ],  # fmt: skip
)
def test_sizes_below_one_are_refused_naming_the_option(tmp_path, capsys, flag, value):
    with pytest.raises(SystemExit):
        finedefics(["build-dataset", "--sources", "imagefolder", "--source_dirs", f"imagefolder={tmp_path}", "--negatives", "random",
                    "--output_dir", str(tmp_path / "out"), flag, value])  # fmt: skip
    assert flag in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_changed_source_folder_is_rebuilt_an_unchanged_one_reused(idefics2_path, tmp_path, caplog):
    source = layouts.make_image_folder(tmp_path / "birds", ["jay", "wren", "robin"], 2)
    (tmp_path / "attributes.yaml").write_text(yaml.safe_dump({"bird": ["wing colour"]}))
    out = tmp_path / "out"
    build = ["build-dataset", "--sources", "imagefolder", "--source_dirs", f"imagefolder={source}", "--superclass",
             "bird", "--descriptions", "tags", "--llm", idefics2_path, "--attributes", str(tmp_path / "attributes.yaml"),
             "--max-new-tokens", "4", "--negatives", "random", "--num-negatives", "1", "--cache",
             str(tmp_path / "answers.sqlite"), "--output_dir", str(out)]  # fmt: skip

    def built() -> tuple[int, int]:
        triples = datasets.load_dataset(str(out), "triples", split="train")
        return triples.num_rows, len(triples.features["label"].names)

    finedefics(build)
    assert built() == (6, 3)
    layouts.make_image_folder(source, ["finch"], 2)  # a class added
    (source / "jay" / "1.png").unlink()  # an image removed
    with caplog.at_level(logging.INFO):
        finedefics(build)
    assert "reusing" not in caplog.text
    assert built() == (7, 4)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        finedefics(build)
    assert f"imagefolder: reusing {out / 'sources' / 'imagefolder'}" in caplog.text
    assert built() == (7, 4)


def test_a_source_too_small_for_its_negatives_fails_before_any_request(tmp_path):
    source = layouts.make_image_folder(tmp_path / "birds", ["jay", "wren", "robin", "finch"], 2)
    # Nothing listens on port 9: a request would fail on the connection, not on the size of the source.
    with pytest.raises(
        ValueError, match=r"imagefolder: 3 negatives per image need at least 4 categories.*limit: 1\) cover 1"
    ):
        finedefics(["build-dataset", "--sources", "imagefolder", "--source_dirs", f"imagefolder={source}",
                    "--descriptions", "tags", "--llm", "some-model", "--llm_base_url", "http://127.0.0.1:9/v1",
                    "--max_retries", "0", "--negatives", "random", "--num-negatives", "3", "--limit", "1",
                    "--output_dir", str(tmp_path / "out")])  # fmt: skip


@pytest.mark.parametrize(
    "prompts, message",
    [
        ({"attribute_question": "Describe the {foo} of the {superclass}."}, r"attribute_question uses \{foo\}; its placeholders: \{attribute\}, \{superclass\}"),
        ({"summarization": "Summarize {superclass"}, r"summarization is not a valid template"),
    ],
    ids=["unknown-placeholder", "unclosed-brace"],
)  # fmt: skip
def test_a_prompts_file_with_placeholders_no_step_fills_is_refused_before_any_work(tmp_path, capsys, prompts, message):
    (tmp_path / "prompts.yaml").write_text(yaml.safe_dump(prompts))
    with pytest.raises(SystemExit):
        finedefics(["build-dataset", "--sources", "imagefolder", "--source_dirs", f"imagefolder={tmp_path}",
                    "--llm", "some-model", "--llm_base_url", "http://127.0.0.1:9/v1", "--negatives", "random",
                    "--prompts", str(tmp_path / "prompts.yaml"), "--output_dir", str(tmp_path / "out")])  # fmt: skip
    assert re.search(rf"{tmp_path / 'prompts.yaml'}: {message}", capsys.readouterr().err)
    assert not (tmp_path / "out").exists()
