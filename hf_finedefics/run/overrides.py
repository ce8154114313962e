"""Recipe keys set from `finedefics run`'s command line: `--stage1.learning_rate 1e-4`, `--model.lora_r 16`,
`--data.synthetic.num_categories 10`, or a whole section's keys at once (`--stage2 '{"learning_rate": 1e-4}'`).

Each value is read as YAML (`16` an int, `true` a bool, `[a, b]` a list, `1e-4` converted to a float as a recipe's
would be) and checked against the field it sets; an unknown section or key fails naming it and listing the valid
ones. This module imports the training configs (and torch): `finedefics run` loads it only when a key is set.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import typing
from collections.abc import Sequence
from typing import Any

import yaml

from ..recipe_sections import convert_field
from .recipe import DATA_KINDS, SECTIONS


def read_value(text: str) -> Any:
    """A command-line value as YAML reads it."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text  # not YAML (e.g. an unbalanced bracket): the field's check names it


def _unknown(what: str, name: str, valid: Sequence[str], key: str, what_name: str = "key") -> ValueError:
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return ValueError(f"--{key}: {what} has no {what_name} `{name}`{hint}; valid: {', '.join(valid)}.")


def _takes_mapping(cls: type, name: str) -> bool:
    hint = typing.get_type_hints(cls)[name]
    return hint is dict or dict in (typing.get_origin(hint), *map(typing.get_origin, typing.get_args(hint)))


def _set_keys(values: dict[str, Any], cls: type, path: list[str], value: Any, where: str, key: str) -> None:
    """Set the key `path` of the section `values` (configuring `cls`, named `where` in the recipe)."""
    if not path:  # the section itself: a mapping of its keys
        if not isinstance(value, dict):
            raise ValueError(f"--{key} takes a mapping of {cls.__name__} keys, or one key as --{key}.KEY VALUE.")
        for name, item in value.items():
            _set_keys(values, cls, [str(name)], item, where, f"{key}.{name}")
        return
    name, *rest = path
    fields = [field.name for field in dataclasses.fields(cls) if field.init]
    if name not in fields:
        raise _unknown(f"`{where}` ({cls.__name__})", name, sorted(fields), key)
    if rest:  # a key inside a mapping-valued field (e.g. model.processor_kwargs.do_image_splitting)
        if not _takes_mapping(cls, name):
            raise ValueError(f"--{key}: `{where}.{name}` is not a mapping.")
        mapping = values[name] if isinstance(values.get(name), dict) else {}
        nested = mapping
        for part in rest[:-1]:
            nested = nested.setdefault(part, {})
        nested[rest[-1]] = value
        value = mapping
    convert_field(cls, name, value, f"{where}.{name}")  # a value of the wrong type fails here, naming the key
    values[name] = value


def override_recipe(recipe: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    """`recipe` (a run recipe's top level, as a mapping) with the dotted `key` set to `value`. Setting a kind of
    `data` (`data.dataset`, `data.build.*`, ...) replaces the recipe's other kind: a run reads one."""
    recipe = copy.deepcopy(recipe)
    section, *path = key.split(".")
    if section not in SECTIONS:
        raise _unknown("a run recipe", section, list(SECTIONS), key, what_name="section")
    cls, where = SECTIONS[section], section
    values = recipe.setdefault(section, {})
    if section == "data":
        if not path:
            if not isinstance(value, dict) or len(value) != 1:
                raise ValueError(f"--{key} takes one of {', '.join(DATA_KINDS)}, e.g. --data.dataset FOLDER.")
            path, value = [next(iter(value))], next(iter(value.values()))
        kind, *path = path
        if kind not in DATA_KINDS:
            raise _unknown("`data`", kind, list(DATA_KINDS), key, what_name="kind")
        recipe["data"] = values = {kind: values.get(kind, {})}
        if kind == "dataset":
            if path:
                raise ValueError(f"--{key}: `data.dataset` is a folder, it has no keys.")
            values["dataset"] = value
            return recipe
        cls, where, values = DATA_KINDS[kind], f"data.{kind}", values[kind]
    _set_keys(values, cls, path, value, where, key)
    return recipe
