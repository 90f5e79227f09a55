"""What every model of the routing file shares: unknown keys are errors, and a validation error
is reported at the path and line of the node it is about, with "did you mean" for a typo.

A misspelt key used to load silently (`defered: true` paid full price, `max_item_cost:` set no
cap), so every model forbids extra keys and the message suggests the close known names.
"""

from __future__ import annotations

import difflib
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict

Loc = tuple[str | int, ...]


class StrictModel(BaseModel):
    """A routing-file model: a key it does not know is an error, never ignored."""

    model_config = ConfigDict(extra="forbid")


def walk_loc(root: type[BaseModel], loc: Loc) -> tuple[Loc, list[type | None]]:
    """`loc` without the tags pydantic inserts for union members (`checks.0.regex.pattern` ->
    `checks.0.pattern`, `deferred.list[str].0` -> `deferred.0`), so it names the file's own
    nodes; and, for each part left, the model whose mapping holds it (None where unknown)."""
    cleaned: list[str | int] = []
    holders: list[type | None] = []
    parts = list(loc)
    annotation: Any = root
    while parts:
        annotation = _settle(annotation, parts)
        if not parts:
            break
        part = parts.pop(0)
        cleaned.append(part)
        holders.append(annotation if _is_model(annotation) else None)
        annotation = _child_annotation(annotation, part)
    return tuple(cleaned), holders


def unknown_key_message(key: str, holder: type | None) -> str:
    """`unknown key 'max_atempts'; did you mean 'max_attempts'?` from the holder's keys."""
    if holder is None or not _is_model(holder):
        return f"unknown key {key!r}"
    known = known_keys(holder)
    close = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
    if close:
        return f"unknown key {key!r}; did you mean {' or '.join(repr(c) for c in close)}?"
    return f"unknown key {key!r}; known keys here: {', '.join(known)}"


def known_keys(model: type[BaseModel]) -> list[str]:
    """The keys a model accepts: its field names and their aliases."""
    names: list[str] = []
    for name, info in model.model_fields.items():
        for key in (info.alias, name):
            if key and key not in names and not key.endswith("_"):
                names.append(key)
    return names


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _settle(annotation: Any, parts: list[str | int]) -> Any:
    """Unwrap Annotated and Optional; at a union of several members, take its tag off `parts`
    and go on with the member it names (None when it cannot be told)."""
    while annotation is not None:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin is Union or origin is types.UnionType:
            members = [m for m in get_args(annotation) if m is not type(None)]
            if len(members) == 1:
                annotation = members[0]
                continue
            if not parts:
                return None  # an error about the union itself (e.g. an unknown `kind`)
            annotation = _member_for(members, parts.pop(0))
        else:
            return annotation
    return None


def _member_for(members: list[Any], tag: str | int) -> Any:
    for member in members:
        if _is_model(member):
            for info in member.model_fields.values():
                literal = get_origin(info.annotation) is Literal
                if literal and info.default == tag:  # a discriminated union's tag
                    return member
        elif str(member) == tag or getattr(member, "__name__", None) == tag:
            return member
    return None


def _child_annotation(annotation: Any, part: str | int) -> Any:
    if _is_model(annotation):
        for name, info in annotation.model_fields.items():
            if part in (name, info.alias):
                return info.annotation
        return None
    origin = get_origin(annotation)
    if origin is dict:
        return get_args(annotation)[1]
    if origin is list:
        return get_args(annotation)[0]
    return None
