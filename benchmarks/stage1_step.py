"""Cost of one stage I step relative to the plain model's forward + backward over the same inputs.

The baseline runs the unmodified VLM as a user would: one forward with labels over the generation batch
(image + instruction + attribute description) and one causal-LM forward with labels over the step's texts
(attributes, categories, hard negatives), then backward. The stage I step does the same work plus the object
embedding (visual tokens + EOS through the LLM) and the contrastive losses, reusing the vision encoder's output.

    python benchmarks/stage1_step.py --architecture idefics2 --batch-size 16 --steps 20

Prints median step times, their ratio (target < 1.2) and the peak resident memory of each mode, each measured in
a fresh process.

`--sweep` compares the plain stage I step with gradient caching (`contrastive_mini_batch_size`) over contrastive
batch sizes: time per row and the step's peak memory (peak resident memory minus the resident memory before the
first step, i.e. what the step itself adds on top of the loaded model):

    python benchmarks/stage1_step.py --sweep 16 64 256 --mini-batch-size 16 --steps 3

Targets: with caching, peak step memory at batch 256 within 1.3x of batch 16, and time per row within 1.3x of the
plain step at the same batch.
"""

from __future__ import annotations

import argparse
import multiprocessing
import queue as queue_module
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the tests package: its fixtures data


def _resident_mib() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024


def _measure(
    mode: str, architecture: str, batch_size: int, steps: int, queue, mini_batch_size: int = 0, threads: int = 0
) -> None:
    if threads:
        torch.set_num_threads(threads)
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from hf_finedefics.backbones import get_backbone
    from hf_finedefics.collators import ContrastiveAlignmentCollator
    from hf_finedefics.losses import AttributeAugmentedContrastiveLoss
    from hf_finedefics.objectives import ContrastiveAlignmentModel, cached_stage1_objective, stage1_objective
    from hf_finedefics.testing import create_tiny_checkpoint
    from tests.conftest import synthetic_triples

    torch.manual_seed(0)
    checkpoint = create_tiny_checkpoint(architecture)
    model = AutoModelForImageTextToText.from_pretrained(checkpoint)
    # Stage I embeds each object as one whole image, as the recipes load Idefics2 (no crops).
    processor = AutoProcessor.from_pretrained(
        checkpoint, **({"do_image_splitting": False} if architecture == "idefics2" else {})
    )
    backbone = get_backbone(model)
    rows = synthetic_triples(num_categories=16, train_per_category=batch_size // 16 + 1).select(range(batch_size))
    batch = ContrastiveAlignmentCollator(processor, backbone.eos_token_id)([rows[i] for i in range(batch_size)])
    wrapped, loss_fn = ContrastiveAlignmentModel(model), AttributeAugmentedContrastiveLoss()

    def stage1_step() -> None:
        loss, _, _ = stage1_objective(wrapped, batch, loss_fn)
        loss.backward()

    def cached_step() -> None:
        cached_stage1_objective(wrapped, batch, loss_fn, mini_batch_size, backward=torch.Tensor.backward)

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

    step = {"stage1": stage1_step, "cached": cached_step, "plain": plain_step}[mode]
    resident_before = _resident_mib()
    timings, cpu_timings = [], []
    for index in range(steps + 3):
        model.zero_grad(set_to_none=True)
        start, cpu_start = time.perf_counter(), time.process_time()
        step()
        if index >= 3:  # warm-up
            timings.append(time.perf_counter() - start)
            cpu_timings.append(time.process_time() - cpu_start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put((statistics.median(timings), peak, peak - resident_before, statistics.median(cpu_timings)))


def measure(
    mode: str, architecture: str, batch_size: int, steps: int, mini_batch_size: int = 0, threads: int = 0
) -> tuple[float, float, float, float]:
    """(median wall seconds per step, peak resident MiB, peak MiB added by the steps, median CPU seconds per step),
    in a fresh process."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(
        target=_measure, args=(mode, architecture, batch_size, steps, queue, mini_batch_size, threads)
    )
    process.start()
    while True:  # a process that dies before reporting would leave a plain get() waiting forever
        try:
            result = queue.get(timeout=5)
            break
        except queue_module.Empty:
            if not process.is_alive():
                raise RuntimeError(
                    f"The measuring process exited with code {process.exitcode} before reporting (traceback above)."
                ) from None
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--architecture", choices=["idefics2", "llava"], default="idefics2")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--sweep", type=int, nargs="+", help="Contrastive batch sizes: plain vs gradient caching.")
    parser.add_argument("--mini-batch-size", type=int, default=16, help="contrastive_mini_batch_size of --sweep.")
    parser.add_argument("--threads", type=int, default=0, help="torch threads per process (0: torch's default).")
    args = parser.parse_args()
    if args.sweep:
        sweep(args)
        return
    plain_time, plain_memory, *_ = measure("plain", args.architecture, args.batch_size, args.steps, 0, args.threads)
    stage1_time, stage1_memory, *_ = measure("stage1", args.architecture, args.batch_size, args.steps, 0, args.threads)
    print(
        f"architecture={args.architecture} batch={args.batch_size} steps={args.steps} threads={torch.get_num_threads()}"
    )
    print(f"plain forward+backward : {plain_time * 1000:8.1f} ms/step   peak RSS {plain_memory:7.1f} MiB")
    print(f"stage I step           : {stage1_time * 1000:8.1f} ms/step   peak RSS {stage1_memory:7.1f} MiB")
    print(f"ratio stage I / plain  : {stage1_time / plain_time:8.2f}   (target < 1.2)")


def sweep(args: argparse.Namespace) -> None:
    print(
        f"architecture={args.architecture} mini_batch={args.mini_batch_size} steps={args.steps} "
        f"threads={args.threads or torch.get_num_threads()}"
    )
    # CPU time is what the comparison uses: on a shared machine wall time mostly measures the neighbours.
    print(f"{'batch':>6} {'mode':>7} {'wall ms':>9} {'CPU ms':>9} {'CPU ms/row':>11} {'step MiB':>9} {'peak RSS':>9}")
    results = {}
    for batch_size in args.sweep:
        for mode in ("stage1", "cached"):
            wall, peak, added, cpu = measure(
                mode, args.architecture, batch_size, args.steps, args.mini_batch_size, args.threads
            )
            results[batch_size, mode] = (cpu / batch_size, added)
            name = "plain" if mode == "stage1" else "cached"
            print(
                f"{batch_size:>6} {name:>7} {wall * 1000:>9.1f} {cpu * 1000:>9.1f} {cpu * 1000 / batch_size:>11.2f} "
                f"{added:>9.1f} {peak:>9.1f}"
            )
    smallest, largest = min(args.sweep), max(args.sweep)
    print(
        f"cached step memory, batch {largest} / batch {smallest}: "
        f"{results[largest, 'cached'][1] / results[smallest, 'cached'][1]:.2f}   (target <= 1.3)"
    )
    for batch_size in args.sweep:
        ratio = results[batch_size, "cached"][0] / results[batch_size, "stage1"][0]
        print(f"cached / plain CPU time per row at batch {batch_size}: {ratio:.2f}   (target <= 1.3)")


if __name__ == "__main__":
    main()
