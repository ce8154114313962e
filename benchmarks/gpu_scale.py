"""What a step costs at the real Idefics2-8B shape: stage I (plain and gradient-cached), stage II and evaluation.

The model is built from Idefics2-8B's published configuration (HuggingFaceM4/idefics2-8b `config.json`, written
out below: nothing is downloaded) with random weights, loaded as the recipes load it: QLoRA, 4-bit NF4 weights with
bfloat16 compute, the paper's LoRA (r=8, alpha=8, dropout 0.2 on the LLM and the connector), activation
checkpointing. Texts come from the project's synthetic stage I triples through a byte-level tokenizer built
in-process (the real one cannot be downloaded), images are resized to `--image-size` without splitting (the paper's
64 visual tokens per image).

    python benchmarks/gpu_scale.py                                  # the 8B shape, on a GPU
    python benchmarks/gpu_scale.py --scale 0.01 --image-size 28     # a scaled-down shape that runs on CPU

Prints, for stage I at batches 2 and 8 (plain) and 64 and 256 (gradient caching, `--mini-batch-size`), and for a
stage II step at batch 4 (multiple-choice instruction + answer, loss on everything): ms per optimizer step, rows/s
and peak memory (GPU: `torch.cuda.max_memory_allocated`; CPU: peak resident memory); then likelihood-scored
evaluation items/s. `--scale` multiplies widths, depths and head counts (never below 1), keeping the vocabulary.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor, Idefics2Config, Idefics2Processor

from hf_finedefics.backbones import get_backbone
from hf_finedefics.collators import ContrastiveAlignmentCollator
from hf_finedefics.evaluation import LikelihoodScorer, load_mc_items, score_items
from hf_finedefics.losses import AttributeAugmentedContrastiveLoss
from hf_finedefics.modeling import quantization_config
from hf_finedefics.objectives import ContrastiveAlignmentModel, cached_stage1_objective, stage1_objective
from hf_finedefics.testing import create_tiny_checkpoint
from hf_finedefics.world.tokenization import IDEFICS2_CHAT_TEMPLATE

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the tests package: its fixtures data

# HuggingFaceM4/idefics2-8b config.json: Mistral-7B text model, SigLIP-so400m vision encoder, perceiver resampler.
IDEFICS2_8B = {
    "text": {
        "model_type": "mistral",
        "vocab_size": 32003,
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "max_position_embeddings": 32768,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "sliding_window": 4096,
        "hidden_act": "silu",
    },
    "vision": {
        "hidden_size": 1152,
        "intermediate_size": 4304,
        "num_hidden_layers": 27,
        "num_attention_heads": 16,
        "patch_size": 14,
        "image_size": 980,
    },
    "perceiver": {
        "hidden_act": "silu",
        "resampler_n_latents": 64,
        "resampler_depth": 3,
        "resampler_n_heads": 16,
        "resampler_head_dim": 96,
        "num_key_value_heads": 4,
    },
}
# The paper feeds whole images (no splitting); the Idefics2 processor's shortest edge is 378 = 27 patches of 14.
IMAGE_SIZE = 378


def _scaled(value: int, scale: float) -> int:
    return max(1, round(value * scale))


def _width(value: int, scale: float, multiple: int = 64) -> int:
    """A width times `scale`, in whole multiples of `multiple` (bitsandbytes' CPU 4-bit kernels need them)."""
    return value if scale == 1 else max(1, round(value * scale / multiple)) * multiple


def idefics2_config(scale: float, image_size: int, tokenizer, image_token_id: int) -> Idefics2Config:
    """Idefics2-8B's configuration with widths, depths and head counts multiplied by `scale`."""
    text, vision, perceiver = (dict(IDEFICS2_8B[part]) for part in ("text", "vision", "perceiver"))
    text_heads, vision_heads = (
        _scaled(text["num_attention_heads"], scale),
        _scaled(vision["num_attention_heads"], scale),
    )
    text.update(
        num_attention_heads=text_heads,
        num_key_value_heads=min(text_heads, _scaled(text["num_key_value_heads"], scale)),
        hidden_size=_width(text["hidden_size"], scale, 64 * text_heads),
        intermediate_size=_width(text["intermediate_size"], scale),
        num_hidden_layers=_scaled(text["num_hidden_layers"], scale),
        vocab_size=max(text["vocab_size"], len(tokenizer)),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    vision.update(
        num_attention_heads=vision_heads,
        hidden_size=_width(vision["hidden_size"], scale, 64 * vision_heads),
        intermediate_size=_width(vision["intermediate_size"], scale),
        num_hidden_layers=_scaled(vision["num_hidden_layers"], scale),
        image_size=max(vision["image_size"], image_size),
    )
    perceiver_heads = _scaled(perceiver["resampler_n_heads"], scale)
    perceiver.update(
        hidden_size=text["hidden_size"],
        resampler_n_heads=perceiver_heads,
        resampler_head_dim=_width(perceiver["resampler_head_dim"], scale),
        num_key_value_heads=min(perceiver_heads, _scaled(perceiver["num_key_value_heads"], scale)),
        resampler_depth=_scaled(perceiver["resampler_depth"], scale),
        resampler_n_latents=_scaled(perceiver["resampler_n_latents"], scale),
    )
    return Idefics2Config(
        text_config=text,
        vision_config=vision,
        perceiver_config=perceiver,
        image_token_id=image_token_id,
        tie_word_embeddings=False,
    )


def build(scale: float, image_size: int, work_dir: Path, device: torch.device):
    """The QLoRA model with the paper's LoRA, its processor, and the base model folder (random weights)."""
    from peft import get_peft_model, prepare_model_for_kbit_training

    # The tokenizer and processor classes of the tiny Idefics2 checkpoint, re-made for this shape.
    tiny = AutoProcessor.from_pretrained(create_tiny_checkpoint("idefics2"))
    image_processor = tiny.image_processor
    image_processor.size = {"shortest_edge": image_size, "longest_edge": image_size}
    image_processor.do_image_splitting = False
    n_latents = _scaled(IDEFICS2_8B["perceiver"]["resampler_n_latents"], scale)
    processor = Idefics2Processor(
        image_processor, tiny.tokenizer, image_seq_len=n_latents, chat_template=IDEFICS2_CHAT_TEMPLATE
    )
    config = idefics2_config(scale, image_size, processor.tokenizer, processor.image_token_id)
    base_dir = work_dir / "base"
    # Random bfloat16 weights written once, then loaded 4-bit the way `FinedeficsModelConfig.load` does.
    with device:
        model = AutoModelForImageTextToText.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(base_dir)
    processor.save_pretrained(base_dir)
    del model
    model = AutoModelForImageTextToText.from_pretrained(
        base_dir,
        quantization_config=quantization_config("4bit", torch.bfloat16),
        dtype=torch.bfloat16,
        device_map={"": device},
    )
    model = prepare_model_for_kbit_training(
        model, use_gradient_checkpointing=True, gradient_checkpointing_kwargs={"use_reentrant": False}
    )
    model = get_peft_model(model, get_backbone(model).lora_config())
    get_backbone(model).model.enable_input_require_grads()
    return model, processor


class Meter:
    """Median step time and peak memory of a block of work on `device`."""

    def __init__(self, device: torch.device):
        self.device = device

    def run(self, step: Callable[[], None], steps: int) -> tuple[float, float]:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        timings = []
        for index in range(steps + 1):
            start = time.perf_counter()
            step()
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            if index:  # the first step warms up
                timings.append(time.perf_counter() - start)
        if self.device.type == "cuda":
            peak = torch.cuda.max_memory_allocated() / 2**30
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        return statistics.median(timings), peak


def stage1_batches(processor, eos_token_id: int, sizes: list[int], device: torch.device) -> dict[int, dict]:
    from tests.conftest import synthetic_triples

    rows = synthetic_triples(num_categories=16, train_per_category=max(sizes) // 16 + 1)
    collator = ContrastiveAlignmentCollator(processor, eos_token_id)
    return {size: {k: v.to(device) for k, v in collator([rows[i] for i in range(size)]).items()} for size in sizes}


def stage2_batch(processor, batch_size: int, device: torch.device) -> dict:
    """Multiple-choice instruction + answer rows, labels on every real token."""
    question = (
        "Which of these birds is shown in the image?\nChoices:\nA. Laysan Albatross\nB. Sooty Albatross\n"
        "C. Black-footed Albatross\nD. Crested Auklet\nAnswer with the letter from the given choices directly."
    )
    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]},
        {"role": "assistant", "content": [{"type": "text", "text": "C"}]},
    ]
    text = processor.apply_chat_template(messages, tokenize=False)
    images = [[Image.new("RGB", (64, 64), (40 * i % 256, 90, 160))] for i in range(batch_size)]
    batch = processor(text=[text] * batch_size, images=images, padding=True, return_tensors="pt")
    batch["labels"] = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    return {k: v.to(device) for k, v in batch.items()}


def evaluation_items(root: Path, num_items: int):
    classes = ["Laysan Albatross", "Sooty Albatross", "Black-footed Albatross", "Crested Auklet", "Least Auklet"]
    option_file: dict[str, list[dict]] = {name: [] for name in classes}
    for index in range(num_items):
        label = classes[index % len(classes)]
        relative = f"test/{label}/{index}.png"
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (64, 48), (index * 37 % 256, 120, 60)).save(root / relative)
        options = [label, *[name for name in classes if name != label][:3]]
        option_file[label].append({"image": relative, "options": options, "groundtruth": label})
    (root / "options.json").write_text(json.dumps(option_file))
    return load_mc_items("imagefolder", root, root / "options.json")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="Multiply widths, depths and heads (1: the 8B).")
    parser.add_argument("--image-size", type=int, default=IMAGE_SIZE)
    parser.add_argument("--plain-batches", type=int, nargs="+", default=[2, 8])
    parser.add_argument("--cached-batches", type=int, nargs="+", default=[64, 256])
    parser.add_argument(
        "--mini-batch-size", type=int, default=8, help="contrastive_mini_batch_size of the cached runs"
    )
    parser.add_argument("--stage2-batch", type=int, default=4)
    parser.add_argument("--eval-items", type=int, default=64)
    parser.add_argument("--eval-batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=3, help="Measured steps per setting, after one warm-up step.")
    parser.add_argument("--work-dir", type=Path, help="Where the random base is written (default: a temp folder).")
    args = parser.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    memory_unit = "GiB allocated" if device.type == "cuda" else "GiB peak RSS"
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as temporary:
        work_dir = args.work_dir or Path(temporary)
        start = time.perf_counter()
        model, processor = build(args.scale, args.image_size, work_dir, device)
        parameters = sum(p.numel() for p in model.parameters())
        print(
            f"device={torch.cuda.get_device_name() if device.type == 'cuda' else 'cpu'} scale={args.scale} "
            f"image={args.image_size}px parameters={parameters / 1e9:.3f}B (4-bit counted packed) "
            f"built in {time.perf_counter() - start:.0f}s"
        )
        meter = Meter(device)
        backbone = get_backbone(model)
        wrapped, loss_fn = ContrastiveAlignmentModel(model), AttributeAugmentedContrastiveLoss()
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
        model.train()

        def optimizer_step() -> None:
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        batches = stage1_batches(processor, backbone.eos_token_id, args.plain_batches + args.cached_batches, device)
        settings = [(size, None) for size in args.plain_batches]
        settings += [(size, args.mini_batch_size) for size in args.cached_batches]
        for size, mini_batch_size in settings:
            batch = batches[size]

            def stage1_step(batch=batch, mini_batch_size=mini_batch_size) -> None:
                with torch.autocast(device.type, dtype=torch.bfloat16):
                    if mini_batch_size is None:
                        loss, _, _ = stage1_objective(wrapped, batch, loss_fn)
                        loss.backward()
                    else:
                        cached_stage1_objective(
                            wrapped, batch, loss_fn, mini_batch_size, backward=torch.Tensor.backward
                        )
                optimizer_step()

            seconds, peak = meter.run(stage1_step, args.steps)
            label = "plain" if mini_batch_size is None else f"cached (mini-batch {mini_batch_size})"
            print(
                f"stage I  batch {size:>4} {label:<22} {seconds * 1000:>10.1f} ms/step {size / seconds:>8.2f} rows/s"
                f"  peak {peak:6.2f} {memory_unit}"
            )

        sft_batch = stage2_batch(processor, args.stage2_batch, device)

        def stage2_step() -> None:
            with torch.autocast(device.type, dtype=torch.bfloat16):
                model(**sft_batch, use_cache=False).loss.backward()
            optimizer_step()

        seconds, peak = meter.run(stage2_step, args.steps)
        print(
            f"stage II batch {args.stage2_batch:>4} {'':<22} {seconds * 1000:>10.1f} ms/step "
            f"{args.stage2_batch / seconds:>8.2f} rows/s  peak {peak:6.2f} {memory_unit}"
        )

        model.eval()
        items = evaluation_items(work_dir / "eval", args.eval_items)
        scorer = LikelihoodScorer(model, processor)
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16):
            score_items(scorer, items, work_dir / "eval.jsonl", superclass="bird", batch_size=args.eval_batch)
        seconds = time.perf_counter() - start
        print(f"evaluation (likelihood scorer, batch {args.eval_batch}): {len(items) / seconds:.2f} items/s")


if __name__ == "__main__":
    main()
