"""Checks on structured output: JSON (with a JSON Schema or a pydantic model), Python code."""

from __future__ import annotations

import ast
import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from routing.checks.base import (
    CheckBase,
    CheckInput,
    Verdict,
    extract_fenced,
    shorten,
)
from routing.checks.imports import resolve_allowed, resolving
from routing.templates import TemplateError, render, template_fields

MAX_ERRORS_SHOWN = 3


def _schema_validator(schema: dict[str, Any]) -> Any:
    """A jsonschema validator for `schema` (draft from its `$schema`, else 2020-12)."""
    import jsonschema
    from jsonschema.exceptions import SchemaError

    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        raise ValueError(f"not a valid JSON Schema at {where}: {exc.message}") from None
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


@lru_cache(maxsize=64)
def _read_schema_file(path: str, mtime_ns: int) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc.msg} (line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a JSON Schema must be an object")
    return data


def load_schema_file(path: str) -> dict[str, Any]:
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"schema file {path!r} not found (from {Path.cwd()})")
    return _read_schema_file(str(file.resolve()), file.stat().st_mtime_ns)


class JsonCheck(CheckBase):
    """The output is JSON (``` fences are stripped first) that validates against an inline JSON
    Schema (`schema`), a schema file (`schema_file`), or a pydantic model (`model`, a dotted
    path or entry point resolved at load, if the host allows it: routing/checks/imports.py). With none of them, the JSON only has to parse."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    kind: Literal["json"] = "json"
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    schema_file: str | None = None
    model: str | None = None
    _validator: Any = PrivateAttr(default=None)
    _model: type[BaseModel] | None = PrivateAttr(default=None)

    @field_validator("schema_")
    @classmethod
    def _schema_is_valid(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            _schema_validator(value)
        return value

    @field_validator("schema_file")
    @classmethod
    def _schema_file_is_valid(cls, value: str | None) -> str | None:
        if value is not None:
            _schema_validator(load_schema_file(value))
        return value

    @field_validator("model")
    @classmethod
    def _model_imports(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and resolving(info.context):
            _pydantic_model(value)
        return value

    @model_validator(mode="after")
    def _one_target(self, info: ValidationInfo) -> JsonCheck:
        given = [
            name
            for name, value in (
                ("schema", self.schema_),
                ("schema_file", self.schema_file),
                ("model", self.model),
            )
            if value is not None
        ]
        if len(given) > 1:
            raise ValueError(f"give at most one of schema, schema_file, model (got {given})")
        if self.schema_ is not None:
            self._validator = _schema_validator(self.schema_)
        elif self.schema_file is not None:
            self._validator = _schema_validator(load_schema_file(self.schema_file))
        elif self.model is not None and resolving(info.context):
            self._model = _pydantic_model(self.model)
        return self

    def output_schema(self) -> dict[str, Any] | None:
        """The JSON Schema to ask the provider for (structured output), when there is one."""
        if self.schema_ is not None:
            return self.schema_
        if self.schema_file is not None:
            return load_schema_file(self.schema_file)
        if self._model is not None:
            return self._model.model_json_schema()
        return None

    def run(self, given: CheckInput) -> Verdict:
        text = extract_fenced(given.output, ("json", "jsonc"))
        if not text:
            return Verdict(self.kind, False, "empty output, no JSON", 0.0)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            return Verdict(
                self.kind,
                False,
                f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})",
                0.0,
            )
        if self._validator is not None:
            from jsonschema.exceptions import relevance

            errors = sorted(self._validator.iter_errors(data), key=relevance)
            if errors:
                shown = "; ".join(
                    f"at {_json_path(e.absolute_path)}: {shorten(e.message, 100)}"
                    for e in errors[:MAX_ERRORS_SHOWN]
                )
                more = f" (+{len(errors) - MAX_ERRORS_SHOWN} more)" if len(errors) > 3 else ""
                return Verdict(self.kind, False, f"schema: {shown}{more}", 0.0)
        if self.model is not None and self._model is None:  # loaded with resolve_code=False
            self._model = _pydantic_model(self.model)
        if self._model is not None:
            try:
                self._model.model_validate(data)
            except ValidationError as exc:
                problems = exc.errors()
                shown = "; ".join(
                    f"at {_json_path(p['loc'])}: {p['msg']}" for p in problems[:MAX_ERRORS_SHOWN]
                )
                return Verdict(self.kind, False, f"{self._model.__name__}: {shown}", 0.0)
        return Verdict(self.kind, True, "valid JSON", 1.0, normalized=text)


def _pydantic_model(path: str) -> type[BaseModel]:
    target = resolve_allowed(path)
    if not (isinstance(target, type) and issubclass(target, BaseModel)):
        raise ValueError(f"{path!r} is a {type(target).__name__}, not a pydantic model class")
    return target


def _json_path(parts: Any) -> str:
    path = "$"
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


class PythonCheck(CheckBase):
    """The output is Python that parses and compiles (it is never run) and defines a top-level
    function named `function`, callable with `args` positional arguments when given.

    Code is taken from the first ```python fence when there is one. `function` may name an item
    field, as in `function: "{entry_point}"`.
    """

    kind: Literal["python"] = "python"
    function: str | None = None  # a plain-{field} template (routing/templates.py)
    args: int | None = Field(default=None, ge=0, le=50)

    @field_validator("function")
    @classmethod
    def _function_is_plain(cls, value: str | None) -> str | None:
        if value is not None:
            template_fields(value)
        return value

    def run(self, given: CheckInput) -> Verdict:
        code = extract_fenced(given.output, ("python", "py", "python3"))
        if not code:
            return Verdict(self.kind, False, "no code in the output", 0.0)
        try:
            tree = ast.parse(code, filename="<output>")
            compile(tree, "<output>", "exec", dont_inherit=True)  # compiled only, never executed
        except SyntaxError as exc:
            return Verdict(self.kind, False, f"syntax error on line {exc.lineno}: {exc.msg}", 0.0)
        except ValueError as exc:  # e.g. a null byte in the source
            return Verdict(self.kind, False, f"does not compile: {exc}", 0.0)
        if self.function is None:
            return Verdict(self.kind, True, "compiles", 1.0, normalized=code)
        try:
            wanted = render(self.function, given.fields, keep_missing=False)
        except TemplateError as exc:
            return Verdict(self.kind, False, str(exc), 0.0)
        defined = {
            node.name: node
            for node in tree.body
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        }
        node = defined.get(wanted)
        if node is None:
            found = ", ".join(sorted(defined)) or "none"
            return Verdict(
                self.kind, False, f"no top-level function {wanted!r} (defined: {found})", 0.0
            )
        if self.args is not None and not _accepts(node.args, self.args):
            return Verdict(
                self.kind,
                False,
                f"{wanted}() cannot be called with {self.args} positional arguments",
                0.0,
            )
        return Verdict(self.kind, True, f"compiles and defines {wanted}()", 1.0, normalized=code)


def _accepts(arguments: ast.arguments, count: int) -> bool:
    positional = len(arguments.posonlyargs) + len(arguments.args)
    required = positional - len(arguments.defaults)
    if any(default is None for default in arguments.kw_defaults):
        return False  # a keyword-only argument without a default
    if count < required:
        return False
    return count <= positional or arguments.vararg is not None
