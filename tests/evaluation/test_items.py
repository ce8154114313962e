import json

import pytest
from PIL import Image

from hf_finedefics.evaluation import DATASETS, load_mc_items, shipped_option_file

from .conftest import CLASS_NAMES, NATIVE_LAYOUTS

TEST_SIZES = {
    "dog-120": 8580,
    "bird-200": 5794,
    "aircraft-102": 3333,
    "flower-102": 6149,
    "pet-37": 3669,
    "car-196": 8041,
    "imagenet-adversarial": 7500,
    "imagenet-rendition": 30000,
}


@pytest.mark.parametrize("name", sorted(NATIVE_LAYOUTS))
def test_items_resolve_into_native_layout(native_dataset, name):
    root, options_file = native_dataset(name)
    items = load_mc_items(name, root, options_file)
    assert len(items) == 2 * len(CLASS_NAMES)
    _, native_template = NATIVE_LAYOUTS[name]
    assert items[0].image == root / native_template.format(c=0, n=0)
    assert items[0].image_id == json.loads(options_file.read_text())[CLASS_NAMES[0]][0]["image"]
    assert {item.groundtruth for item in items} == set(CLASS_NAMES)


def test_stanford_cars_uses_the_test_image_of_a_colliding_name(native_dataset):
    root, options_file = native_dataset("car-196")
    # cars_train holds a different image under every test file name, as in the real dataset.
    for test_image in (root / "cars_test").iterdir():
        (root / "cars_train").mkdir(exist_ok=True)
        Image.new("RGB", (8, 8), "black").save(root / "cars_train" / test_image.name)
    items = load_mc_items("car-196", root, options_file)
    assert all(item.image.parent == root / "cars_test" for item in items)
    first = items[0]
    assert first.image_id.startswith("images/")
    assert (root / "cars_train" / first.image.name).exists()
    red, green, blue = Image.open(first.image).getpixel((0, 0))
    assert red > 200 and green < 50 and blue < 50  # the red test image, not the black train image


def test_missing_images_raise_with_count_and_examples(native_dataset):
    root, options_file = native_dataset("car-196")
    missing = sorted((root / "cars_test").iterdir())[:3]
    for path in missing:
        path.unlink()
    with pytest.raises(FileNotFoundError, match=r"3 of 10 car-196 test images are missing") as error:
        load_mc_items("car-196", root, options_file)
    assert str(missing[0]) in str(error.value) and "cars_test" in str(error.value)


def test_train_images_in_place_of_test_images_are_rejected(native_dataset):
    root, options_file = native_dataset("car-196")
    (root / "cars_test").rename(root / "cars_train")
    with pytest.raises(FileNotFoundError, match="10 of 10"):
        load_mc_items("car-196", root, options_file)


@pytest.mark.parametrize("name", sorted(TEST_SIZES))
def test_shipped_option_files(tmp_path, name):
    classes = json.loads(shipped_option_file(name).read_text())
    entries = [entry for class_entries in classes.values() for entry in class_entries]
    assert len(entries) == TEST_SIZES[name]
    assert all(len(entry["options"]) == 4 and entry["groundtruth"] in entry["options"] for entry in entries)
    # Nothing is on disk here: the error counts every image and names where the first was expected.
    with pytest.raises(FileNotFoundError, match=f"{TEST_SIZES[name]} of {TEST_SIZES[name]} {name}") as error:
        load_mc_items(name, tmp_path)
    expected_first = DATASETS[name].resolve(tmp_path, entries[0]["image"])
    assert str(expected_first) in str(error.value)


def test_shipped_license_notice_travels_with_the_files():
    readme = shipped_option_file("bird-200").parent / "README.md"
    assert "MIT" in readme.read_text() and "Gregor Geigle" in readme.read_text()


def test_seeded_shuffle_is_per_item_and_reproducible(native_dataset):
    root, options_file = native_dataset("pet-37", images_per_class=4)
    items = load_mc_items("pet-37", root, options_file)
    first = [item.shuffled_options(seed=0) for item in items]
    assert first == [item.shuffled_options(seed=0) for item in items]
    assert first != [item.shuffled_options(seed=1) for item in items]
    assert all(sorted(shuffled) == sorted(item.options) for shuffled, item in zip(first, items))
    # The seeded shuffle spreads the true class over positions instead of keeping the file's order.
    assert len({shuffled.index(item.groundtruth) for shuffled, item in zip(first, items)}) > 1


def test_unknown_dataset_and_imagefolder_without_options_file(tmp_path):
    with pytest.raises(ValueError, match="Unknown dataset"):
        load_mc_items("bird-2000", tmp_path)
    with pytest.raises(ValueError, match="no shipped option file"):
        load_mc_items("imagefolder", tmp_path)


def _write_options(native_dataset, edit) -> tuple:
    root, options_file = native_dataset("pet-37")
    classes = json.loads(options_file.read_text())
    edit(classes)
    options_file.write_text(json.dumps(classes))
    return root, options_file


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c[CLASS_NAMES[1]][0].pop("groundtruth"), r"has no 'groundtruth'"),
        (lambda c: c[CLASS_NAMES[1]][0].pop("image"), r"has no 'image'"),
        (lambda c: c[CLASS_NAMES[1]][0].__setitem__("options", "Siamese"), r"'options' must be a list"),
        (lambda c: c[CLASS_NAMES[2]][1]["options"].pop(1), r"3 options .*4 options"),  # one 3-way item among 4-way
        (lambda c: c[CLASS_NAMES[0]].append("images/x.jpg"), r"must be an object"),
        (lambda c: c.__setitem__(CLASS_NAMES[0], {"image": "images/x.jpg"}), r"must be a list"),
    ],
    ids=["no-groundtruth", "no-image", "options-not-a-list", "mixed-3-and-4-way", "entry-not-object", "not-a-list"],
)
def test_malformed_option_files_name_the_file_and_the_problem(native_dataset, edit, message):
    root, options_file = _write_options(native_dataset, edit)
    with pytest.raises(ValueError, match=message) as error:
        load_mc_items("pet-37", root, options_file)
    assert str(options_file) in str(error.value)


@pytest.mark.parametrize("text", ["{not json", "[]", "{}"], ids=["bad-json", "not-a-mapping", "empty"])
def test_option_file_that_is_not_a_class_mapping(tmp_path, text):
    options_file = tmp_path / "options.json"
    options_file.write_text(text)
    with pytest.raises(ValueError, match="options.json") as error:
        load_mc_items("imagefolder", tmp_path, options_file)
    assert str(options_file) in str(error.value)
