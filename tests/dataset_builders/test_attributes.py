import pytest

from dataset_builders import load_source
from dataset_builders.attributes import (
    AttributeDescriber,
    AttributePrompts,
    GenerationRequest,
    cub_ground_truth_descriptions,
    parse_attribute_list,
    remove_attribute_types,
)
from dataset_builders.cache import AnswerCache

from . import layouts
from .conftest import Interrupted, RecordingBackend


def test_parse_attribute_list_reads_the_first_python_list():
    reply = "Sure! Here they are:\n['Wing Shape', 'engine count', \"tail fin\", 'wing shape']\nAnd ['ignored']"
    assert parse_attribute_list(reply) == ["wing shape", "engine count", "tail fin"]


def test_parse_attribute_list_falls_back_to_lines():
    reply = "1. Ear shape\n2) coat colour\n- snout length\n* a sentence that is far too long to be an attribute name"
    assert parse_attribute_list(reply) == ["ear shape", "coat colour", "snout length"]
    assert parse_attribute_list("a, b, c, d", max_attributes=2) == ["a", "b"]


def test_remove_attribute_types():
    attributes = ["wing color", "bill shape", "breast pattern", "size", "bill length", "habitat"]
    assert remove_attribute_types(attributes, ["color", "size"]) == ["bill shape", "breast pattern", "habitat"]
    assert remove_attribute_types(attributes, ["shape", "texture"]) == ["wing color", "size", "bill length", "habitat"]
    with pytest.raises(ValueError, match="Unknown attribute type"):
        remove_attribute_types(attributes, ["smell"])


def test_prompts_are_configurable_from_yaml(tmp_path):
    path = tmp_path / "prompts.yaml"
    path.write_text("general_question: 'What is in this picture?'\nclass_units: {bird: kinds}\n")
    prompts = AttributePrompts.from_yaml(path)
    assert prompts.general_question == "What is in this picture?"
    assert "distinguishing bird kinds in a photo of a bird" in prompts.discovery_prompt("bird")
    path.write_text("general_questoin: 'typo'\n")
    with pytest.raises(ValueError, match="general_questoin"):
        AttributePrompts.from_yaml(path)


def test_local_backend_batches_like_single_requests(idefics2_backend, tmp_path):
    images = [
        layouts.write_image(tmp_path / f"{i}.png", layouts.PALETTE[i], size=16 + 4 * i).read_bytes() for i in range(3)
    ]
    requests = [GenerationRequest("Describe this image in details.", image) for image in images]
    requests.append(GenerationRequest("Summarize the information you get about the bird with five sentences."))
    batched = idefics2_backend.generate(requests)
    single = [idefics2_backend.generate([request])[0] for request in requests]
    assert batched == single
    assert all(isinstance(answer, str) for answer in batched)


@pytest.fixture
def bird_folder(tmp_path):
    return load_source(
        "imagefolder", layouts.make_image_folder(tmp_path / "birds", ["jay", "wren"], 2), "train", "bird"
    )


ATTRIBUTES = {"bird": ["wing color", "bill shape"]}


def test_pipeline_runs_all_three_steps(idefics2_backend, bird_folder, tmp_path):
    llm, vqa = RecordingBackend(idefics2_backend), RecordingBackend(idefics2_backend)
    describer = AttributeDescriber(llm, vqa, AnswerCache(tmp_path / "cache.sqlite"), chunk_size=3)
    answers = list(describer.iter_describe(bird_folder))

    assert len(answers) == bird_folder.num_rows
    attributes = describer.discovered["bird"]
    assert attributes  # parsed from the LLM's reply
    assert "useful attributes for distinguishing bird species" in llm.requests[0].prompt
    # Extraction: one general question and one per attribute for each image, all with the image.
    assert len(vqa.requests) == bird_folder.num_rows * (1 + len(attributes))
    assert all(request.image is not None for request in vqa.requests)
    assert {request.prompt for request in vqa.requests} == {
        "Questions: Describe this image in details. Answer:",
        *(f"Questions: Describe the {a} of the bird in this photo. Answer:" for a in attributes),
    }
    # Summarization: one text-only prompt per image carrying that image's answers.
    summaries = llm.requests[1:]
    assert len(summaries) == bird_folder.num_rows and all(request.image is None for request in summaries)
    for answer, request in zip(answers, summaries):
        assert f"General description of the image: {answer.general}" in request.prompt
        assert "with five sentences" in request.prompt
        assert list(answer.attributes) == attributes
    assert [a.description for a in answers] == describer.describe(bird_folder)


def test_killed_build_resumes_without_redoing_work(idefics2_backend, bird_folder, tmp_path):
    cache_path = tmp_path / "cache.sqlite"
    questions_per_image = 1 + len(ATTRIBUTES["bird"])
    total_vqa = bird_folder.num_rows * questions_per_image

    vqa = RecordingBackend(idefics2_backend, stop_after=questions_per_image * 2)
    first = AttributeDescriber(
        RecordingBackend(idefics2_backend), vqa, AnswerCache(cache_path), attributes=ATTRIBUTES, chunk_size=2
    )
    with pytest.raises(Interrupted):
        first.describe(bird_folder)
    assert len(vqa.requests) == questions_per_image * 2  # the first chunk finished before the kill

    llm, vqa = RecordingBackend(idefics2_backend), RecordingBackend(idefics2_backend)
    resumed = AttributeDescriber(llm, vqa, AnswerCache(cache_path), attributes=ATTRIBUTES, chunk_size=2)
    descriptions = resumed.describe(bird_folder)
    assert len(vqa.requests) == total_vqa - questions_per_image * 2
    assert len(llm.requests) == bird_folder.num_rows - 2  # summaries of the first chunk were cached too

    llm, vqa = RecordingBackend(idefics2_backend), RecordingBackend(idefics2_backend)
    again = AttributeDescriber(llm, vqa, AnswerCache(cache_path), attributes=ATTRIBUTES, chunk_size=2)
    assert again.describe(bird_folder) == descriptions
    assert llm.requests == vqa.requests == []


def test_cache_key_includes_image_content_and_model(idefics2_backend, bird_folder, tmp_path):
    cache = AnswerCache(tmp_path / "cache.sqlite")
    AttributeDescriber(idefics2_backend, idefics2_backend, cache, attributes=ATTRIBUTES).describe(bird_folder)
    entries = len(cache)
    # Four distinct images x (3 questions + 1 summary); attributes were given, so no discovery prompt.
    assert entries == bird_folder.num_rows * (1 + len(ATTRIBUTES["bird"]) + 1)
    idefics2_backend.max_new_tokens += 1  # different generation settings are a different model for the cache
    try:
        AttributeDescriber(idefics2_backend, idefics2_backend, cache, attributes=ATTRIBUTES).describe(
            bird_folder.select([0])
        )
    finally:
        idefics2_backend.max_new_tokens -= 1
    assert len(cache) == entries + 4


def test_attribute_type_removal_reaches_extraction(idefics2_backend, bird_folder, tmp_path):
    vqa = RecordingBackend(idefics2_backend)
    attributes = {"bird": ["wing color", "bill shape", "size", "breast pattern"]}
    describer = AttributeDescriber(
        idefics2_backend,
        vqa,
        AnswerCache(tmp_path / "c.sqlite"),
        attributes=attributes,
        removed_attribute_types=["color", "size"],
    )
    describer.describe(bird_folder.select([0]))
    asked = {request.prompt for request in vqa.requests}
    assert any("bill shape" in prompt for prompt in asked) and any("breast pattern" in prompt for prompt in asked)
    assert not any("wing color" in prompt or "the size" in prompt for prompt in asked)


def test_tag_baseline_describes_each_class_without_images(idefics2_backend, bird_folder, tmp_path):
    llm = RecordingBackend(idefics2_backend)
    describer = AttributeDescriber(llm, idefics2_backend, AnswerCache(tmp_path / "c.sqlite"), attributes=ATTRIBUTES)
    descriptions = describer.describe_by_class(bird_folder)
    assert all(request.image is None for request in llm.requests)
    # Two classes x (general + 2 attributes + summary).
    assert len(llm.requests) == 2 * 4
    assert any(request.prompt == "Describe the wing color of a jay bird." for request in llm.requests)
    by_label = dict(zip(bird_folder["label"], descriptions))
    assert descriptions == [by_label[label] for label in bird_folder["label"]]


def test_cub_ground_truth_descriptions(tmp_path):
    data_dir = layouts.make_cub(tmp_path)
    train = load_source("bird-200", data_dir, "train")
    descriptions = cub_ground_truth_descriptions(train, data_dir)
    assert descriptions == ["Bill shape: curved (up or down).", "Wing color: blue.", "Wing color: white."]
    with pytest.raises(ValueError, match="bird-200"):
        cub_ground_truth_descriptions(train.remove_columns("cub_image_id"), data_dir)
