"""Importable targets for dotted-path checks in the tests (pydantic models, custom checks)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from routing.checks import Verdict


class Ticket(BaseModel):
    label: str
    priority: int = Field(ge=1, le=5)


NOT_A_MODEL = 42


def mentions(output: str, source: str, word: str = "refund") -> tuple[bool, str]:
    found = word in output.lower()
    return found, f"{'mentions' if found else 'does not mention'} {word!r}"


def scored(output: str, source: str) -> tuple[bool, str, float]:
    return len(output) > 3, "long enough", 0.7


def as_verdict(output: str, source: str) -> Verdict:
    return Verdict("mine", True, "fine", 0.9)


def just_bool(output: str, source: str) -> bool:
    return output.isupper()


def explodes(output: str, source: str) -> bool:
    raise ZeroDivisionError("odd output: " + output[:10])


def wrong_type(output: str, source: str) -> object:
    return {"passed": True}
