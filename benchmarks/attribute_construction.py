"""Attribute description throughput with a cold and a warm answer cache.

Builds a folder of generated images, runs discovery -> extraction -> summarization once with an empty
cache (every answer generated) and once more with the filled cache (what a resumed build pays).
Without --llm/--vqa it uses a tiny random checkpoint so it runs anywhere; pass real models (or
--base-url for an OpenAI-compatible server) to measure those.

    python benchmarks/attribute_construction.py --images 32
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dataset_builders import AnswerCache, AttributeDescriber, LocalBackend, OpenAICompatibleBackend, load_source
from hf_finedefics.testing import create_tiny_checkpoint


def make_images(root: Path, count: int, classes: int = 4) -> Path:
    generator = np.random.default_rng(0)
    for i in range(count):
        folder = root / f"class_{i % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = generator.integers(0, 255, size=(64, 64, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--llm", default=None, help="default: a tiny random Idefics2 checkpoint")
    parser.add_argument("--vqa", default=None, help="default: the --llm model")
    parser.add_argument("--base-url", default=None, help="OpenAI-compatible endpoint serving the models")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--attributes", default="wing color,bill shape,tail pattern,size")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    llm_id = args.llm or str(create_tiny_checkpoint("idefics2"))
    vqa_id = args.vqa or llm_id

    def backend(model_id: str):
        if args.base_url:
            return OpenAICompatibleBackend(
                args.base_url, model_id, max_new_tokens=args.max_new_tokens, concurrency=args.concurrency
            )
        return LocalBackend(model_id, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)

    llm = backend(llm_id)
    vqa = llm if vqa_id == llm_id else backend(vqa_id)
    attributes = {"bird": [a.strip() for a in args.attributes.split(",")]}
    with tempfile.TemporaryDirectory() as workdir:
        dataset = load_source("imagefolder", make_images(Path(workdir) / "images", args.images), "train", "bird")
        cache = AnswerCache(Path(workdir) / "answers.sqlite")
        timings = {}
        for run in ("cold", "warm"):
            describer = AttributeDescriber(llm, vqa, cache, attributes=attributes)
            start = time.perf_counter()
            describer.describe(dataset)
            timings[run] = time.perf_counter() - start
        answers = len(cache)
    print(f"model={llm_id} vqa={vqa_id} images={args.images} questions/image={1 + len(attributes['bird'])} "
          f"max_new_tokens={args.max_new_tokens} backend={'http' if args.base_url else 'local'} "
          f"threads={torch.get_num_threads()} cached answers={answers}")  # fmt: skip
    for run, seconds in timings.items():
        print(f"{run:5s} cache: {seconds:7.2f} s  {args.images / seconds:9.1f} images/s")


if __name__ == "__main__":
    main()
