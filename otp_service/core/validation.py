"""Every schema error of a JSON value, not only the first, which is where msgspec stops.

A request body is converted with ``msgspec.convert``, which raises at the first field that
does not fit. An admin writing a tenant's settings would then fix one field per request;
``every_error`` walks the value against the same types instead (struct fields, list items,
dict keys and values), converting each part alone, so one 422 lists every bad field.

The parts are checked by msgspec itself, with the same annotations (``Meta`` constraints
included) and ``strict=True``, so a part is refused here exactly when the whole would be
refused for it, with msgspec's own words. Unions are checked whole (their message names
every accepted type). Should the walk ever find nothing although the whole was refused,
msgspec's one error is reported, never none.
"""

from __future__ import annotations

import typing
from typing import Annotated, Any, Final, NamedTuple

import msgspec

from otp_service.errors import split_validation_message

_SHOWN_KEY: Final = 64
"""A refused dict key is quoted in its message up to this many characters."""


class FieldError(NamedTuple):
    """One bad part of a value: where (``field``, e.g. ``senders.GB[0].from``) and why."""

    field: str
    message: str


class _Found(NamedTuple):
    field: str
    message: str
    msgspec_path: str  # msgspec's spelling of the place: a dict's values are all ``[...]``
    msgspec_message: str  # what msgspec says of it, without the place


def _join(path: str, part: str) -> str:
    if not part:
        return path
    return f"{path}{part}" if not path or part.startswith("[") else f"{path}.{part}"


def _leaf(value: object, annotation: object, field: str, path: str) -> list[_Found]:
    """Convert ``value`` whole; its first error, placed below ``field``."""
    try:
        msgspec.convert(value, annotation, strict=True)
    except msgspec.ValidationError as exc:
        inner, message = split_validation_message(str(exc))
        return [_Found(_join(field, inner), message, _join(path, inner), message)]
    return []


def _with_metadata(base: object, metadata: tuple[object, ...]) -> object:
    """``Annotated[base, *metadata]``: a container's own constraints (sizes), items aside."""
    return Annotated.__class_getitem__((base, *metadata)) if metadata else base  # type: ignore[attr-defined]


def _unannotated(annotation: object) -> tuple[object, tuple[object, ...]]:
    """Split ``Annotated[T, Meta(...)]`` into ``T`` and its metadata."""
    if typing.get_origin(annotation) is Annotated:
        base, *metadata = typing.get_args(annotation)
        return base, tuple(metadata)
    return annotation, ()


def _struct(
    value: dict[Any, Any], cls: type[msgspec.Struct], field: str, path: str
) -> list[_Found]:
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = {f.encode_name: f for f in msgspec.structs.fields(cls)}
    found: list[_Found] = []
    if cls.__struct_config__.forbid_unknown_fields:
        found += [
            _Found(field, unknown, path, unknown)
            for key in value
            if key not in fields
            for unknown in [f"Object contains unknown field `{key}`"]
        ]
    for name, info in fields.items():
        if name in value:
            found += _walk(value[name], hints[info.name], _join(field, name), _join(path, name))
        elif info.required:
            missing = f"Object missing required field `{name}`"
            found.append(_Found(field, missing, path, missing))
    return found


def _walk(value: object, annotation: object, field: str, path: str) -> list[_Found]:
    base, metadata = _unannotated(annotation)
    origin = typing.get_origin(base) or base
    args = typing.get_args(base)
    if isinstance(origin, type) and issubclass(origin, msgspec.Struct) and isinstance(value, dict):
        return _struct(value, origin, field, path)
    if origin is list and isinstance(value, list) and args:
        found = _leaf(value, _with_metadata(list[Any], metadata), field, path)
        for index, item in enumerate(value):
            found += _walk(item, args[0], f"{field}[{index}]", f"{path}[{index}]")
        return found
    if origin is dict and isinstance(value, dict) and len(args) == 2:  # noqa: PLR2004
        key_type, value_type = args
        found = _leaf(value, _with_metadata(dict[Any, Any], metadata), field, path)
        for key, item in value.items():
            shown = key if len(str(key)) <= _SHOWN_KEY else f"{str(key)[:_SHOWN_KEY]}..."
            found += [
                bad._replace(message=f"{bad.message}, got `{shown}`")
                for bad in _leaf(key, key_type, field, path)
            ]
            found += _walk(item, value_type, _join(field, str(key)), f"{path}[...]")
        return found
    return _leaf(value, annotation, field, path)


def every_error(
    value: object, annotation: object, first: msgspec.ValidationError
) -> list[FieldError]:
    """List every part of ``value`` that ``annotation`` refuses, ``first`` (msgspec's) first.

    ``first`` is the error converting the whole raised; it stays first so that whatever
    reads the first error (the problem's ``detail``, the error ``code`` chosen by field)
    reads what it read before.
    """
    try:
        found = _walk(value, annotation, "", "")
    except RecursionError:  # a value nested deeper than the interpreter goes: the first will do
        found = []
    path, message = split_validation_message(str(first))
    leading = next(
        (f for f in found if (f.msgspec_path, f.msgspec_message) == (path, message)), None
    )
    ordered = [leading or _Found(path, message, path, message)]
    ordered += [f for f in found if f is not leading]
    return [FieldError(f.field, f.message) for f in ordered]
