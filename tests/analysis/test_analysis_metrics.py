from __future__ import annotations

import numpy as np
import pytest

from hf_finedefics.analysis import (
    alignment_quality,
    confusion_matrix,
    discriminability,
    linear_probe_accuracy,
    mask_class_name,
)

# Two classes of objects in 3-D, category names along the axes.
OBJECTS = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 2.0]])
LABELS = np.array([0, 0, 1, 1])
NAMES = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])


def test_alignment_quality_by_hand():
    result = alignment_quality(OBJECTS, LABELS, NAMES, ["cat", "dog"])
    # class 0: cos(x, x) = 1 and cos(y, x) = 0; class 1: both objects are z, cos(z, (0, 1, 1)) = 1/sqrt(2).
    assert result["per_class"] == pytest.approx({"cat": 0.5, "dog": 1 / np.sqrt(2)})
    assert result["overall"] == pytest.approx((0.5 + 1 / np.sqrt(2)) / 2)
    # Gap own minus other name: x (1 - 0), y (0 - 1/sqrt(2)); both z: 1/sqrt(2) - 0. y is nearest the dog's name.
    gap_cat, gap_dog = (1 - 1 / np.sqrt(2)) / 2, 1 / np.sqrt(2)
    assert result["gap_per_class"] == pytest.approx({"cat": gap_cat, "dog": gap_dog})
    assert result["gap"] == pytest.approx((gap_cat + gap_dog) / 2)
    assert result["object_to_name_top1"] == pytest.approx(0.75)


def test_alignment_gap_ignores_what_moves_every_cosine():
    """Adding the same offset to every name raises the raw mean cosine of Table 8 but is no better alignment; the
    gap and the top-1 see that."""
    rng = np.random.default_rng(0)
    names = rng.normal(size=(5, 16))
    objects = np.repeat(names, 4, axis=0) + rng.normal(scale=2.0, size=(20, 16))
    labels = np.repeat(np.arange(5), 4)
    shared = 6 * rng.normal(size=16)
    base = alignment_quality(objects + shared, labels, names, list("abcde"))
    shifted = alignment_quality(objects + shared, labels, names + shared, list("abcde"))
    assert shifted["overall"] > base["overall"] + 0.3
    assert shifted["gap"] < base["gap"]


def test_discriminability_by_hand():
    result = discriminability(OBJECTS, LABELS, NAMES)
    # Centroids (0.5, 0.5, 0) and (0, 0, 1): cosine 0, distance 1. Class 0 members lie sqrt(0.5) from their
    # centroid (squared: 0.5); class 1 members coincide with theirs after normalisation.
    assert result["inter_class_distance_objects"] == pytest.approx(1.0)
    assert result["intra_class_variance_objects"] == pytest.approx((0.5 + 0.0) / 2)
    # Names x and (0, 1, 1) are orthogonal.
    assert result["inter_class_distance_categories"] == pytest.approx(1.0)
    close_names = np.array([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0]])
    assert discriminability(OBJECTS, LABELS, close_names)["inter_class_distance_categories"] == pytest.approx(
        1 - 1 / np.sqrt(2)
    )


def test_linear_probe_separates_separable_classes_and_not_noise():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 40)
    separable = rng.normal(size=(120, 8)) + 4 * np.eye(8)[labels]
    assert linear_probe_accuracy(separable[::2], labels[::2], separable[1::2], labels[1::2]) == 1.0
    noise = rng.normal(size=(120, 8))
    assert linear_probe_accuracy(noise[::2], labels[::2], noise[1::2], labels[1::2]) < 0.6


def test_confusion_matrix_from_names_indices_and_missing_answers():
    records = [
        {"groundtruth": "cat", "prediction": "cat"},
        {"groundtruth": "cat", "prediction": 1, "options": ["cat", "dog"]},
        {"groundtruth": "dog", "prediction": "dog"},
        {"groundtruth": "dog", "prediction": None},
        {"groundtruth": "dog", "prediction": "wolf"},
        {"groundtruth": "dog", "prediction": 0, "options": ["dog", "cat"]},
    ]
    matrix, columns = confusion_matrix(records, ["cat", "dog"])
    assert columns == ["cat", "dog", "(other / no answer)"]
    np.testing.assert_allclose(matrix, [[0.5, 0.5, 0.0], [0.0, 0.5, 0.5]])
    matrix, columns = confusion_matrix(records[:3])
    assert columns == ["cat", "dog"]
    np.testing.assert_allclose(matrix, [[0.5, 0.5], [0.0, 1.0]])


def test_class_name_is_masked_with_demonstratives():
    text = "The Chihuahua is tiny. Chihuahuas have big ears, unlike a Maltese dog; I love chihuahua."
    masked = mask_class_name(text, "Chihuahua")
    assert masked == "This is tiny. These have big ears, unlike a Maltese dog; I love this."
    assert mask_class_name("A Japanese  spaniel has a flat face.", "Japanese spaniel") == "This has a flat face."
