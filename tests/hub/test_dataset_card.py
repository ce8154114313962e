"""The dataset card is built with huggingface_hub's `DatasetCardData` and reads back as the Hub and `datasets` read
it: license, configs, and each config's features and split size."""

from __future__ import annotations

from huggingface_hub import DatasetCard

from dataset_builders import load_source
from dataset_builders.hard_negatives import mine_hard_negatives
from dataset_builders.publish import (
    DatasetCardInfo,
    build_hard_negative_index,
    build_instructions,
    build_triples,
    write_dataset_folder,
)

from ..dataset_builders import layouts


def test_dataset_card_reads_back_through_huggingface_hub(tmp_path):
    source = load_source(
        "imagefolder", layouts.make_image_folder(tmp_path / "images", ["a", "b", "c", "d"], 1), "train"
    )
    negatives = mine_hard_negatives(source, k=3, strategy="random", seed=1)
    triples = build_triples(source, [f"A {row['category']}." for row in source], negatives)
    configs = {
        "triples": triples,
        "instructions": build_instructions(triples),
        "hard_negatives": build_hard_negative_index(negatives, source["label"]),
    }
    folder = write_dataset_folder(tmp_path / "data", configs, DatasetCardInfo("Tiny", "imagefolder", "train"))

    card = DatasetCard.load(folder / "README.md")
    assert (card.data.license, card.data.pretty_name) == ("other", "Tiny")
    assert [config["config_name"] for config in card.data.configs] == list(configs)
    infos = {info["config_name"]: info for info in card.data.dataset_info}
    for name, dataset in configs.items():
        assert infos[name]["splits"][0]["num_examples"] == dataset.num_rows
        assert [feature["name"] for feature in infos[name]["features"]] == dataset.column_names
    assert "- Source: `imagefolder`, split `train`." in card.text
