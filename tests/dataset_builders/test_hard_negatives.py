import numpy as np
import pytest

from dataset_builders import load_source
from dataset_builders.hard_negatives import (
    ClipEncoder,
    mine_clip_negatives,
    mine_hard_negatives,
    pick_negative_images,
    random_negative_labels,
)
from hf_finedefics.testing import create_tiny_checkpoint

from . import layouts


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    return (matrix / np.linalg.norm(matrix, axis=1, keepdims=True)).astype(np.float32)


def test_clip_mining_matches_brute_force_across_chunks():
    generator = np.random.default_rng(0)
    images, classes = unit_rows(generator.normal(size=(50, 8))), unit_rows(generator.normal(size=(7, 8)))
    labels = generator.integers(0, 7, size=50)
    negative_labels, scores = mine_clip_negatives(images, classes, labels, k=3, chunk_size=16)

    similarity = images @ classes.T
    similarity[np.arange(50), labels] = -np.inf
    expected = np.argsort(-similarity, axis=1)[:, :3]
    np.testing.assert_array_equal(negative_labels, expected)
    np.testing.assert_allclose(scores, np.take_along_axis(similarity, expected, axis=1), rtol=1e-5)
    assert not (negative_labels == labels[:, None]).any()


def test_classes_without_images_are_never_negatives():
    generator = np.random.default_rng(1)
    images, classes = unit_rows(generator.normal(size=(20, 4))), unit_rows(generator.normal(size=(6, 4)))
    labels = generator.integers(0, 4, size=20)
    allowed = np.array([1, 1, 1, 1, 0, 0], dtype=bool)
    negative_labels, _ = mine_clip_negatives(images, classes, labels, k=3, allowed_classes=allowed)
    assert negative_labels.max() < 4
    with pytest.raises(ValueError, match="at least 4 categories"):
        mine_clip_negatives(images, classes, labels, k=3, allowed_classes=np.array([1, 1, 1, 0, 0, 0]))


def test_random_negatives_are_distinct_and_incorrect():
    labels = np.array([0, 1, 2, 3, 4] * 20)
    negatives = random_negative_labels(labels, num_classes=5, k=3, seed=3)
    assert negatives.shape == (100, 3)
    assert not (negatives == labels[:, None]).any()
    assert all(len(set(row)) == 3 for row in negatives.tolist())
    # Every incorrect class gets drawn somewhere: the sampling is not stuck on a fixed pattern.
    assert set(negatives[labels == 0].ravel()) == {1, 2, 3, 4}


def test_negative_images_belong_to_their_category():
    labels = np.array([2, 0, 1, 2, 0, 1, 1])
    negative_labels = np.array([[0, 1]] * 7)
    indices = pick_negative_images(labels, negative_labels, seed=0)
    np.testing.assert_array_equal(labels[indices], negative_labels)


def test_mine_hard_negatives_with_a_real_clip_model(tmp_path):
    dataset = load_source("imagefolder", layouts.make_image_folder(tmp_path, ["a", "b", "c", "d", "e"], 2), "train")
    encoder = ClipEncoder(str(create_tiny_checkpoint("clip")), batch_size=4)
    negatives = mine_hard_negatives(dataset, k=3, strategy="clip", clip_model=encoder)
    labels = np.array(dataset["label"])
    assert negatives.labels.shape == negatives.indices.shape == negatives.scores.shape == (10, 3)
    assert not (negatives.labels == labels[:, None]).any()
    np.testing.assert_array_equal(labels[negatives.indices], negatives.labels)
    # The scores are the model's own similarities, most similar first.
    assert (np.diff(negatives.scores, axis=1) <= 1e-6).all()
    class_embeddings = encoder.encode_texts([f"an image of a {name}" for name in dataset.features["label"].names])
    image_embeddings = encoder.encode_dataset_images(dataset)
    expected, _ = mine_clip_negatives(image_embeddings, class_embeddings, labels, k=3)
    np.testing.assert_array_equal(negatives.labels, expected)


def test_clip_strategy_needs_a_model(tmp_path):
    dataset = load_source("imagefolder", layouts.make_image_folder(tmp_path, ["a", "b", "c", "d"], 1), "train")
    with pytest.raises(ValueError, match="needs a CLIP model"):
        mine_hard_negatives(dataset, strategy="clip")
    with pytest.raises(ValueError, match="Unknown negative strategy 'hardest'"):
        mine_hard_negatives(dataset, strategy="hardest")


def test_sentence_transformers_clip_gives_the_same_embeddings(tmp_path):
    from sentence_transformers import SentenceTransformer

    clip_path = str(create_tiny_checkpoint("clip"))
    SentenceTransformer(clip_path, device="cpu").save(str(tmp_path / "st-clip"))
    dataset = load_source("imagefolder", layouts.make_image_folder(tmp_path / "d", ["a", "b", "c", "d"], 1), "train")
    st_encoder, hf_encoder = ClipEncoder(str(tmp_path / "st-clip")), ClipEncoder(clip_path)
    assert (st_encoder.library, hf_encoder.library) == ("sentence-transformers", "transformers")
    texts = ["an image of a a", "an image of a b"]
    np.testing.assert_allclose(st_encoder.encode_texts(texts), hf_encoder.encode_texts(texts), atol=1e-5)
    np.testing.assert_allclose(
        st_encoder.encode_dataset_images(dataset), hf_encoder.encode_dataset_images(dataset), atol=1e-5
    )
