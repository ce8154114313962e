"""Time and peak memory of hard-negative mining at the scale the issue asks for (100k images x 1k classes).

Mining works on precomputed CLIP embeddings, so this benchmark draws random unit vectors of CLIP-L's
width (768) and measures the vectorised, chunked top-K search plus the choice of one image per negative.

    python benchmarks/hard_negative_mining.py --images 100000 --classes 1000
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch

from dataset_builders.hard_negatives import mine_clip_negatives, pick_negative_images, random_negative_labels


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # ru_maxrss is KiB on Linux


def unit_vectors(generator: np.random.Generator, rows: int, dim: int, chunk: int = 16384) -> np.ndarray:
    out = np.empty((rows, dim), dtype=np.float32)
    for start in range(0, rows, chunk):
        block = generator.standard_normal((min(chunk, rows - start), dim), dtype=np.float32)
        out[start : start + chunk] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--classes", type=int, default=1_000)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--chunk-size", type=int, default=8192)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    baseline = peak_rss_gib()
    generator = np.random.default_rng(0)
    images = unit_vectors(generator, args.images, args.dim)
    classes = unit_vectors(generator, args.classes, args.dim)
    labels = generator.integers(0, args.classes, size=args.images)
    after_inputs = peak_rss_gib()

    start = time.perf_counter()
    negative_labels, _ = mine_clip_negatives(images, classes, labels, k=args.k, chunk_size=args.chunk_size)
    indices = pick_negative_images(labels, negative_labels)
    clip_seconds = time.perf_counter() - start
    after_clip = peak_rss_gib()

    start = time.perf_counter()
    random_labels = random_negative_labels(labels, args.classes, k=args.k)
    pick_negative_images(labels, random_labels)
    random_seconds = time.perf_counter() - start
    after_random = peak_rss_gib()

    assert not (negative_labels == labels[:, None]).any() and (labels[indices] == negative_labels).all()
    print(f"images={args.images} classes={args.classes} dim={args.dim} k={args.k} chunk={args.chunk_size} "
          f"threads={torch.get_num_threads()}")  # fmt: skip
    print(f"clip mining:   {clip_seconds:.2f} s  ({args.images / clip_seconds:,.0f} images/s)")
    print(f"random:        {random_seconds:.2f} s")
    print(f"peak RSS: {after_random:.2f} GiB (interpreter+torch {baseline:.2f} GiB, embeddings +{after_inputs - baseline:.2f} "
          f"GiB, clip mining +{after_clip - after_inputs:.2f} GiB, random +{after_random - after_clip:.2f} GiB)")  # fmt: skip


if __name__ == "__main__":
    main()
