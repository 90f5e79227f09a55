"""A check of your own, named by dotted path (or entry point) and imported when the routing file
is loaded, only if this host allows it (routing/checks/imports.py).

The function is called as `function(output, source, **options)` and returns a bool, a
`(passed, reason)` or `(passed, reason, score)` tuple, or a `Verdict`. If it raises, the attempt
fails that check with the exception's text (the worker carries on).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import Field, PrivateAttr, ValidationInfo, field_validator, model_validator

from routing.checks.base import CheckBase, CheckInput, Verdict
from routing.checks.imports import resolve_allowed, resolving


def _callable(path: str) -> Callable[..., Any]:
    target = resolve_allowed(path)
    if not callable(target):
        raise ValueError(f"{path!r} is a {type(target).__name__}, not a function")
    return target  # type: ignore[no-any-return]


class CustomCheck(CheckBase):
    kind: Literal["custom"] = "custom"
    # "package.module:function" or an entry point name, allowed by every host that loads the
    # file: the submitting one and each worker (BATCHROUTER_ALLOWED_CHECKS, batchrouter.checks)
    function: str = Field(min_length=1)
    options: dict[str, Any] = Field(default_factory=dict)  # passed as keyword arguments
    name: str | None = None  # how verdicts name it (default: custom:<function>)
    _func: Callable[..., Any] | None = PrivateAttr(default=None)

    @field_validator("function")
    @classmethod
    def _imports(cls, value: str, info: ValidationInfo) -> str:
        if resolving(info.context):  # here, so a refusal names the `function:` line
            _callable(value)
        return value

    @model_validator(mode="after")
    def _resolve(self, info: ValidationInfo) -> CustomCheck:
        if resolving(info.context):
            self._func = _callable(self.function)
        return self

    def verdict_name(self) -> str:
        return self.name or f"custom:{self.function.replace(':', '.').rsplit('.', 1)[-1]}"

    def run(self, given: CheckInput) -> Verdict:
        func = self._func or _callable(self.function)
        result = func(given.output, given.source, **self.options)
        name = self.verdict_name()
        if isinstance(result, Verdict):
            return result
        if isinstance(result, bool):
            return Verdict(name, result, "passed" if result else "failed", float(result))
        if isinstance(result, tuple) and len(result) in (2, 3) and isinstance(result[0], bool):
            score = float(result[2]) if len(result) == 3 else float(result[0])
            return Verdict(name, result[0], str(result[1]), score)
        raise TypeError(
            f"{self.function} returned {type(result).__name__}; expected a bool, "
            "(passed, reason[, score]) or a Verdict"
        )
