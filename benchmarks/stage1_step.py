"""Cost of one stage I step relative to the plain model's forward + backward over the same inputs.

The baseline runs the unmodified VLM as a user would: one forward with labels over the generation batch
(image + instruction + attribute description) and one causal-LM forward with labels over the step's texts
(attributes, categories, hard negatives), then backward. The stage I step does the same work plus the object
embedding (visual tokens + EOS through the LLM) and the contrastive losses, reusing the vision encoder's output.

    python benchmarks/stage1_step.py --architecture idefics2 --batch-size 16 --steps 20

Prints median step times, their ratio (target < 1.2) and the peak resident memory of each mode, each measured in
a fresh process.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


def _measure(mode: str, architecture: str, batch_size: int, steps: int, queue) -> None:
    from conftest import synthetic_triples
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from hf_finedefics.backbones import get_backbone
    from hf_finedefics.collators import ContrastiveAlignmentCollator
    from hf_finedefics.losses import AttributeAugmentedContrastiveLoss
    from hf_finedefics.objectives import ContrastiveAlignmentModel, stage1_objective
    from hf_finedefics.testing import create_tiny_checkpoint

    torch.manual_seed(0)
    checkpoint = create_tiny_checkpoint(architecture)
    model = AutoModelForImageTextToText.from_pretrained(checkpoint)
    processor = AutoProcessor.from_pretrained(checkpoint)
    backbone = get_backbone(model)
    rows = synthetic_triples(num_categories=16, train_per_category=batch_size // 16 + 1).select(range(batch_size))
    batch = ContrastiveAlignmentCollator(processor, backbone.eos_token_id)([rows[i] for i in range(batch_size)])
    wrapped, loss_fn = ContrastiveAlignmentModel(model), AttributeAugmentedContrastiveLoss()

    def stage1_step() -> None:
        loss, _, _ = stage1_objective(wrapped, batch, loss_fn)
        loss.backward()

    image_inputs = {k: v for k, v in batch.items() if k.startswith("pixel") or k == "image_sizes"}
    text_labels = batch["text_input_ids"].masked_fill(batch["text_attention_mask"] == 0, -100)

    def plain_step() -> None:
        generation = model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            labels=batch["generation_labels"],
            **image_inputs,
        )
        texts = model(
            input_ids=batch["text_input_ids"], attention_mask=batch["text_attention_mask"], labels=text_labels
        )
        (generation.loss + texts.loss).backward()

    step = stage1_step if mode == "stage1" else plain_step
    timings = []
    for index in range(steps + 3):
        model.zero_grad(set_to_none=True)
        start = time.perf_counter()
        step()
        if index >= 3:  # warm-up
            timings.append(time.perf_counter() - start)
    queue.put((statistics.median(timings), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def measure(mode: str, architecture: str, batch_size: int, steps: int) -> tuple[float, float]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_measure, args=(mode, architecture, batch_size, steps, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--architecture", choices=["idefics2", "llava"], default="idefics2")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    plain_time, plain_memory = measure("plain", args.architecture, args.batch_size, args.steps)
    stage1_time, stage1_memory = measure("stage1", args.architecture, args.batch_size, args.steps)
    print(
        f"architecture={args.architecture} batch={args.batch_size} steps={args.steps} threads={torch.get_num_threads()}"
    )
    print(f"plain forward+backward : {plain_time * 1000:8.1f} ms/step   peak RSS {plain_memory:7.1f} MiB")
    print(f"stage I step           : {stage1_time * 1000:8.1f} ms/step   peak RSS {stage1_memory:7.1f} MiB")
    print(f"ratio stage I / plain  : {stage1_time / plain_time:8.2f}   (target < 1.2)")


if __name__ == "__main__":
    main()
