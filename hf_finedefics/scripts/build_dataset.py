"""`finedefics build-dataset`: attribute triples, hard negatives and instructions from a source dataset.

Example (local models):

    finedefics build-dataset --source bird-200 --data-dir CUB_200_2011 \
        --llm meta-llama/Llama-3.1-8B-Instruct --vqa llava-hf/llava-1.5-7b-hf \
        --clip openai/clip-vit-large-patch14 --out finedefics-bird-200
"""

from __future__ import annotations

import argparse
import dataclasses
import logging

from dataset_builders.attributes.pipeline import ATTRIBUTE_TYPE_KEYWORDS
from dataset_builders.build import BuildConfig, build_dataset
from dataset_builders.sources import SOURCES


def parse_args(argv: list[str]) -> BuildConfig:
    defaults = BuildConfig(source="", data_dir="", output_dir="")
    parser = argparse.ArgumentParser(
        prog="finedefics build-dataset",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    data = parser.add_argument_group("source")
    data.add_argument("--source", required=True, choices=sorted(SOURCES), help="dataset layout to read")
    data.add_argument("--data-dir", required=True, help="root of your copy of the dataset")
    data.add_argument("--split", default=defaults.split, help="split to build from (the paper uses train)")
    data.add_argument("--superclass", default=None, help="super-category name (needed for imagefolder)")
    data.add_argument("--limit", type=int, default=None, help="use only the first N images (for a trial run)")
    data.add_argument(
        "--max-image-pixels",
        type=int,
        default=defaults.max_image_pixels,
        help="skip (and count) images whose header declares more pixels, before decoding them",
    )

    models = parser.add_argument_group("attribute descriptions")
    models.add_argument(
        "--descriptions",
        default=defaults.descriptions,
        choices=["pipeline", "ground-truth", "tags"],
        help="pipeline: discovery + VQA + summary (the paper); ground-truth: CUB's annotations; "
        "tags: per-class LLM descriptions (baseline)",
    )
    models.add_argument("--llm", default=None, help="LLM for discovery and summarization (id or folder)")
    models.add_argument("--vqa", default=None, help="VQA model for attribute extraction (id or folder)")
    models.add_argument("--llm-base-url", default=None, help="OpenAI-compatible endpoint serving --llm")
    models.add_argument("--vqa-base-url", default=None, help="OpenAI-compatible endpoint serving --vqa")
    models.add_argument("--api-key", default=None, help="endpoint API key; unset falls back to $OPENAI_API_KEY")
    models.add_argument("--max-new-tokens", type=int, default=defaults.max_new_tokens)
    models.add_argument("--batch-size", type=int, default=defaults.batch_size, help="local generation batch")
    models.add_argument("--concurrency", type=int, default=defaults.concurrency, help="parallel HTTP requests")
    models.add_argument(
        "--timeout", type=float, default=defaults.timeout, help="seconds to wait for one HTTP reply before a retry"
    )
    models.add_argument(
        "--max-retries",
        type=int,
        default=defaults.max_retries,
        help="HTTP retries (with back-off) of timeouts, dropped connections, 429/5xx and replies without choices",
    )
    models.add_argument("--prompts", default=None, help="YAML file overriding prompt templates")
    models.add_argument("--attributes", default=None, help="YAML {superclass: [attributes]} replacing discovery")
    models.add_argument(
        "--remove-attribute-types",
        nargs="*",
        default=[],
        choices=sorted(ATTRIBUTE_TYPE_KEYWORDS),
        help="attribute types to leave out (ablation)",
    )
    models.add_argument(
        "--cache",
        default=None,
        help="answer cache file; unset uses $HF_FINEDEFICS_CACHE/answers.sqlite or ~/.cache/hf_finedefics/answers.sqlite",
    )

    negatives = parser.add_argument_group("hard negatives")
    negatives.add_argument(
        "--clip", default=None, help="CLIP model for mining (transformers or sentence-transformers)"
    )
    negatives.add_argument("--negatives", default=defaults.negatives, choices=["clip", "random"])
    negatives.add_argument("--num-negatives", type=int, default=defaults.num_negatives)
    negatives.add_argument("--seed", type=int, default=defaults.seed)

    output = parser.add_argument_group("output")
    output.add_argument("--out", dest="output_dir", required=True, help="dataset folder to write")
    output.add_argument("--license", default=defaults.license, help="license field of the dataset card")
    output.add_argument("--pretty-name", default=None)
    output.add_argument("--num-shards", type=int, default=defaults.num_shards, help="split the description step")
    output.add_argument(
        "--shard-index", type=int, default=None, help="describe only this shard; omit to merge shards and finish"
    )
    args = parser.parse_args(argv)
    if args.negatives == "clip" and not args.clip:
        parser.error("--negatives clip needs --clip MODEL (or use --negatives random).")
    fields = {f.name for f in dataclasses.fields(BuildConfig)}
    try:
        return BuildConfig(**{key: value for key, value in vars(args).items() if key in fields})
    except ValueError as error:
        parser.error(str(error))


def main(argv: list[str]) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config = parse_args(argv)
    path = build_dataset(config)
    print(f"Wrote {path}")
