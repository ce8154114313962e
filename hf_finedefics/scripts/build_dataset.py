"""`finedefics build-dataset`: attribute triples, hard negatives and instructions from one or several sources.

The paper's training set (the six FGVR training splits, 38,525 images, one label space), with each dataset in its
native layout under /data/fgvr/<name>/ (or `--source_dirs bird-200=/data/CUB_200_2011,...`):

    finedefics build-dataset --sources dog-120 bird-200 aircraft-102 flower-102 pet-37 car-196 \\
        --data_dir /data/fgvr --llm meta-llama/Llama-3.1-8B-Instruct --vqa llava-hf/llava-1.5-7b-hf \\
        --clip openai/clip-vit-large-patch14 --output_dir data/finedefics-fgvr
"""

from __future__ import annotations

import logging

from trl import TrlParser

from dataset_builders.build_config import BuildConfig
from hf_finedefics.scripts import run


def make_parser() -> TrlParser:
    return TrlParser((BuildConfig,), prog="finedefics build-dataset")


def main(config: BuildConfig) -> None:
    from dataset_builders.build import build_dataset

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    path = build_dataset(config)
    print(f"Wrote {path}")


if __name__ == "__main__":
    run(make_parser, main)
