"""The same CPU work under two Python environments (e.g. torch 2.13.0 CPU vs torch 2.14.1 + torchvision 0.29.1).

    python benchmarks/torch_builds.py --python /usr/bin/python3 --python /work/venv214/bin/python --rounds 3

Each round runs one fresh worker process per environment, alternating which goes first, so load from other
processes hits both alike; each worker, on one thread, times:

- `import`: `import torch, transformers` (a fresh interpreter),
- `dispatch`: one tiny tensor addition (per-operator overhead, which dominates the tiny models),
- `stage1`: one stage I step (forward, losses, backward) on the tiny Idefics2 at batch 16,
- `world`: world pretraining steps of the embedded default's world base (its real sizes and batch),
- `scoring`: a likelihood scoring pass (letters) over 256 four-way questions on the tiny Idefics2.

Prints each figure's median over the rounds per environment, and the ratio to the first environment.
`--worker` runs one worker and prints its figures as JSON (what the rounds call).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
FIGURES = {
    "import": "s",
    "dispatch": "us/op",
    "stage1": "ms/step",
    "world": "ms/step",
    "scoring": "items/s",
}


def _seconds_per_call(function, calls: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        function()
    start = time.perf_counter()
    for _ in range(calls):
        function()
    return (time.perf_counter() - start) / calls


def worker(world_steps: int) -> dict[str, float]:
    import torch

    torch.set_num_threads(1)
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from hf_finedefics.evaluation import LikelihoodScorer, score_items
    from hf_finedefics.run.pipeline import FinedeficsRun, load_run_config
    from hf_finedefics.testing import create_tiny_checkpoint
    from hf_finedefics.world.pretraining import pretrain_world

    sys.path.append(str(BENCHMARKS))
    from eval_scoring import make_questions, throughput
    from stage1_step import measure

    figures = {}
    left, right = torch.randn(8, 8), torch.randn(8, 8)
    figures["dispatch"] = _seconds_per_call(lambda: left + right, 20_000) * 1e6
    figures["stage1"] = measure("stage1", "idefics2", batch_size=16, steps=5, threads=1)[0] * 1e3

    run = FinedeficsRun(load_run_config())
    with tempfile.TemporaryDirectory() as work_dir:
        # Saving every step would time the disk; one save at the end is outside the timed steps.
        world = dataclasses.replace(run.world, max_steps=2, save_steps=10**9)
        pretrain_world(run.synthetic, world, Path(work_dir) / "warmup", progress=False)
        start = time.perf_counter()
        pretrain_world(
            run.synthetic, dataclasses.replace(world, max_steps=world_steps), Path(work_dir) / "world", progress=False
        )
        # The draw of the world's images and the tokenizer are common to both calls and are subtracted.
        warmup_start = time.perf_counter()
        pretrain_world(run.synthetic, world, Path(work_dir) / "again", progress=False)
        fixed_and_two = time.perf_counter() - warmup_start
        total = warmup_start - start
        figures["world"] = (total - fixed_and_two) / (world_steps - 2) * 1e3

        checkpoint = create_tiny_checkpoint("idefics2")
        model = AutoModelForImageTextToText.from_pretrained(checkpoint).eval()
        processor = AutoProcessor.from_pretrained(checkpoint, do_image_splitting=False)
        scorer = LikelihoodScorer(model, processor)
        items = make_questions(Path(work_dir) / "questions", 256)
        score_items(scorer, items[:8], Path(work_dir) / "warmup.jsonl", superclass="bird")
        figures["scoring"] = throughput(scorer, items, Path(work_dir), batch_size=8, repeat=0)
    return figures


def import_seconds(python: str) -> float:
    start = time.perf_counter()
    subprocess.run([python, "-c", "import torch, transformers"], check=True)
    return time.perf_counter() - start


def run_worker(python: str, world_steps: int) -> dict[str, float]:
    command = [python, __file__, "--worker", "--world-steps", str(world_steps)]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    output = subprocess.run(command, check=True, capture_output=True, text=True, env=environment)
    figures = json.loads(output.stdout.strip().splitlines()[-1])
    return {"import": import_seconds(python), **figures}


def describe(python: str) -> str:
    code = "import torch, importlib.util; print(torch.__version__, bool(importlib.util.find_spec('torchvision')))"
    version, has_torchvision = subprocess.run(
        [python, "-c", code], check=True, capture_output=True, text=True
    ).stdout.split()
    return f"torch {version}" + (" + torchvision" if has_torchvision == "True" else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", action="append", help="An environment's interpreter (give two or more).")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--world-steps", type=int, default=12, help="Timed world pretraining steps per worker.")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.world_steps)))
        return
    pythons = args.python or [sys.executable]
    names = [describe(python) for python in pythons]
    results: dict[str, list[dict[str, float]]] = {python: [] for python in pythons}
    for round_index in range(args.rounds):
        order = pythons if round_index % 2 == 0 else pythons[::-1]
        for python in order:
            results[python].append(run_worker(python, args.world_steps))
            print(f"round {round_index + 1}/{args.rounds} {describe(python)}: {results[python][-1]}", flush=True)
    medians = {
        python: {figure: statistics.median(r[figure] for r in rounds) for figure in FIGURES}
        for python, rounds in results.items()
    }
    first = medians[pythons[0]]
    print(f"\none thread, median of {args.rounds} rounds; ratio = this environment / the first")
    print(f"{'figure':<10} {'unit':<8} " + " ".join(f"{name:>32}" for name in names) + "   ratio")
    for figure, unit in FIGURES.items():
        values = " ".join(f"{medians[python][figure]:>32.2f}" for python in pythons)
        # For throughput a higher figure is faster: the ratio is always time over the first's time.
        ratios = [
            (first[figure] / medians[p][figure]) if unit.endswith("/s") else (medians[p][figure] / first[figure])
            for p in pythons[1:]
        ]
        print(f"{figure:<10} {unit:<8} {values}   " + " ".join(f"{ratio:.2f}x" for ratio in ratios))


if __name__ == "__main__":
    main()
