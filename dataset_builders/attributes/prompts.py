"""Every prompt of attribute description construction, in one place.

The defaults follow the paper (section 3.1) and the FineR prompts it builds on. Override any of them
with a YAML file whose keys are the field names of `AttributePrompts` (`--prompts my_prompts.yaml`);
unknown keys are an error so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import string
from dataclasses import dataclass, field
from pathlib import Path

import yaml

# "{superclass} {class_unit}": what the subordinate categories of a super-category are called.
CLASS_UNITS: dict[str, str] = {
    "bird": "species",
    "dog": "breeds",
    "aircraft": "models",
    "flower": "species",
    "pet": "breeds",
    "car": "models",
}

# FineR's in-context example for birds: what a good answer to the discovery prompt looks like.
DISCOVERY_EXAMPLE = (
    "['bill shape', 'wing color', 'upperparts color', 'underparts color', 'breast pattern', 'back color', "
    "'tail shape', 'upper tail color', 'head pattern', 'breast color', 'throat color', 'eye color', "
    "'bill length', 'forehead color', 'under tail color', 'nape color', 'belly color', 'wing shape', 'size', "
    "'shape', 'back pattern', 'tail pattern', 'belly pattern', 'primary color', 'leg color', 'bill color', "
    "'crown color', 'wing pattern', 'habitat']"
)

DISCOVERY_PROMPT = (
    "Your task is to tell me what are the useful attributes for distinguishing {superclass} {class_unit} "
    "in a photo of a {superclass}.\n"
    "Specifically, you can complete the task by following the instructions below:\n"
    "1 - I give you an example delimited by <> about what are the useful attributes for distinguishing bird "
    "species in a photo of a bird. You should understand and learn this example carefully.\n"
    "2 - List the useful attributes for distinguishing {superclass} {class_unit} in a photo of a {superclass}.\n"
    "3 - Output a Python list object that contains the listed useful attributes.\n"
    "===\n"
    "<bird species>\n"
    "The useful attributes for distinguishing bird species in a photo of a bird:\n"
    "{example}\n"
    "===\n"
    "<{superclass} {class_unit}>\n"
    "The useful attributes for distinguishing {superclass} {class_unit} in a photo of a {superclass}:"
)

GENERAL_QUESTION = "Questions: Describe this image in details. Answer:"
ATTRIBUTE_QUESTION = "Questions: Describe the {attribute} of the {superclass} in this photo. Answer:"

SUMMARIZATION_PROMPT = (
    "I have a photo of a {superclass}. Here is what is known about it.\n"
    "General description of the image: {general_description}\n"
    "Attribute descriptions:\n"
    "{attribute_descriptions}\n"
    "Summarize the information you get about the {superclass} from the general description and attribute "
    "description with five sentences."
)

# The tag-based baseline (paper appendix): the LLM describes each category from its name alone.
TAG_GENERAL_QUESTION = "Describe what a {category} {superclass} looks like in a photo."
TAG_ATTRIBUTE_QUESTION = "Describe the {attribute} of a {category} {superclass}."


# The placeholders each template is filled with (discovery_example is inserted as it is; general_question is sent as
# it is, with the image).
PLACEHOLDERS: dict[str, set[str]] = {
    "discovery": {"superclass", "class_unit", "example"},
    "general_question": set(),
    "attribute_question": {"attribute", "superclass"},
    "summarization": {"superclass", "general_description", "attribute_descriptions"},
    "tag_general_question": {"category", "superclass"},
    "tag_attribute_question": {"attribute", "category", "superclass"},
}


def _check_placeholders(path: Path, name: str, template: object) -> None:
    """Refuse a template whose placeholders its step does not fill: `{foo}` would fail at its first request."""
    if not isinstance(template, str):
        raise ValueError(f"{path}: {name} must be a string template, got {template!r}.")
    try:
        used = {field for _, field, _, _ in string.Formatter().parse(template) if field is not None}
    except ValueError as error:
        raise ValueError(
            f"{path}: {name} is not a valid template ({error}); write a literal brace as {{{{ or }}}}."
        ) from None
    if unknown := sorted(used - PLACEHOLDERS[name]):
        allowed = ", ".join(f"{{{field}}}" for field in sorted(PLACEHOLDERS[name])) or "none"
        raise ValueError(f"{path}: {name} uses {', '.join(f'{{{f}}}' for f in unknown)}; its placeholders: {allowed}.")


@dataclass
class AttributePrompts:
    """The prompt templates of the three construction steps (and of the tag-based baseline).

    Placeholders: `{superclass}`, `{class_unit}`, `{example}` (discovery); `{attribute}` (attribute
    questions); `{general_description}`, `{attribute_descriptions}` (summarization); `{category}` (tags).
    """

    discovery: str = DISCOVERY_PROMPT
    discovery_example: str = DISCOVERY_EXAMPLE
    general_question: str = GENERAL_QUESTION
    attribute_question: str = ATTRIBUTE_QUESTION
    summarization: str = SUMMARIZATION_PROMPT
    tag_general_question: str = TAG_GENERAL_QUESTION
    tag_attribute_question: str = TAG_ATTRIBUTE_QUESTION
    class_units: dict[str, str] = field(default_factory=lambda: dict(CLASS_UNITS))

    @classmethod
    def from_yaml(cls, path: str | Path) -> AttributePrompts:
        path = Path(path)
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(values, dict):
            raise ValueError(f"{path} must hold a mapping of prompt names to templates, got {type(values).__name__}.")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{path}: unknown prompt key(s) {unknown}; known keys are {sorted(known)}.")
        for name, template in values.items():
            if name in PLACEHOLDERS:
                _check_placeholders(path, name, template)
        return cls(**values)

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)

    def discovery_prompt(self, superclass: str) -> str:
        class_unit = self.class_units.get(superclass, "categories")
        return self.discovery.format(superclass=superclass, class_unit=class_unit, example=self.discovery_example)

    def attribute_prompt(self, attribute: str, superclass: str) -> str:
        return self.attribute_question.format(attribute=attribute, superclass=superclass)

    def summarization_prompt(self, superclass: str, general_description: str, answers: dict[str, str]) -> str:
        lines = "\n".join(f"- {attribute}: {answer}" for attribute, answer in answers.items())
        return self.summarization.format(
            superclass=superclass, general_description=general_description, attribute_descriptions=lines
        )
