"""The embedded default's fine-grained dataset: invented critters drawn by code, nothing to download.

Why it looks like this
----------------------
The paper's claim is about *fine-grained* recognition: subordinate categories of one super-category that
differ in a few visual attributes, whose names carry no hint of those attributes (a "Chihuahua" is not
called "small tan dog"). This module builds the smallest dataset with that structure that a tiny,
randomly initialised VLM can learn on CPU in minutes:

* One super-category (``critter`` by default). Each subordinate category is a combination of the paper's
  four attribute types: body **color**, body **shape**, coat **texture** and body **size**. Categories
  are picked from the full product by a seeded growth walk: each new category differs from an already
  chosen one in exactly one attribute, preferring attribute values and attribute types used least so
  far. So every category has a near neighbour differing in a single attribute, every attribute type
  separates some pair of categories, and attribute values stay balanced.
* Category names are pronounceable syllable strings ("Velkari"-like) drawn from the seed, rejected when
  they contain an attribute word, the super-category or any word of the description templates: like
  breed names, they tell nothing about the attributes.
* Images are drawn with bold features that survive 32x32 pixels: a saturated body colour, a large
  silhouette, a high-contrast coat pattern whose period never drops below ~4 output pixels, and three
  well-separated size classes. Nuisance factors (position, scale jitter inside the size class, rotation,
  brightness, a two-tone gradient background in muted colours, pixel noise) are drawn per image from
  ``(seed, split, category, index)``, so every image is reproducible alone and splits never share one.
  Shapes are rendered supersampled and box-filtered, so edges are anti-aliased at any ``image_size``.
* Every image carries its ground-truth attributes and a five-sentence attribute description written from
  them with varied templates (an opening sentence on position and background, then one sentence per
  attribute in random order). It never names the category: it stands in for the paper's constructed
  descriptions (section 3.1), which the pipeline would otherwise get from a VQA model and an LLM.
* The test split comes with a multiple-choice option file in the FOCI / paper format
  (``{class: [{"image", "options", "groundtruth"}]}``): the ground truth first, then the three nearest
  categories by number of differing attributes, ties broken by a seeded draw per image. The same
  distance ranks hard negatives (:func:`category_neighbours`), in place of the paper's CLIP similarity.

Public API: :class:`SyntheticFGVRConfig`, :func:`generate_synthetic_fgvr` (a ``DatasetDict``),
:func:`write_synthetic_fgvr` (imagefolder + metadata + option file on disk), :func:`synthetic_categories`,
:func:`category_neighbours`, :func:`build_option_file`, :func:`describe_attributes`, :func:`describe_drawn_critter`,
:func:`draw_critter` and :func:`save_contact_sheet` (a PNG to look at the data).
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value
from datasets import Image as ImageFeature
from PIL import Image, ImageDraw, ImageFont

from ..registry import DEFAULT_MAX_IMAGE_PIXELS
from ._common import SourceFormatError

ATTRIBUTE_TYPES: tuple[str, ...] = ("color", "shape", "texture", "size")

# Saturated body colours (RGB in [0, 1]); backgrounds are muted, so hue always belongs to the critter.
COLOR_RGB: dict[str, tuple[float, float, float]] = {
    "red": (0.86, 0.12, 0.12),
    "blue": (0.13, 0.33, 0.92),
    "green": (0.12, 0.70, 0.22),
    "yellow": (0.96, 0.84, 0.10),
    "orange": (0.98, 0.52, 0.05),
    "purple": (0.60, 0.18, 0.80),
}
SHAPES: tuple[str, ...] = ("round", "triangular", "square", "star-shaped", "cross-shaped")
TEXTURES: tuple[str, ...] = ("plain", "striped", "spotted", "checkered")
# Body diameter as a fraction of the image side: (centre of the class, jitter either side).
SIZE_DIAMETER: dict[str, tuple[float, float]] = {
    "small": (0.40, 0.04),
    "medium": (0.61, 0.04),
    "large": (0.85, 0.04),
}
SUPPORTED_VALUES: dict[str, tuple[str, ...]] = {
    "color": tuple(COLOR_RGB),
    "shape": SHAPES,
    "texture": TEXTURES,
    "size": tuple(SIZE_DIAMETER),
}

NUISANCE_FIELDS: tuple[str, ...] = (
    "center_x",
    "center_y",
    "diameter",
    "rotation",
    "pattern_phase",
    "brightness",
    "noise_std",
)
_SPLIT_CODES = {"train": 1, "test": 2}

# Description templates. They may use no attribute word other than the value they describe (a round
# critter's checkered coat is not "made of squares"), nor anything a category name could contain.
_OPENINGS = (
    "The image shows a single {superclass} {position}, set against a {background} background.",
    "A lone {superclass} appears {position} of the picture, in front of a {background} backdrop.",
    "This photo contains one {superclass}, located {position}, with a {background} background behind it.",
)
_COLOR_SENTENCES = (
    "Its body colour is {value}.",
    "The {superclass} is mostly {value} in colour.",
    "The dominant colour of its body is {value}.",
)
_SHAPE_SENTENCES = (
    "Its body outline is {value}.",
    "Seen whole, the {superclass} has a {value} silhouette.",
    "The body of the {superclass} is {value} in form.",
)
_TEXTURE_SENTENCES: dict[str, tuple[str, ...]] = {
    "plain": (
        "Its coat is plain, with no markings at all.",
        "The coat looks plain and unpatterned.",
    ),
    "striped": (
        "Its coat is striped with bold dark bands.",
        "Dark stripes run across its body, giving it a striped coat.",
    ),
    "spotted": (
        "Its coat is spotted with dark dots.",
        "The body is covered in dark dots, a clearly spotted coat.",
    ),
    "checkered": (
        "Its coat is checkered, alternating dark and bright patches.",
        "A checkered pattern of dark and bright patches covers its body.",
    ),
}
_SIZE_SENTENCES: dict[str, tuple[str, ...]] = {
    "small": (
        "It is small, taking up only a modest part of the frame.",
        "This is a small {superclass} with plenty of space around it.",
    ),
    "medium": (
        "It is medium-sized, filling about half of the frame.",
        "This is a medium {superclass}, neither tiny nor filling the picture.",
    ),
    "large": (
        "It is large, filling most of the frame.",
        "This is a large {superclass} that nearly reaches the edges of the picture.",
    ),
}
# The words of the position and background phrases filled into the openings.
_PHRASE_WORDS = "in the centre towards the left right side upper lower middle near dark muted bright gradient"
# Everything a description can say besides attribute values: a category name must not occur in it.
_TEMPLATE_TEXT = " ".join(
    [*_OPENINGS, *_COLOR_SENTENCES, *_SHAPE_SENTENCES, _PHRASE_WORDS]
    + [s for group in (_TEXTURE_SENTENCES, _SIZE_SENTENCES) for options in group.values() for s in options]
).lower()

_ONSETS = ("b", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "kr", "th", "vel")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ei", "au")
_CODAS = ("", "", "", "n", "r", "l", "s", "m")


@dataclass
class SyntheticFGVRConfig:
    """Everything that determines the generated dataset; equal configs give byte-identical datasets."""

    seed: int = field(default=0, metadata={"help": "Seed for categories, names, images, descriptions and options."})
    superclass: str = field(default="critter", metadata={"help": "Name of the single super-category."})
    num_categories: int = field(
        default=20, metadata={"help": "Number of subordinate categories (4 to the size of the attribute product)."}
    )
    train_per_category: int = field(default=24, metadata={"help": "Training images per category."})
    test_per_category: int = field(default=8, metadata={"help": "Test images per category."})
    image_size: int = field(default=32, metadata={"help": "Side of the square RGB images, in pixels."})
    supersample: int = field(default=4, metadata={"help": "Render at this multiple of image_size, then box-filter."})
    colors: list[str] = field(
        default_factory=lambda: ["red", "blue", "green", "yellow"],
        metadata={"help": f"Body colours, from {', '.join(COLOR_RGB)}."},
    )
    shapes: list[str] = field(
        default_factory=lambda: ["round", "triangular", "square", "star-shaped"],
        metadata={"help": f"Body shapes, from {', '.join(SHAPES)}."},
    )
    textures: list[str] = field(
        default_factory=lambda: list(TEXTURES), metadata={"help": f"Coat textures, from {', '.join(TEXTURES)}."}
    )
    sizes: list[str] = field(
        default_factory=lambda: list(SIZE_DIAMETER),
        metadata={"help": f"Size classes, from {', '.join(SIZE_DIAMETER)}."},
    )
    max_rotation: float = field(
        default=15.0, metadata={"help": "Maximum rotation in degrees either way (kept small: a square stays square)."}
    )
    noise_std: float = field(default=0.03, metadata={"help": "Maximum standard deviation of pixel noise (0-1 scale)."})

    def __post_init__(self) -> None:
        for attribute_type in ATTRIBUTE_TYPES:
            values = self.attribute_values[attribute_type]
            unknown = [v for v in values if v not in SUPPORTED_VALUES[attribute_type]]
            if unknown or len(set(values)) != len(values) or len(values) < 2:
                raise ValueError(
                    f"{attribute_type} values must be 2 or more distinct values from "
                    f"{list(SUPPORTED_VALUES[attribute_type])}, got {values}."
                )
        combinations = math.prod(len(v) for v in self.attribute_values.values())
        if not 4 <= self.num_categories <= combinations:
            raise ValueError(f"num_categories must be between 4 and {combinations}, got {self.num_categories}.")
        if self.train_per_category < 1 or self.test_per_category < 1:
            raise ValueError("train_per_category and test_per_category must be at least 1.")
        if self.image_size < 16 or self.supersample < 1:
            raise ValueError("image_size must be at least 16 and supersample at least 1.")

    @property
    def attribute_values(self) -> dict[str, list[str]]:
        return {"color": self.colors, "shape": self.shapes, "texture": self.textures, "size": self.sizes}

    @property
    def split_sizes(self) -> dict[str, int]:
        return {"train": self.train_per_category, "test": self.test_per_category}


@dataclass(frozen=True)
class SyntheticCategory:
    """One invented species: its name and its ground-truth attributes (keys of ATTRIBUTE_TYPES)."""

    name: str
    attributes: dict[str, str]


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, *keys]))


def attribute_distance(a: dict[str, str], b: dict[str, str]) -> int:
    """Number of attribute types on which two attribute dicts differ (0 to 4)."""
    return sum(a[t] != b[t] for t in ATTRIBUTE_TYPES)


def _select_combinations(config: SyntheticFGVRConfig) -> list[tuple[str, ...]]:
    """Seeded growth walk over the attribute product; each pick differs from a chosen one in one attribute."""
    rng = _rng(config.seed, 101)
    values = [config.attribute_values[t] for t in ATTRIBUTE_TYPES]
    chosen = [tuple(str(rng.choice(v)) for v in values)]
    value_counts = {(i, value): 0 for i, vs in enumerate(values) for value in vs}
    type_counts = [0] * len(ATTRIBUTE_TYPES)
    for i, value in enumerate(chosen[0]):
        value_counts[i, value] += 1
    while len(chosen) < config.num_categories:
        candidates: dict[tuple[str, ...], int] = {}
        for combination in chosen:
            for i, vs in enumerate(values):
                for value in vs:
                    candidate = combination[:i] + (value,) + combination[i + 1 :]
                    if candidate not in chosen and candidate not in candidates:
                        candidates[candidate] = i
        scores = {
            candidate: (type_counts[i], sum(value_counts[j, v] for j, v in enumerate(candidate)))
            for candidate, i in candidates.items()
        }
        best = min(scores.values())
        ties = [candidate for candidate, score in scores.items() if score == best]
        pick = ties[int(rng.integers(len(ties)))]
        chosen.append(pick)
        type_counts[candidates[pick]] += 1
        for i, value in enumerate(pick):
            value_counts[i, value] += 1
    return sorted(chosen, key=lambda c: [values[i].index(v) for i, v in enumerate(c)])


def _category_names(config: SyntheticFGVRConfig, count: int) -> list[str]:
    """Unique pronounceable names with no attribute word, super-category or template word inside."""
    rng = _rng(config.seed, 102)
    forbidden = [v.lower() for vs in SUPPORTED_VALUES.values() for v in vs] + [config.superclass.lower()]
    names: list[str] = []
    while len(names) < count:
        syllables = [
            _ONSETS[rng.integers(len(_ONSETS))]
            + _VOWELS[rng.integers(len(_VOWELS))]
            + _CODAS[rng.integers(len(_CODAS))]
            for _ in range(int(rng.integers(2, 4)))
        ]
        name = "".join(syllables).capitalize()
        lowered = name.lower()
        if (
            5 <= len(name) <= 10
            and not any(word in lowered for word in forbidden)
            and lowered not in _TEMPLATE_TEXT
            and all(lowered[:3] != other.lower()[:3] for other in names)
        ):
            names.append(name)
    return names


def synthetic_categories(config: SyntheticFGVRConfig | None = None, **overrides: Any) -> list[SyntheticCategory]:
    """The categories of a config, in label order (sorted by attribute values, so neighbours sit together)."""
    config = dataclasses.replace(config or SyntheticFGVRConfig(), **overrides)
    combinations = _select_combinations(config)
    names = _category_names(config, len(combinations))
    return [
        SyntheticCategory(name, dict(zip(ATTRIBUTE_TYPES, combination)))
        for name, combination in zip(names, combinations)
    ]


def category_neighbours(categories: list[SyntheticCategory]) -> dict[str, list[tuple[str, int]]]:
    """For each category, every other one as ``(name, differing attributes)``, nearest first (then label order)."""
    return {
        category.name: sorted(
            (
                (other.name, attribute_distance(category.attributes, other.attributes))
                for other in categories
                if other is not category
            ),
            key=lambda item: item[1],
        )
        for category in categories
    }


def _shape_mask(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Inside test in the object frame, where the body's circumscribed radius is 1 and v points up."""
    if shape == "round":
        return u**2 + v**2 <= 1.0
    if shape == "square":
        return np.maximum(np.abs(u), np.abs(v)) <= 0.8
    if shape == "triangular":
        v = v + 0.2  # roughly centre the triangle's bounding box on the body centre
        normals = [(math.cos(a), math.sin(a)) for a in (math.radians(270), math.radians(30), math.radians(150))]
        return np.all([nx * u + ny * v <= 0.6 for nx, ny in normals], axis=0)
    if shape == "cross-shaped":
        return ((np.abs(u) <= 0.36) & (np.abs(v) <= 1.0)) | ((np.abs(v) <= 0.36) & (np.abs(u) <= 1.0))
    if shape == "star-shaped":
        alpha, outer, inner = 2 * math.pi / 5, 1.05, 0.5
        angle = np.mod(np.arctan2(v, u) - math.pi / 2, alpha)
        folded = np.minimum(angle, alpha - angle)
        radius = np.hypot(u, v)
        px, py = radius * np.cos(folded), radius * np.sin(folded)
        bx, by = inner * math.cos(alpha / 2), inner * math.sin(alpha / 2)
        return (bx - outer) * py - by * (px - outer) >= 0
    raise ValueError(f"Unknown shape {shape!r}.")


def _texture_mask(texture: str, u: np.ndarray, v: np.ndarray, period: float) -> np.ndarray:
    """Where the dark coat pattern is drawn; u, v are in output pixels along the body's axes."""
    if texture == "plain":
        return np.zeros(u.shape, dtype=bool)
    if texture == "striped":
        return np.mod(v / period, 1.0) < 0.5
    if texture == "spotted":
        cell = period * 1.5
        row = np.floor(v / cell)
        du = np.mod(u / cell + 0.5 * np.mod(row, 2), 1.0) - 0.5
        dv = np.mod(v / cell, 1.0) - 0.5
        return du**2 + dv**2 <= 0.33**2
    if texture == "checkered":
        cell = period * 0.75
        return (np.floor(u / cell) + np.floor(v / cell)) % 2 == 0
    raise ValueError(f"Unknown texture {texture!r}.")


def _draw_nuisance(config: SyntheticFGVRConfig, size: str, rng: np.random.Generator) -> dict[str, float]:
    centre, jitter = SIZE_DIAMETER[size]
    diameter = centre + rng.uniform(-jitter, jitter)
    slack = max(0.0, (1.0 - diameter) / 2 - 0.02)
    return {
        "center_x": 0.5 + rng.uniform(-slack, slack),
        "center_y": 0.5 + rng.uniform(-slack, slack),
        "diameter": diameter,
        "rotation": rng.uniform(-config.max_rotation, config.max_rotation),
        "pattern_phase": rng.uniform(0.0, 1.0),
        "brightness": rng.uniform(0.85, 1.1),
        "noise_std": rng.uniform(0.0, config.noise_std),
    }


def _render(
    config: SyntheticFGVRConfig, attributes: dict[str, str], nuisance: dict[str, float], rng: np.random.Generator
) -> tuple[np.ndarray, float]:
    """An RGB uint8 image of one critter, and the background's mean brightness (0-1)."""
    side, factor = config.image_size, config.supersample
    # Supersampled pixel centres in output-pixel units, relative to the body centre, y pointing up.
    grid = (np.arange(side * factor) + 0.5) / factor
    column, row = np.meshgrid(grid, grid)
    x, y = column - nuisance["center_x"] * side, nuisance["center_y"] * side - row
    theta = math.radians(nuisance["rotation"])
    u = math.cos(theta) * x + math.sin(theta) * y
    v = -math.sin(theta) * x + math.cos(theta) * y
    radius = nuisance["diameter"] * side / 2

    body = _shape_mask(attributes["shape"], u / radius, v / radius)
    period = max(4.0 * side / 32, radius / 1.6)
    shift = nuisance["pattern_phase"] * period
    pattern = body & _texture_mask(attributes["texture"], u + shift, v + shift, period)

    tones = rng.uniform(0.2, 0.55, size=2)
    tint = rng.uniform(-0.04, 0.04, size=(2, 3))
    ends = np.clip(tones[:, None] + tint, 0.0, 1.0)
    direction = rng.uniform(0, 2 * math.pi)
    ramp = (math.cos(direction) * x + math.sin(direction) * y) / side + 0.5
    ramp = np.clip(ramp, 0.0, 1.0)[..., None]
    canvas = ends[0] * (1 - ramp) + ends[1] * ramp

    colour = np.clip(np.array(COLOR_RGB[attributes["color"]]) * nuisance["brightness"], 0.0, 1.0)
    canvas = np.where(body[..., None], colour, canvas)
    canvas = np.where(pattern[..., None], colour * 0.28, canvas)

    image = canvas.reshape(side, factor, side, factor, 3).mean(axis=(1, 3))
    image = image + rng.normal(0.0, nuisance["noise_std"], size=image.shape)
    return np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8), float(tones.mean())


def draw_critter(
    config: SyntheticFGVRConfig, attributes: dict[str, str], rng: np.random.Generator
) -> tuple[Image.Image, dict[str, float], float]:
    """One critter with `attributes` under nuisance drawn from `rng`: the image, the nuisance and the
    background's mean brightness. Any attribute combination can be drawn, not only a category's (the
    world pretraining of `hf_finedefics.world` shows attributes without categories)."""
    nuisance = _draw_nuisance(config, attributes["size"], rng)
    pixels, tone = _render(config, attributes, nuisance, rng)
    return Image.fromarray(pixels, mode="RGB"), nuisance, tone


def _position_phrase(center_x: float, center_y: float) -> str:
    column = "left" if center_x < 0.42 else "right" if center_x > 0.58 else ""
    row = "upper" if center_y < 0.42 else "lower" if center_y > 0.58 else ""
    if not row and not column:
        return "in the centre"
    if not row:
        return f"towards the {column} side"
    if not column:
        return f"in the {row} middle"
    return f"near the {row} {column}"


def describe_attributes(
    attributes: dict[str, str],
    superclass: str,
    rng: np.random.Generator,
    position: str = "in the centre",
    background: str = "muted gradient",
) -> str:
    """A five-sentence attribute description in the paper's style, written from ground-truth attributes.

    An opening sentence on where the object is, then one sentence per attribute type in random order, each
    from one of several templates. It never contains a category name.
    """

    def pick(options: tuple[str, ...], value: str = "") -> str:
        return options[int(rng.integers(len(options)))].format(superclass=superclass, value=value)

    sentences = [
        pick(_COLOR_SENTENCES, attributes["color"]),
        pick(_SHAPE_SENTENCES, attributes["shape"]),
        pick(_TEXTURE_SENTENCES[attributes["texture"]]),
        pick(_SIZE_SENTENCES[attributes["size"]]),
    ]
    order = rng.permutation(len(sentences))
    opening = _OPENINGS[int(rng.integers(len(_OPENINGS)))].format(
        superclass=superclass, position=position, background=background
    )
    return " ".join([opening, *(sentences[i] for i in order)])


def describe_drawn_critter(
    attributes: dict[str, str], superclass: str, nuisance: dict[str, float], tone: float, rng: np.random.Generator
) -> str:
    """:func:`describe_attributes` of a critter drawn by :func:`draw_critter`: its place and background included."""
    background = "dark gradient" if tone < 0.3 else "muted gradient" if tone < 0.45 else "bright gradient"
    position = _position_phrase(nuisance["center_x"], nuisance["center_y"])
    return describe_attributes(attributes, superclass, rng, position, background)


def _features(categories: list[SyntheticCategory]) -> Features:
    return Features(
        {
            "image": ImageFeature(),
            "label": ClassLabel(names=[c.name for c in categories]),
            "category": Value("string"),
            "superclass": Value("string"),
            "attributes": {t: Value("string") for t in ATTRIBUTE_TYPES},
            "attribute_description": Value("string"),
            "image_path": Value("string"),
            "nuisance": {name: Value("float32") for name in NUISANCE_FIELDS},
        }
    )


def _split_rows(config: SyntheticFGVRConfig, categories: list[SyntheticCategory], split: str) -> dict[str, list]:
    rows: dict[str, list] = {name: [] for name in _features(categories)}
    for label, category in enumerate(categories):
        for index in range(config.split_sizes[split]):
            rng = _rng(config.seed, _SPLIT_CODES[split], label, index)
            image, nuisance, tone = draw_critter(config, category.attributes, rng)
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
            rows["image"].append({"bytes": buffer.getvalue(), "path": None})
            rows["label"].append(label)
            rows["category"].append(category.name)
            rows["superclass"].append(config.superclass)
            rows["attributes"].append(dict(category.attributes))
            rows["attribute_description"].append(
                describe_drawn_critter(category.attributes, config.superclass, nuisance, tone, rng)
            )
            rows["image_path"].append(f"{split}/{category.name}/{category.name}_{index:04d}.png")
            rows["nuisance"].append(nuisance)
    return rows


def generate_synthetic_fgvr(config: SyntheticFGVRConfig | None = None, **overrides: Any) -> DatasetDict:
    """Generate the dataset in memory: ``train`` and ``test`` splits of PNG images with labels and attributes.

    Columns: ``image`` (Image), ``label`` (ClassLabel of the category names), ``category``, ``superclass``,
    ``attributes`` (color/shape/texture/size), ``attribute_description``, ``image_path`` (where
    :func:`write_synthetic_fgvr` puts the image, relative to its output folder) and ``nuisance`` (the drawn
    position, diameter, rotation, brightness and noise). Keyword overrides replace config fields, e.g.
    ``generate_synthetic_fgvr(seed=1, image_size=64)``.
    """
    config = dataclasses.replace(config or SyntheticFGVRConfig(), **overrides)
    categories = synthetic_categories(config)
    features = _features(categories)
    return DatasetDict(
        {split: Dataset.from_dict(_split_rows(config, categories, split), features=features) for split in _SPLIT_CODES}
    )


def build_option_file(
    dataset: Dataset, categories: list[SyntheticCategory], seed: int = 0
) -> dict[str, list[dict[str, Any]]]:
    """Four-way multiple-choice options per image in the evaluation format of ``shared/eval/mc_options``.

    Options are the ground truth first, then the three nearest categories by attribute distance (the
    format's files list the most similar first); ties are broken by a draw seeded by ``seed`` and the
    image's path, so each image gets its own distractors.
    """
    neighbours = category_neighbours(categories)
    options: dict[str, list[dict[str, Any]]] = {c.name: [] for c in categories}
    for category, path in zip(dataset["category"], dataset["image_path"]):
        rng = _rng(seed, 103, zlib.crc32(path.encode()))
        ranked = sorted(neighbours[category], key=lambda item: (item[1], rng.random()))
        choices = [category] + [name for name, _ in ranked[:3]]
        options[category].append({"image": path, "options": choices, "groundtruth": category})
    return options


def write_synthetic_fgvr(output_dir: str | Path, config: SyntheticFGVRConfig | None = None, **overrides: Any) -> Path:
    """Generate the dataset and write it as an imagefolder with metadata and a test option file.

    Layout under ``output_dir``: ``<split>/<category>/<category>_<index>.png``, ``<split>/metadata.jsonl``
    (``file_name`` plus every non-image column, readable by ``load_dataset("imagefolder")``),
    ``options_test.json`` (paths relative to ``output_dir``) and ``synthetic_fgvr.json`` (the config,
    the categories with their attributes and their neighbours). Returns ``output_dir``.
    """
    config = dataclasses.replace(config or SyntheticFGVRConfig(), **overrides)
    output_dir = Path(output_dir)
    dataset = generate_synthetic_fgvr(config)
    categories = synthetic_categories(config)
    for split, data in dataset.items():
        lines = []
        for row in data.cast_column("image", ImageFeature(decode=False)):
            target = output_dir / row["image_path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(row["image"]["bytes"])
            metadata = {k: v for k, v in row.items() if k not in ("image", "image_path", "label")}
            lines.append(json.dumps({"file_name": row["image_path"].split("/", 1)[1], **metadata}))
        (output_dir / split / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    options = build_option_file(dataset["test"], categories, config.seed)
    (output_dir / "options_test.json").write_text(json.dumps(options, indent=1))
    summary = {
        "config": dataclasses.asdict(config),
        "categories": [dataclasses.asdict(c) for c in categories],
        "neighbours": category_neighbours(categories),
    }
    (output_dir / "synthetic_fgvr.json").write_text(json.dumps(summary, indent=1))
    return output_dir


def save_contact_sheet(
    dataset: Dataset | DatasetDict, path: str | Path, images_per_category: int = 6, zoom: int = 3
) -> Path:
    """Save a PNG with one row per category: its name and attributes, then its first images, enlarged.

    A ``DatasetDict`` shows its ``train`` split. Images are scaled by ``zoom`` with nearest-neighbour
    resampling, so what is visible is exactly what a model sees.
    """
    if isinstance(dataset, DatasetDict):
        dataset = dataset["train"]
    names = dataset.features["label"].names
    by_label: dict[int, list[int]] = {label: [] for label in range(len(names))}
    for row, label in enumerate(dataset["label"]):
        if len(by_label[label]) < images_per_category:
            by_label[label].append(row)
    first = dataset[0]["image"]
    tile_w, tile_h = first.width * zoom, first.height * zoom
    text_w, gap = 260, 4
    sheet = Image.new(
        "RGB",
        (text_w + images_per_category * (tile_w + gap), len(names) * (tile_h + gap) + gap),
        (255, 255, 255),
    )
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for label, rows in by_label.items():
        top = gap + label * (tile_h + gap)
        attributes = dataset[rows[0]]["attributes"] if rows else {}
        caption = f"{label:2d} {names[label]}\n   " + " ".join(attributes.get(t, "") for t in ATTRIBUTE_TYPES)
        draw.multiline_text((4, top + tile_h // 2 - 12), caption, fill=(0, 0, 0), font=font)
        for column, row in enumerate(rows):
            tile = dataset[row]["image"].convert("RGB").resize((tile_w, tile_h), Image.Resampling.NEAREST)
            sheet.paste(tile, (text_w + column * (tile_w + gap), top))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path


def load_synthetic(data_dir: str | Path, split: str, max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> Dataset:
    """A split of a world written by `write_synthetic_fgvr`, read like any source (image, label, category,
    superclass); the super-category is the one the world was written with."""
    from .imagefolder import load_image_folder

    metadata = Path(data_dir) / split / "metadata.jsonl"
    if not metadata.is_file():
        raise SourceFormatError(f"{metadata} is missing: {data_dir} is not a folder written by write_synthetic_fgvr.")
    with metadata.open() as lines:
        superclass = json.loads(next(lines))["superclass"]
    return load_image_folder(data_dir, split, superclass=superclass, max_image_pixels=max_image_pixels)
