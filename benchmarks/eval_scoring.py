"""Throughput of the two multiple-choice scorers on the same questions: greedy generation + parsing vs
one forward pass over the option letters.

    python benchmarks/eval_scoring.py --architecture idefics2 --num-items 64 --batch-size 8

Runs on a tiny randomly initialised checkpoint of the real architecture and generated images, so the
numbers measure the scoring loop (prompting, batching, decoding), not a real model's accuracy. A random
model never stops early, so generation runs all `--max-new-tokens` steps: the ratio is an upper bound for
models that answer "B" and stop.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

from hf_finedefics.evaluation import GenerationScorer, LikelihoodScorer, load_mc_items, score_items
from hf_finedefics.testing import TINY_ARCHITECTURES, create_tiny_checkpoint

CLASSES = [f"species {index}" for index in range(8)]


def make_questions(root: Path, num_items: int, seed: int = 0):
    """`num_items` small images in an image folder and an option file with 4 options each."""
    rng = random.Random(seed)
    option_file: dict[str, list[dict]] = {name: [] for name in CLASSES}
    for index in range(num_items):
        label = CLASSES[index % len(CLASSES)]
        relative = f"test/{label}/{index}.png"
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (48, 40), tuple(rng.randrange(256) for _ in range(3))).save(root / relative)
        options = [label, *rng.sample([name for name in CLASSES if name != label], 3)]
        option_file[label].append({"image": relative, "options": options, "groundtruth": label})
    (root / "options.json").write_text(json.dumps(option_file))
    return load_mc_items("imagefolder", root, root / "options.json")


def throughput(scorer, items, work_dir: Path, batch_size: int, repeat: int) -> float:
    """Items per second of one full pass (into a fresh results file: a reused one would be resumed)."""
    start = time.perf_counter()
    score_items(scorer, items, work_dir / f"{scorer.name}-{repeat}.jsonl", superclass="bird", batch_size=batch_size)
    return len(items) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--architecture", choices=TINY_ARCHITECTURES, default="idefics2")
    parser.add_argument("--num-items", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=32, help="the evaluate command's default")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    path = create_tiny_checkpoint(args.architecture)
    model = AutoModelForImageTextToText.from_pretrained(path).eval()
    processor = AutoProcessor.from_pretrained(path)
    scorers = [
        GenerationScorer(model, processor, max_new_tokens=args.max_new_tokens),
        LikelihoodScorer(model, processor),
    ]
    rates: dict[str, list[float]] = {scorer.name: [] for scorer in scorers}
    with tempfile.TemporaryDirectory() as work_dir:
        items = make_questions(Path(work_dir) / "data", args.num_items)
        for scorer in scorers:  # one untimed batch each, so lazy initialisation is billed to neither
            score_items(
                scorer, items[: args.batch_size], Path(work_dir) / f"warmup-{scorer.name}.jsonl", superclass="bird"
            )
        # Alternate the scorers and keep the median, so load from other processes hits both alike.
        for repeat in range(args.repeats):
            for scorer in scorers:
                rates[scorer.name].append(throughput(scorer, items, Path(work_dir), args.batch_size, repeat))
    generation, likelihood = statistics.median(rates["generation"]), statistics.median(rates["likelihood"])
    print(
        f"{args.architecture}, {args.num_items} items, batch {args.batch_size}, "
        f"max_new_tokens {args.max_new_tokens}, {args.threads} threads, median of {args.repeats}"
    )
    print(f"generation: {generation:8.1f} items/s")
    print(f"likelihood: {likelihood:8.1f} items/s")
    print(f"likelihood / generation: {likelihood / generation:.1f}x")


if __name__ == "__main__":
    main()
