"""Prompt templates: plain `{field}` names and nothing else.

Templates used to be Python format strings, and a format string is a small language:
`{text.__class__.__mro__}` and `{text.__init__.__globals__}` walk objects (class names, module
globals in the prompt), `{text:>500000000}` pads to half a gigabyte, and `{unclosed` raised only
in the worker. Since the routing file is stored in the ledger and rendered by workers, whoever
can write either could use that. So a template may hold `{name}` (an identifier) and `{{`/`}}`
for literal braces; no attribute or index access, no conversion (`!r`), no format spec.

`template_fields` is the one check, used when the routing file is loaded (at submit, and by
every worker from the ledger's copy) and again by `render` (so a template that reached a worker
without passing the load check is refused there too, never evaluated). `render` never calls
`str.format`: it joins the parsed literal pieces and the values itself.
"""

from __future__ import annotations

import string
from collections.abc import Mapping

_FORMATTER = string.Formatter()


class TemplateError(ValueError):
    """A template outside the plain-`{field}` rule, or a field a render cannot fill."""


def template_fields(template: str) -> list[str]:
    """The field names `template` uses, in order of first use; TemplateError for anything but
    plain `{name}` fields and `{{`/`}}`."""
    fields: list[str] = []
    for _literal, field, spec, conversion in _parse(template):
        if field is None:
            continue
        written = (
            "{"
            + field
            + (f"!{conversion}" if conversion else "")
            + (f":{spec}" if spec else "")
            + "}"
        )
        if not field.isidentifier():
            raise TemplateError(
                f"{written}: only plain {{name}} fields are allowed (no attribute or index "
                "access); write {{ and }} for literal braces"
            )
        if conversion is not None:
            raise TemplateError(f"{written}: conversions (!r, !s, !a) are not allowed")
        if spec:
            raise TemplateError(f"{written}: format specs (after ':') are not allowed")
        if field not in fields:
            fields.append(field)
    return fields


def render(template: str, values: Mapping[str, object], *, keep_missing: bool = True) -> str:
    """`template` with each `{name}` replaced by `str(values[name])`. A name `values` lacks is
    kept as written (`keep_missing`) or is a TemplateError."""
    template_fields(template)  # the same rule as at load: refuse rather than evaluate
    pieces: list[str] = []
    for literal, field, _spec, _conversion in _parse(template):
        pieces.append(literal)
        if field is None:
            continue
        if field in values:
            pieces.append(str(values[field]))
        elif keep_missing:
            pieces.append("{" + field + "}")
        else:
            raise TemplateError(f"the item has no field {field!r}")
    return "".join(pieces)


def _parse(template: str) -> list[tuple[str, str | None, str | None, str | None]]:
    try:
        return list(_FORMATTER.parse(template))
    except ValueError as exc:  # "expected '}' before end of string", "Single '}' encountered"
        raise TemplateError(
            f"unbalanced braces ({exc}); write {{{{ and }}}} for literal braces"
        ) from None
