"""Hard-negative mining (paper section 3.2): for every image, the K most similar incorrect categories by CLIP.

Similarity is between an image's CLIP embedding and each category's text embedding ("an image of a
{category}", the prompt of the evaluation options), so the negatives are the categories CLIP confuses
the image with. Each negative category comes with one image of that category (its row index), whose
attribute description becomes an extra negative in stage I. Mining is vectorised and processes images
in chunks, so memory stays at O(chunk x classes) on top of the embeddings themselves.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import datasets
import numpy as np
import torch
from tqdm.auto import tqdm

from .images import to_rgb

logger = logging.getLogger(__name__)

NegativeStrategy = Literal["clip", "random"]
DEFAULT_CLASS_PROMPT = "an image of a {category}"


@dataclass
class HardNegatives:
    """Per image: `labels[i]` are the K negative categories, `indices[i]` one dataset row of each, and
    `scores[i]` their similarities (NaN for the random strategy)."""

    labels: np.ndarray
    indices: np.ndarray
    scores: np.ndarray
    strategy: str
    model_id: str | None = None


class ClipEncoder:
    """Image and text embeddings from a transformers `CLIPModel` or a sentence-transformers CLIP model.

    A local folder with `modules.json` (or `library="sentence-transformers"`) is loaded with
    sentence-transformers; anything else with transformers.
    """

    def __init__(
        self,
        model_id: str,
        library: Literal["auto", "transformers", "sentence-transformers"] = "auto",
        device: str | None = None,
        batch_size: int = 64,
    ):
        self.model_id = model_id
        self.batch_size = batch_size
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if library == "auto":
            library = "sentence-transformers" if (Path(model_id) / "modules.json").is_file() else "transformers"
        self.library = library
        if library == "sentence-transformers":
            from sentence_transformers import SentenceTransformer

            self.model = SentenceTransformer(model_id, device=self.device)
        else:
            from transformers import AutoProcessor, CLIPModel

            self.model = CLIPModel.from_pretrained(model_id).to(self.device).eval()
            self.processor = AutoProcessor.from_pretrained(model_id)

    @torch.inference_mode()
    def _transformers_features(self, inputs: list, kind: Literal["image", "text"]) -> np.ndarray:
        if kind == "image":
            batch = self.processor(images=[to_rgb(image) for image in inputs], return_tensors="pt")
            output = self.model.get_image_features(pixel_values=batch["pixel_values"].to(self.device))
        else:
            batch = self.processor(text=inputs, return_tensors="pt", padding=True, truncation=True)
            output = self.model.get_text_features(**{k: v.to(self.device) for k, v in batch.items()})
        # transformers 5 returns a model output whose pooler_output is the projected embedding.
        features = output if torch.is_tensor(output) else output.pooler_output
        return torch.nn.functional.normalize(features.float(), dim=-1).cpu().numpy()

    def _encode(self, inputs: list, kind: Literal["image", "text"], description: str) -> np.ndarray:
        chunks = []
        for start in tqdm(
            range(0, len(inputs), self.batch_size), desc=description, disable=len(inputs) <= self.batch_size
        ):
            batch = inputs[start : start + self.batch_size]
            if self.library == "sentence-transformers":
                chunks.append(self.model.encode(batch, normalize_embeddings=True, convert_to_numpy=True))
            else:
                chunks.append(self._transformers_features(batch, kind))
        return np.concatenate(chunks).astype(np.float32)

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, "text", "CLIP text embeddings")

    def encode_dataset_images(self, dataset: datasets.Dataset, image_column: str = "image") -> np.ndarray:
        """Embed every image of `dataset`, decoding one batch at a time."""
        chunks = []
        for start in tqdm(range(0, dataset.num_rows, self.batch_size), desc="CLIP image embeddings"):
            images = dataset[start : start + self.batch_size][image_column]
            chunks.append(self._encode(images, "image", "images"))
        return np.concatenate(chunks)


def mine_clip_negatives(
    image_embeddings: np.ndarray,
    class_embeddings: np.ndarray,
    labels: np.ndarray,
    k: int = 3,
    chunk_size: int = 8192,
    allowed_classes: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The `k` categories most similar to each image, excluding its own (and any class not in `allowed_classes`).

    Embeddings must be L2-normalised. Returns (negative labels, similarities), both of shape (N, k), most
    similar first. Works on `chunk_size` images at a time.
    """
    num_images, num_classes = image_embeddings.shape[0], class_embeddings.shape[0]
    allowed = np.ones(num_classes, dtype=bool) if allowed_classes is None else allowed_classes.astype(bool)
    if allowed.sum() - 1 < k:
        raise ValueError(
            f"Mining {k} negatives needs at least {k + 1} categories with images, got {int(allowed.sum())}."
        )
    if labels.shape != (num_images,):
        raise ValueError(f"labels has shape {labels.shape}, expected ({num_images},).")
    classes = torch.from_numpy(np.ascontiguousarray(class_embeddings, dtype=np.float32))
    disallowed = torch.from_numpy(~allowed)
    negative_labels = np.empty((num_images, k), dtype=np.int64)
    negative_scores = np.empty((num_images, k), dtype=np.float32)
    for start in range(0, num_images, chunk_size):
        stop = min(start + chunk_size, num_images)
        chunk = torch.from_numpy(np.ascontiguousarray(image_embeddings[start:stop], dtype=np.float32))
        similarity = chunk @ classes.T
        similarity[:, disallowed] = -torch.inf
        similarity[torch.arange(stop - start), torch.from_numpy(labels[start:stop]).long()] = -torch.inf
        scores, indices = similarity.topk(k, dim=1)
        negative_labels[start:stop] = indices.numpy()
        negative_scores[start:stop] = scores.numpy()
    return negative_labels, negative_scores


def random_negative_labels(
    labels: np.ndarray,
    num_classes: int,
    k: int = 3,
    seed: int = 0,
    allowed_classes: np.ndarray | None = None,
    chunk_size: int = 8192,
) -> np.ndarray:
    """`k` distinct random incorrect categories per image (the paper's simple-negative ablation)."""
    allowed = np.ones(num_classes, dtype=bool) if allowed_classes is None else allowed_classes.astype(bool)
    if allowed.sum() - 1 < k:
        raise ValueError(
            f"Sampling {k} negatives needs at least {k + 1} categories with images, got {int(allowed.sum())}."
        )
    generator = np.random.default_rng(seed)
    negative_labels = np.empty((labels.shape[0], k), dtype=np.int64)
    for start in range(0, labels.shape[0], chunk_size):
        stop = min(start + chunk_size, labels.shape[0])
        # Random keys, own class and absent classes pushed last: the k smallest keys are k distinct valid classes.
        keys = generator.random((stop - start, num_classes), dtype=np.float32)
        keys[:, ~allowed] = np.inf
        keys[np.arange(stop - start), labels[start:stop]] = np.inf
        negative_labels[start:stop] = np.argpartition(keys, k, axis=1)[:, :k]
    return negative_labels


def pick_negative_images(labels: np.ndarray, negative_labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """For each negative category, the row index of one (seeded random) image of that category."""
    order = np.argsort(labels, kind="stable")
    counts = np.bincount(labels, minlength=int(negative_labels.max()) + 1)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    if (counts[negative_labels] == 0).any():
        raise ValueError("A negative category has no image in the dataset.")
    offsets = np.floor(np.random.default_rng(seed).random(negative_labels.shape) * counts[negative_labels])
    return order[starts[negative_labels] + offsets.astype(np.int64)]


def mine_hard_negatives(
    dataset: datasets.Dataset,
    k: int = 3,
    strategy: NegativeStrategy = "clip",
    clip_model: str | ClipEncoder | None = None,
    class_prompt: str = DEFAULT_CLASS_PROMPT,
    seed: int = 0,
    chunk_size: int = 8192,
) -> HardNegatives:
    """Mine `k` negatives per row of a source dataset (columns `image`, `label` as ClassLabel).

    `strategy="clip"` needs `clip_model` (a model id / folder, or a ready `ClipEncoder`); `"random"` samples
    uniformly among incorrect categories.
    """
    labels = np.asarray(dataset["label"], dtype=np.int64)
    class_names = dataset.features["label"].names
    allowed = np.bincount(labels, minlength=len(class_names)) > 0
    if strategy == "random":
        negative_labels = random_negative_labels(labels, len(class_names), k, seed, allowed, chunk_size)
        scores = np.full(negative_labels.shape, np.nan, dtype=np.float32)
        model_id = None
    elif strategy == "clip":
        if clip_model is None:
            raise ValueError("strategy='clip' needs a CLIP model id (clip_model).")
        encoder = clip_model if isinstance(clip_model, ClipEncoder) else ClipEncoder(clip_model)
        model_id = encoder.model_id
        class_embeddings = encoder.encode_texts([class_prompt.format(category=name) for name in class_names])
        image_embeddings = encoder.encode_dataset_images(dataset)
        negative_labels, scores = mine_clip_negatives(
            image_embeddings, class_embeddings, labels, k, chunk_size, allowed
        )
    else:
        raise ValueError(f"Unknown negative strategy {strategy!r}; choose 'clip' or 'random'.")
    indices = pick_negative_images(labels, negative_labels, seed)
    return HardNegatives(negative_labels, indices, scores, strategy, model_id)
