"""One reader for the YAML files that are data (configs, study files, evaluation sets): a mapping
checked against a dataclass, key by key, with "did you mean" suggestions and types.

    read_dataclass(EvalSet, raw, where="eval/sets/x.yaml", error=EvalSetError)

Each file kind keeps its own error class and its own extra checks (ranges, either-or keys); what
they share is here: a mapping and not something else, no unknown key (the closest valid one
suggested), each value of its annotated type (``int`` where a float is expected is accepted and
converted; YAML's yes/no booleans where a string is expected are named as such).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from typing import Any

from gan_colorize.registry import closest


class SchemaError(ValueError):
    """A value that does not fit its schema (the default error class)."""


# words for the types a message names: "expected a string, got 5 (int)"
TYPE_WORDS = {str: "a string"}


def type_name(tp: Any) -> str:
    return TYPE_WORDS.get(tp) or getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def location(where: str, prefix: str, default: str = "") -> str:
    """'s.yaml: eval' for the mapping at ``prefix`` 'eval.' of the file ``where``."""
    return ": ".join(part for part in (where, prefix.rstrip(".")) if part) or default


def key_names(cls: type, skip: tuple[str, ...] = ("path",)) -> list[str]:
    """The keys a file may hold for ``cls``: its fields, less those filled in by the reader."""
    return [f.name for f in dataclasses.fields(cls) if f.name not in skip]


def unknown_key_message(where: str, key: str, names: list[str], path: str = "") -> str:
    """The default unknown-key message; ``path``: the key's dotted path in the file (unused here)."""
    return f"{where}: unknown key {key!r}{closest(str(key), names)}; valid: {', '.join(names)}"


UnknownKey = Callable[[str, str, list[str], str], str]  # (where, key, valid keys, dotted path) -> message


def check_keys(
    data: Any,
    names: list[str],
    where: str,
    error: type[Exception] = SchemaError,
    unknown: UnknownKey = unknown_key_message,
    prefix: str = "",
) -> dict:
    """``data`` is a mapping whose keys are all in ``names``; ``where`` names it in the messages
    (``unknown(where, key, names, prefix + key)`` writes the unknown-key one)."""
    if not isinstance(data, dict):
        raise error(f"{where}: expected a mapping, got {data!r}")
    for key in data:
        if key not in names:
            raise error(unknown(where, key, names, f"{prefix}{key}"))
    return data


def coerce(value: Any, tp: Any, where: str, error: type[Exception] = SchemaError) -> Any:
    """Check ``value`` against the annotation ``tp`` (the subset the schemas use)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg, where, error)
            except error as exc:
                errors.append(str(exc))
        raise error(errors[0] if len(errors) == 1 else f"{where}: {value!r} fits none of {tp}")
    if origin is list:
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise error(f"{where}: expected a list, got {value!r}")
        (item_tp,) = typing.get_args(tp) or (Any,)
        return [coerce(v, item_tp, f"{where}[{i}]", error) for i, v in enumerate(value)]
    if tp is Any:
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):
        try:  # PyYAML reads '1e-4' (no dot) as a string
            return float(value)
        except ValueError:
            pass
    if tp is str and isinstance(value, bool):
        raise error(
            f"{where}: got {value!r}; YAML reads yes/no/on/off/true/false as booleans: "
            "quote the word ('\"no\"')"
        )
    if tp is bool and not isinstance(value, bool):
        raise error(f"{where}: expected true/false, got {value!r}")
    if tp is int and isinstance(value, bool):
        raise error(f"{where}: expected an integer, got {value!r}")
    if not isinstance(value, tp):
        raise error(f"{where}: expected {type_name(tp)}, got {value!r} ({type(value).__name__})")
    return value


def read_dataclass(
    cls: type,
    data: Any,
    where: str = "",
    error: type[Exception] = SchemaError,
    prefix: str = "",
    unknown: UnknownKey = unknown_key_message,
    skip: tuple[str, ...] = ("path",),
    default_where: str = "file",
) -> Any:
    """``cls(**data)`` with every key checked (:func:`check_keys`) and every value coerced to its
    field's annotation (:func:`coerce`); a field that is itself a dataclass is read the same way.
    Messages name a value as ``where: prefix.key`` (``where`` the file, ``prefix`` the dotted
    path of the mapping in it)."""
    here = location(where, prefix, default_where)
    names = key_names(cls, skip)
    check_keys(data, names, here, error, unknown, prefix)
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        tp, path = hints[key], f"{prefix}{key}"
        if dataclasses.is_dataclass(tp):
            kwargs[key] = read_dataclass(tp, value, where, error, f"{path}.", unknown, skip, default_where)
        else:
            kwargs[key] = coerce(value, tp, location(where, path), error)
    return cls(**kwargs)
