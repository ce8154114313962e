"""Finedefics demo: fine-grained recognition of one image against a set of candidate categories.

For an uploaded image and a category set (one of the six FGVR benchmarks, the embedded default's invented
critters, or a typed list) the page shows:

- the top-k categories by embedding similarity: cosine similarity between the object's representation and each
  category name's representation in the LLM (the space stage I aligns, paper section 3.2);
- the category the model picks when asked the paper's 4-way multiple-choice question, whose options are the
  four most similar categories (as the paper's benchmark takes CLIP's four most similar);
- the model's own description of the object's distinguishing attributes.

The model comes from ``$FINEDEFICS_MODEL`` (Hub id or folder; a full checkpoint or an adapter) and optional
``$FINEDEFICS_ADAPTER``, or ``finedefics demo --model_name_or_path ... --adapter ...``. With neither, the
Finedefics model of the default run in ``./finedefics-default`` (what ``finedefics run`` writes) when it is
finished, else the embedded default: built by the ``finedefics run`` pipeline if missing (a few minutes on CPU).
Launched (``launch_demo``, the Space), the model is loaded, and the default built, at start-up, before serving: no
visitor waits for it. The log says which one is used.

Run: ``python spaces_app/app.py`` (honours GRADIO_SERVER_NAME / GRADIO_SERVER_PORT) or ``finedefics demo``.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd
from PIL import Image, ImageOps

from dataset_builders.images import to_rgb
from dataset_builders.prompts import OPTION_LETTERS
from dataset_builders.registry import DEFAULT_MAX_IMAGE_PIXELS, FGVR_BENCHMARKS
from dataset_builders.sources.synthetic import SyntheticFGVRConfig, generate_synthetic_fgvr, synthetic_categories
from hf_finedefics.chat import display_class_name
from hf_finedefics.evaluation import DATASETS, shipped_option_file
from hf_finedefics.evaluation.parsing import normalize_name
from hf_finedefics.modeling import load_finedefics_model
from hf_finedefics.recognizer import FinedeficsRecognizer, Recognition
from hf_finedefics.run.config import DEFAULT_OUTPUT_DIR
from hf_finedefics.run.default_model import default_run_dir, default_run_model, ensure_default_model
from hf_finedefics.run.steps import Progress

logger = logging.getLogger(__name__)

# Input limits: an image beyond them costs seconds of decoding and resizing for no better answer, and every
# candidate category is one text forward pass the first time its set is used.
MAX_IMAGE_PIXELS = DEFAULT_MAX_IMAGE_PIXELS
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_CANDIDATES = 1000
MAX_CATEGORY_CHARS = 100
DEFAULT_TOP_K = 5
MAX_TOP_K = 20
DESCRIPTION_MAX_NEW_TOKENS = 96
MAX_REPLY_SHOWN = 200
# Requests handled at once (reading the upload while the other's model calls run: the recognizer lets one call
# at a time use the model), and waiting at most; beyond that the page says the queue is full.
CONCURRENCY_LIMIT = 2
QUEUE_MAX_SIZE = 32
EMBEDDING_CACHE_SETS = 16

TYPED_SET = "typed"
EMBEDDED_SET = "embedded-default"
# The six benchmarks of the paper's Table 2, in its column order.
EXAMPLE_CATEGORIES = 3
GENERIC_SUPERCLASS = "object"
# Show small images (the critters are 32x32) enlarged with crisp pixels; the model still gets the original.
APP_CSS = "#image img { width: 100%; height: 100%; object-fit: contain; image-rendering: pixelated; }"

NOT_AN_IMAGE = "This file is not an image that can be read (use PNG, JPEG, WebP, GIF or BMP)."


@dataclass(frozen=True)
class CategorySet:
    """Candidate categories as the model reads them (underscores as spaces), with the question's noun."""

    title: str
    superclass: str | None
    categories: tuple[str, ...]


@functools.cache
def category_sets() -> dict[str, CategorySet]:
    """The embedded default's critters and the class names of the six benchmarks' shipped option files."""
    embedded = SyntheticFGVRConfig()
    sets = {
        EMBEDDED_SET: CategorySet(
            "Embedded default: invented critters",
            embedded.superclass,
            tuple(category.name for category in synthetic_categories(embedded)),
        )
    }
    for name in FGVR_BENCHMARKS:
        spec = DATASETS[name]
        class_names = json.loads(shipped_option_file(name).read_text())  # {class name: items}
        sets[name] = CategorySet(
            spec.display_name, spec.superclass, tuple(display_class_name(class_name) for class_name in class_names)
        )
    return sets


def category_set_choices() -> list[tuple[str, str]]:
    choices = [(f"{s.title} ({len(s.categories)} categories)", key) for key, s in category_sets().items()]
    return [*choices, ("Typed list (below)", TYPED_SET)]


def parse_typed_categories(text: str) -> tuple[list[str], list[str]]:
    """Comma- or newline-separated names -> (unique names in order, duplicates dropped).

    Names are compared as the evaluation compares them (case, underscores and spacing ignored)."""
    unique: dict[str, str] = {}
    duplicates = []
    for raw in re.split(r"[,\n]", text):
        name = display_class_name(raw)
        if not name:
            continue
        key = normalize_name(name)
        if key in unique:
            duplicates.append(name)
        else:
            unique[key] = name
    return list(unique.values()), duplicates


def rejected(message: str) -> gr.Error:
    """A request refused for its input: the page shows `message`, the log gets one line (no traceback: nothing
    failed)."""
    logger.warning("Rejected a request: %s", message)
    return gr.Error(message, print_exception=False)


def resolve_candidates(category_set: str, typed_text: str, typed_superclass: str) -> tuple[CategorySet, list[str]]:
    """The candidate set to rank, and notes for the page; bad candidate lists raise `gr.Error`."""
    if category_set != TYPED_SET:
        if category_set not in category_sets():
            raise rejected(f"Unknown category set {category_set!r}; pick one from the list.")
        return category_sets()[category_set], []
    categories, duplicates = parse_typed_categories(typed_text or "")
    if len(categories) < 2:
        raise rejected(
            "Type at least two candidate categories, separated by commas or new lines "
            f"(got {len(categories)}), or pick a dataset's category set."
        )
    if len(categories) > MAX_CANDIDATES:
        raise rejected(
            f"{len(categories)} candidate categories is too many for this demo: type at most {MAX_CANDIDATES}, "
            "or pick a dataset's category set."
        )
    too_long = [name for name in categories if len(name) > MAX_CATEGORY_CHARS]
    if too_long:
        raise rejected(f"Category names are limited to {MAX_CATEGORY_CHARS} characters: {too_long[0][:40]!r}...")
    notes = []
    if duplicates:
        notes.append(
            f"Ignored {len(duplicates)} duplicate categor{'y' if len(duplicates) == 1 else 'ies'}: "
            + ", ".join(duplicates[:10])
            + (" ..." if len(duplicates) > 10 else "")
        )
    superclass = display_class_name(typed_superclass or "") or None
    return CategorySet("Typed list", superclass, tuple(categories)), notes


def open_image(upload: dict[str, Any] | None) -> Image.Image:
    """The uploaded file (gr.Image's raw payload, already in Gradio's cache) as an RGB image, or `gr.Error`
    saying why it cannot be used. Files over MAX_UPLOAD_BYTES never get here: `launch_demo` has Gradio refuse them."""
    if not upload or not upload.get("path"):
        raise rejected("Upload an image (or pick an example) first.")
    try:
        with Image.open(upload["path"]) as image:
            # The header gives the size: refuse huge images before decoding their pixels.
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise rejected(
                    f"The image is {image.width}x{image.height} pixels "
                    f"({image.width * image.height / 1e6:.0f} MP); the demo takes at most "
                    f"{MAX_IMAGE_PIXELS / 1e6:.0f} MP. Downscale it first."
                )
            return to_rgb(ImageOps.exif_transpose(image))
    except (OSError, SyntaxError, Image.DecompressionBombError) as error:
        # Not an image: UnidentifiedImageError (an OSError); truncated or corrupt: OSError or SyntaxError.
        raise rejected(NOT_AN_IMAGE) from error


class DemoModel:
    """The demo's model, loaded once on first use (a `FinedeficsRecognizer`).

    Args:
        model: Hub id or folder of a full checkpoint or of an adapter; None with `adapter` None means the Finedefics
            model of a finished default run in ./finedefics-default, else the embedded default, built by the
            `finedefics run` pipeline if missing.
        adapter: Hub id or folder of a LoRA adapter to put on `model`.
        processor_kwargs: `AutoProcessor.from_pretrained` arguments, e.g. {"do_image_splitting": False} for an
            Idefics2 base whose processor splits images (an adapter folder's own processor is used when it has one).
    """

    def __init__(self, model: str | None = None, adapter: str | None = None, processor_kwargs: dict | None = None):
        if model is None and adapter is None:
            if (run_model := default_run_model()) is not None:
                model = str(run_model)
                logger.info("No model given: using %s, the Finedefics model of the default run here.", model)
            else:
                logger.info(
                    "No model given and no finished default run in ./%s: using the embedded default model, built "
                    "into %s if missing (minutes on CPU). Pass --model_name_or_path to use another.",
                    DEFAULT_OUTPUT_DIR,
                    default_run_dir(),
                )
        self.model_id = model
        self.adapter = adapter
        self.processor_kwargs = processor_kwargs or {}
        self._lock = threading.Lock()
        self._recognizer: FinedeficsRecognizer | None = None

    @property
    def source(self) -> str:
        if self.model_id is None and self.adapter is None:
            return "the embedded default (built by `finedefics run` on first use)"
        source = f"`{self.model_id or self.adapter}`"
        return source + (f" + adapter `{self.adapter}`" if self.model_id and self.adapter else "")

    @property
    def is_loaded(self) -> bool:
        return self._recognizer is not None

    def load(self, progress: Progress | None = None) -> FinedeficsRecognizer:
        """The recognizer, loading the model (and building the embedded default) on the first call."""
        with self._lock:  # concurrent first requests wait for one load instead of starting their own
            if self._recognizer is None:
                model_id, adapter = self.model_id, self.adapter
                if model_id is None and adapter is None:
                    model_id = str(ensure_default_model(progress=progress))
                elif model_id is None:
                    model_id, adapter = adapter, None  # an adapter alone loads on its recorded base model
                if progress is not None:
                    progress(1.0, "Loading the model")
                model, processor = load_finedefics_model(model_id, adapter, processor_kwargs=self.processor_kwargs)
                self._recognizer = FinedeficsRecognizer(
                    model, processor, DESCRIPTION_MAX_NEW_TOKENS, cache_sets=EMBEDDING_CACHE_SETS
                )
            return self._recognizer

    @property
    def category_embeddings(self):
        return self.load().category_embeddings

    def recognize(self, image: Image.Image, candidates: CategorySet, top_k: int) -> Recognition:
        return self.load().recognize(image, candidates.categories, candidates.superclass, top_k)


def similarity_frame(top_k: list[tuple[str, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        {"category": [name for name, _ in top_k], "similarity": [round(score, 4) for _, score in top_k]}
    )


def explain(recognition: Recognition) -> str:
    options = "  \n".join(f"{letter}. {name}" for letter, name in zip(OPTION_LETTERS, recognition.options))
    # Shown as inline code: drop what would break it (backticks, control characters) and keep it short.
    reply = "".join(ch for ch in recognition.reply if ch.isprintable()).replace("`", "'")
    reply = (reply[:MAX_REPLY_SHOWN] + " ...") if len(reply) > MAX_REPLY_SHOWN else reply or "(empty)"
    if recognition.answered_by == "generation":
        how = f"The model answered `{reply}`."
    else:
        how = (
            f"The model's reply `{reply}` names none of the options, so the prediction is the option whose "
            "letter the model finds most likely next."
        )
    return f"**Options** (the {len(recognition.options)} most similar categories):  \n{options}\n\n{how}"


def write_examples(directory: Path) -> list[Path]:
    """Test images of the first few embedded-default categories as PNG files (regenerated, never committed)."""
    directory.mkdir(parents=True, exist_ok=True)
    test_split = generate_synthetic_fgvr(train_per_category=1, test_per_category=1)["test"]
    paths = []
    for row in test_split.select(range(EXAMPLE_CATEGORIES)):
        path = directory / f"{row['category']}.png"
        row["image"].save(path)
        paths.append(path)
    return paths


def _log_progress(fraction: float, message: str) -> None:
    logger.info("%3.0f%% %s", 100 * fraction, message)


def build_demo(
    model: str | None = None,
    adapter: str | None = None,
    processor_kwargs: dict | None = None,
    *,
    load_now: bool = False,
) -> gr.Blocks:
    """The demo page, queued. `model` / `adapter` default to $FINEDEFICS_MODEL / $FINEDEFICS_ADAPTER. With
    `load_now` the model is loaded (the embedded default built if missing) here, before the page exists, instead of
    when the first visitor opens it."""
    demo_model = DemoModel(
        model or os.environ.get("FINEDEFICS_MODEL"), adapter or os.environ.get("FINEDEFICS_ADAPTER"), processor_kwargs
    )
    if load_now:
        demo_model.load(progress=_log_progress)

    def model_status(progress: gr.Progress = gr.Progress()) -> str:  # noqa: B008 (gradio injects its tracker here)
        """Load the model when the page opens, so a build of the embedded default shows its progress here."""
        if demo_model.is_loaded:
            return f"Model: {demo_model.source}. Ready."
        try:
            demo_model.load(progress=lambda fraction, message: progress(fraction, desc=message))
        except Exception as error:
            logger.exception("Could not load the model")
            raise gr.Error(f"Could not load the model {demo_model.source}: {error}") from error
        return f"Model: {demo_model.source}. Ready."

    def recognize(
        image_upload: dict[str, Any] | None,
        category_set: str,
        typed_categories: str,
        typed_superclass: str,
        top_k: float,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 (gradio injects its tracker here)
    ) -> tuple[str, str, pd.DataFrame, str]:
        image = open_image(image_upload)
        candidates, notes = resolve_candidates(category_set, typed_categories, typed_superclass)
        for note in notes:
            gr.Warning(note)
        top_k = max(1, min(int(top_k), len(candidates.categories)))
        try:
            demo_model.load(progress=lambda fraction, message: progress(fraction, desc=message))
            progress(0.5, desc=f"Ranking {len(candidates.categories)} categories and asking the model")
            recognition = demo_model.recognize(image, candidates, top_k)
        except Exception as error:
            logger.exception("Recognition failed")
            raise gr.Error(f"Recognition failed: {error}") from error
        description = recognition.description or "(the model generated no text)"
        return recognition.prediction, explain(recognition), similarity_frame(recognition.top_k), description

    example_paths = write_examples(Path(tempfile.gettempdir()) / "hf_finedefics_demo_examples")
    embedded_names = category_sets()[EMBEDDED_SET].categories

    with gr.Blocks(title="Finedefics: fine-grained visual recognition") as demo:
        gr.Markdown(
            "# Finedefics: fine-grained visual recognition\n"
            "Which of many similar categories is in the image? The model ranks the candidates by the similarity of "
            "the object and each category name inside the LLM, answers the 4-way multiple-choice question over "
            "the most similar ones, and describes the object's distinguishing attributes. "
            "[Paper (ICLR 2025)](https://arxiv.org/abs/2501.15140)"
        )
        status = gr.Markdown(f"Model: {demo_model.source}. Loading when the page opens...")
        with gr.Row():
            with gr.Column():
                image = gr.Image(type="filepath", label="Image", height=320, elem_id="image")
                category_set = gr.Dropdown(category_set_choices(), value=EMBEDDED_SET, label="Candidate categories")
                typed_categories = gr.Textbox(
                    label="Typed candidate categories (comma or newline separated)",
                    placeholder="Laysan Albatross, Sooty Albatross, Black footed Albatross, ...",
                    lines=3,
                    max_lines=12,
                )
                typed_superclass = gr.Textbox(
                    label="Super-category of the typed list (optional, e.g. bird)", max_lines=1
                )
                top_k = gr.Slider(1, MAX_TOP_K, value=DEFAULT_TOP_K, step=1, label="Top-k by similarity")
                submit = gr.Button("Recognize", variant="primary")
            with gr.Column():
                prediction = gr.Textbox(label="Predicted category (multiple choice)", elem_id="prediction")
                explanation = gr.Markdown(label="How the model answered", container=True)
                similarities = gr.BarPlot(
                    x="category",
                    y="similarity",
                    sort="-y",
                    x_label_angle=-30,
                    label="Top-k categories by embedding similarity (cosine, object vs category name)",
                    elem_id="similarities",
                )
                description = gr.Textbox(label="Generated attribute description", lines=4)
        gr.Examples(
            [[str(path), EMBEDDED_SET, "", ""] for path in example_paths]
            + [[str(example_paths[0]), TYPED_SET, ", ".join(embedded_names[:6]), "critter"]],
            inputs=[image, category_set, typed_categories, typed_superclass],
            label="Examples: test images of the embedded default's critters",
        )

        # Typing a list means using it.
        typed_categories.input(lambda: TYPED_SET, outputs=category_set, queue=False, api_visibility="undocumented")
        demo.load(model_status, outputs=status, api_name="model_status", concurrency_limit=1)
        submit.click(
            recognize,
            inputs=[image, category_set, typed_categories, typed_superclass, top_k],
            outputs=[prediction, explanation, similarities, description],
            api_name="recognize",
            concurrency_limit=CONCURRENCY_LIMIT,
            # gr.Image would open the upload before `recognize` runs and fail on a non-image with a generic
            # error; `open_image` reads the raw upload instead and says what is wrong.
            preprocess=False,
        )
    return demo.queue(max_size=QUEUE_MAX_SIZE)


def launch_demo(
    model: str | None = None,
    adapter: str | None = None,
    server_name: str | None = None,
    server_port: int | None = None,
    share: bool = False,
    processor_kwargs: dict | None = None,
) -> None:
    """Load the model, then build and serve the demo (a Space starts here: its visitors never wait for a model
    build); `server_name` / `server_port` default to Gradio's (GRADIO_SERVER_NAME / _PORT)."""
    build_demo(model, adapter, processor_kwargs, load_now=True).launch(
        server_name=server_name, server_port=server_port, share=share, max_file_size=MAX_UPLOAD_BYTES, css=APP_CSS
    )
