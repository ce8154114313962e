"""Recipe sections (YAML mappings) as the dataclasses they configure, checked key by key and value by value.

`HfArgumentParser.parse_dict` passes values through as YAML typed them, so `seed: abc` or `variants: finedefics`
would only fail (or silently misbehave) deep inside a run. Here every value is checked against its field's type
hint, converted the way the command line converts flags (`"1e-3"` for a float, `"true"` for a bool), and every
problem names the section and the field.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import types
import typing
from typing import Any, Literal, Union

_TRUE, _FALSE = {"true", "yes", "1"}, {"false", "no", "0"}


class _Mismatch(Exception):
    pass


def _convert(value: Any, hint: Any) -> Any:
    """`value` as the type `hint` describes, or `_Mismatch`."""
    if hint is Any or hint is typing.Any:
        return value
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        # Exact matches first, so that `str | SchedulerType` keeps a string and `int | None` keeps None.
        for arm in sorted(args, key=lambda arm: arm is not type(value)):
            try:
                return _convert(value, arm)
            except _Mismatch:
                continue
        raise _Mismatch
    if origin is Literal:
        if value in args:
            return value
        raise _Mismatch
    if origin in (list, tuple, set):
        if not isinstance(value, list | tuple):
            raise _Mismatch
        item = args[0] if args else Any
        return origin(_convert(element, item) for element in value)
    if origin is dict or hint is dict:
        if isinstance(value, dict):
            return value
        raise _Mismatch
    if hint is type(None):
        if value is None:
            return None
        raise _Mismatch
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise _Mismatch
    if hint in (int, float):
        if isinstance(value, bool):
            raise _Mismatch
        if isinstance(value, str):
            try:
                value = hint(value)
            except ValueError:
                raise _Mismatch from None
        if not (isinstance(value, int) or (hint is float and isinstance(value, float))):
            raise _Mismatch
        # nan and inf are floats YAML reads (.nan, .inf), but no recipe value means them.
        if not math.isfinite(value):
            raise _Mismatch
        return hint(value)
    if hint is str:
        if isinstance(value, str):
            return value
        raise _Mismatch
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        try:
            return hint(value)
        except ValueError:
            raise _Mismatch from None
    return value  # a type this check does not know: the dataclass validates it


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(arm) for arm in args)
    if origin is Literal:
        return "one of " + ", ".join(repr(arg) for arg in args)
    if origin in (list, tuple, set):
        return f"a list of {_describe(args[0])}" if args else "a list"
    if hint is type(None):
        return "null"
    if hint in (int, float):
        return f"a finite {hint.__name__}"
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return "one of " + ", ".join(repr(member.value) for member in hint)
    return getattr(hint, "__name__", str(hint))


def require_at_least_one(config: object, *names: str) -> None:
    """Refuse zero or negative sizes (batch sizes, token budgets, ...), naming the field."""
    for name in names:
        if getattr(config, name) < 1:
            raise ValueError(f"{name} must be at least 1, got {getattr(config, name)}.")


def require_in_range(config: object, name: str, low: float, high: float) -> None:
    """Refuse a value outside [low, high) (nan and inf included), naming the field."""
    value = getattr(config, name)
    if not (math.isfinite(value) and low <= value < high):
        raise ValueError(f"{name} must be in [{low}, {high}), got {value}.")


def require_training_length(config: object) -> None:
    """Refuse settings that train nothing or never stop (the Trainer takes max_steps 0 for zero steps, and
    epochs only when max_steps is negative), and a learning rate that cannot train."""
    if not (math.isfinite(config.learning_rate) and config.learning_rate > 0):
        raise ValueError(f"learning_rate must be a positive number, got {config.learning_rate}.")
    if not math.isfinite(config.num_train_epochs):
        raise ValueError(f"num_train_epochs must be finite, got {config.num_train_epochs}.")
    if config.max_steps == 0 or config.max_steps < -1:
        raise ValueError(f"max_steps must be positive, or -1 to train num_train_epochs; got {config.max_steps}.")
    if config.max_steps == -1 and config.num_train_epochs <= 0:
        raise ValueError(
            f"num_train_epochs is {config.num_train_epochs} and max_steps is unset: nothing would be trained."
        )


def check_field_types(config: object) -> None:
    """Check every field of the dataclass `config` against its type hint, as `parse_section` does for a recipe
    mapping: a command line's `--config` file reaches a dataclass without `parse_section`, and argparse leaves
    its non-string values (`seed: [1, 2]`, `variants: finedefics` for a list) as YAML typed them."""
    hints = typing.get_type_hints(type(config))
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        try:
            _convert(value, hints[field.name])
        except _Mismatch:
            raise ValueError(
                f"Recipe field `{field.name}` must be {_describe(hints[field.name])}, got {value!r}."
            ) from None


def convert_field(cls: type, name: str, value: Any, key: str) -> Any:
    """`value` as the type of the field `name` of the dataclass `cls`, or a `ValueError` naming the recipe `key`."""
    hint = typing.get_type_hints(cls)[name]
    try:
        return _convert(value, hint)
    except _Mismatch:
        raise ValueError(f"Recipe field `{key}` must be {_describe(hint)}, got {value!r}.") from None


def parse_section(cls: type, values: dict[str, Any], section: str) -> Any:
    """A `cls` dataclass from the recipe mapping `values`; unknown keys, values of the wrong type and values the
    dataclass refuses fail with a `ValueError` naming the section and the field."""
    where = "top level" if not section else f"`{section}` section"
    if not isinstance(values, dict):
        raise ValueError(f"The recipe's {where} must be a mapping of {cls.__name__} fields, got {values!r}.")
    fields = {field.name: field for field in dataclasses.fields(cls) if field.init}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"Unknown key(s) {unknown} in the recipe's {where} ({cls.__name__}).")
    converted = {
        name: convert_field(cls, name, value, f"{section}.{name}" if section else name)
        for name, value in values.items()
    }
    try:
        return cls(**converted)
    except (ValueError, TypeError) as error:
        raise ValueError(f"The recipe's {where} ({cls.__name__}): {error}") from error
