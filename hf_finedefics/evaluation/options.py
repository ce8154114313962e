"""Option files for a new dataset, made the way the shipped ones were (paper section 4.1; FOCI's option files, see data/mc_options/README.md).

Per image: the `num_options` classes whose CLIP text embedding ("an image of a {class}") is most similar
to the image's, with the true class swapped in for the least similar one when CLIP missed it. The shipped
files used OpenCLIP ViT-L-14 (laion2b_s32b_b82k); any transformers `CLIPModel` checkpoint works here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from transformers import CLIPModel, CLIPProcessor

from dataset_builders.images import open_rgb

from ..chat import display_class_name

CLIP_PROMPT = "an image of a {}"
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def scan_imagefolder(data_dir: str | os.PathLike, split: str = "test") -> list[tuple[str, str]]:
    """(path relative to `data_dir`, class) for every image of ``data_dir/split/<class>/``, sorted."""
    split_dir = Path(data_dir) / split
    if not split_dir.is_dir():
        raise FileNotFoundError(f"Expected an image folder with one sub-folder per class at {split_dir}.")
    return [
        (path.relative_to(data_dir).as_posix(), class_dir.name)
        for class_dir in sorted(split_dir.iterdir())
        if class_dir.is_dir()
        for path in sorted(class_dir.iterdir())
        if path.suffix.lower() in _IMAGE_SUFFIXES
    ]


@torch.inference_mode()
def build_option_file(
    images: list[tuple[str, str]],
    data_dir: str | os.PathLike,
    clip_model: str | os.PathLike,
    output_file: str | os.PathLike | None = None,
    *,
    class_names: list[str] | None = None,
    num_options: int = 4,
    batch_size: int = 32,
) -> dict[str, list[dict[str, Any]]]:
    """Choose `num_options` options per image with a CLIP model; return (and save to `output_file`) the
    option file ``{class: [{"image", "options", "groundtruth"}, ...]}``.

    `images` holds (path relative to `data_dir`, class) pairs; `class_names` (default: the classes of
    `images`) is the candidate set. Options are listed most similar first; evaluation shuffles them.
    """
    class_names = class_names or sorted({label for _, label in images})
    if len(set(class_names)) != len(class_names):  # a repeated name would be offered twice in one question
        raise ValueError(
            f"class_names repeats a class: {sorted(n for n in set(class_names) if class_names.count(n) > 1)}"
        )
    if unknown := {label for _, label in images} - set(class_names):
        raise ValueError(f"Images of classes outside `class_names`: {sorted(unknown)[:5]}")
    if len(class_names) < num_options:
        raise ValueError(f"{num_options} options need at least as many classes, got {len(class_names)}.")
    model = CLIPModel.from_pretrained(clip_model).eval()
    processor = CLIPProcessor.from_pretrained(clip_model)
    prompts = [CLIP_PROMPT.format(display_class_name(name)) for name in class_names]
    text_inputs = processor(text=prompts, padding=True, return_tensors="pt").to(model.device)
    # The projected embeddings are the pooler output of `get_*_features` (transformers >= 5).
    text_features = torch.nn.functional.normalize(model.get_text_features(**text_inputs).pooler_output, dim=-1)
    option_file: dict[str, list[dict[str, Any]]] = {name: [] for name in class_names}
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        batch_images = [open_rgb(Path(data_dir) / path) for path, _ in batch]
        pixels = processor(images=batch_images, return_tensors="pt").to(model.device)
        image_features = torch.nn.functional.normalize(model.get_image_features(**pixels).pooler_output, dim=-1)
        ranked = (image_features @ text_features.T).topk(num_options, dim=-1).indices.tolist()
        for (path, label), top in zip(batch, ranked):
            options = [class_names[index] for index in top]
            if label not in options:
                options[-1] = label
            option_file[label].append({"image": path, "options": options, "groundtruth": label})
    option_file = {name: entries for name, entries in option_file.items() if entries}
    if output_file is not None:
        Path(output_file).parent.mkdir(parents=True, exist_ok=True)
        Path(output_file).write_text(json.dumps(option_file, indent=1), encoding="utf-8")
    return option_file
