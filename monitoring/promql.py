"""A small PromQL evaluator for the dashboard's queries, over two scrapes of workers' /metrics.

Not Prometheus: it knows the subset the dashboard uses (selectors with matchers, `rate`,
`increase`, `max_over_time`, `sum|max|min|count by (...)`, `label_replace`,
`histogram_quantile`, arithmetic between vectors with the same labels and scalars). A range
function sees only two points, the scrapes `seconds` apart: `rate` is the counter's change
between them divided by `seconds`. The dashboard test evaluates every query with it, so a query
that names a metric no worker exports, or that this subset cannot read, fails the build; and
monitoring/preview.py renders a page from its results.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Callable

Labels = tuple[tuple[str, str], ...]
Vector = dict[Labels, float]
Series = dict[str, Vector]  # sample name -> labels -> value
Value = float | Vector

_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+(?:\.\d+)?)(?![\w])|(?P<range>\[\d+[smhd]\])|(?P<str>\"(?:[^\"\\]|\\.)*\")"
    r"|(?P<op>==|!=|=~|[-+*/(){},=])|(?P<name>[A-Za-z_:][\w:]*))"
)
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_AGGREGATIONS: dict[str, Callable[[list[float]], float]] = {
    "sum": sum,
    "max": max,
    "min": min,
    "count": len,
}


class PromQLError(ValueError):
    """The query is outside the subset, or malformed."""


def parse_scrape(text: str, instance: str) -> Series:
    """Samples of one /metrics page, each labelled with `instance` as Prometheus would."""
    from prometheus_client.parser import text_string_to_metric_families

    series: Series = defaultdict(dict)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted({**sample.labels, "instance": instance}.items()))
            series[sample.name][labels] = sample.value
    return series


def exported_names(text: str) -> set[str]:
    """Every sample name a /metrics page declares, including metrics with no sample yet
    (a labelled counter nobody has incremented still has its HELP and TYPE lines)."""
    from prometheus_client.parser import text_string_to_metric_families

    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.update(family.name + s for s in suffixes.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names


def merge(scrapes: list[Series]) -> Series:
    merged: Series = defaultdict(dict)
    for scrape in scrapes:
        for name, vector in scrape.items():
            merged[name].update(vector)
    return merged


class Evaluator:
    def __init__(self, before: Series, after: Series, seconds: float) -> None:
        self.before, self.after, self.seconds = before, after, seconds
        self.names: set[str] = set()  # metric names the last query read

    def evaluate(self, query: str) -> Value:
        self.tokens: list[tuple[str | None, str]] = []
        at = 0
        while query[at:].strip():
            match = _TOKEN.match(query, at)
            if match is None:
                raise PromQLError(f"cannot read {query[at:]!r} in {query!r}")
            self.tokens.append((match.lastgroup, match.group(match.lastgroup or "")))
            at = match.end()
        self.pos = 0
        value = self._expr()
        if self.pos != len(self.tokens):
            raise PromQLError(f"unexpected {self.tokens[self.pos][1]!r} in {query!r}")
        return value

    # -- parsing, evaluated on the way -------------------------------------------------------
    def _peek(self) -> str:
        return self.tokens[self.pos][1] if self.pos < len(self.tokens) else ""

    def _take(self, expected: str | None = None) -> str:
        if self.pos >= len(self.tokens):
            raise PromQLError("unexpected end of query")
        text = self.tokens[self.pos][1]
        if expected is not None and text != expected:
            raise PromQLError(f"expected {expected!r}, got {text!r}")
        self.pos += 1
        return text

    def _expr(self) -> Value:
        value = self._term()
        while self._peek() in ("+", "-"):
            value = _binary(self._take(), value, self._term())
        return value

    def _term(self) -> Value:
        value = self._factor()
        while self._peek() in ("*", "/"):
            value = _binary(self._take(), value, self._factor())
        return value

    def _factor(self) -> Value:
        kind, text = self.tokens[self.pos] if self.pos < len(self.tokens) else ("", "")
        if kind == "num":
            self.pos += 1
            return float(text)
        if text == "(":
            self._take("(")
            value = self._expr()
            self._take(")")
            return value
        if kind != "name":
            raise PromQLError(f"unexpected {text!r}")
        if text in _AGGREGATIONS:
            return self._aggregation()
        if text in ("rate", "increase", "max_over_time"):
            return self._range_function()
        if text == "histogram_quantile":
            self._take()
            self._take("(")
            q = float(self._take())
            self._take(",")
            value = self._vector(self._expr())
            self._take(")")
            return _quantile(q, value)
        if text == "label_replace":
            self._take()
            self._take("(")
            value = self._vector(self._expr())
            dst, repl, src, regex = (self._comma_string() for _ in range(4))
            self._take(")")
            return _label_replace(value, dst, repl, src, regex)
        name, matchers = self._selector()
        return self._select(self.after, name, matchers)

    def _comma_string(self) -> str:
        self._take(",")
        text = self._take()
        if not text.startswith('"'):
            raise PromQLError(f"expected a string, got {text!r}")
        return text[1:-1]

    def _aggregation(self) -> Vector:
        how = _AGGREGATIONS[self._take()]
        by: list[str] | None = None
        if self._peek() == "by":
            by = self._label_list()
        self._take("(")
        value = self._vector(self._expr())
        self._take(")")
        if by is None and self._peek() == "by":
            by = self._label_list()
        groups: dict[Labels, list[float]] = defaultdict(list)
        for labels, number in value.items():
            groups[tuple((k, v) for k, v in labels if k in (by or []))].append(number)
        return {labels: float(how(numbers)) for labels, numbers in groups.items()}

    def _label_list(self) -> list[str]:
        self._take("by")
        self._take("(")
        names = [self._take()]
        while self._peek() == ",":
            self._take(",")
            names.append(self._take())
        self._take(")")
        return names

    def _range_function(self) -> Vector:
        function = self._take()
        self._take("(")
        name, matchers = self._selector()
        window = self._take()
        if not re.fullmatch(r"\[\d+[smhd]\]", window):
            raise PromQLError(f"{function} needs a range, got {window!r}")
        self._take(")")
        now = self._select(self.after, name, matchers)
        then = self._select(self.before, name, matchers)
        out: Vector = {}
        for labels, value in now.items():
            old = then.get(labels, 0.0)
            if function == "max_over_time":
                out[labels] = max(value, old)
                continue
            change = value - old if value >= old else value  # a reset: the counter restarted
            out[labels] = change / self.seconds if function == "rate" else change
        return out

    def _selector(self) -> tuple[str, list[tuple[str, str, str]]]:
        name = self._take()
        matchers: list[tuple[str, str, str]] = []
        if self._peek() == "{":
            self._take("{")
            while self._peek() != "}":
                label, op, value = self._take(), self._take(), self._take()
                if op not in ("=", "!=", "=~") or not value.startswith('"'):
                    raise PromQLError(f"bad matcher {label}{op}{value}")
                matchers.append((label, op, value[1:-1]))
                if self._peek() == ",":
                    self._take(",")
            self._take("}")
        return name, matchers

    def _select(self, series: Series, name: str, matchers: list[tuple[str, str, str]]) -> Vector:
        self.names.add(name)
        out: Vector = {}
        for labels, value in series.get(name, {}).items():
            found = dict(labels)
            if all(_matches(found.get(label, ""), op, want) for label, op, want in matchers):
                out[labels] = value
        return out

    @staticmethod
    def _vector(value: Value) -> Vector:
        if isinstance(value, float):
            raise PromQLError("expected a vector, got a scalar")
        return value


def _matches(value: str, op: str, want: str) -> bool:
    if op == "=~":
        return re.fullmatch(want, value) is not None
    return (value == want) == (op == "=")


def _apply(op: str, a: float, b: float) -> float:
    if op == "/":
        return a / b if b else (math.nan if a == 0 else math.copysign(math.inf, a))
    return {"+": a + b, "-": a - b, "*": a * b}[op]


def _binary(op: str, left: Value, right: Value) -> Value:
    if isinstance(left, float) and isinstance(right, float):
        return _apply(op, left, right)
    if isinstance(left, float):
        assert not isinstance(right, float)
        return {labels: _apply(op, left, value) for labels, value in right.items()}
    if isinstance(right, float):
        return {labels: _apply(op, value, right) for labels, value in left.items()}
    return {
        labels: _apply(op, value, right[labels])
        for labels, value in left.items()
        if labels in right
    }


def _label_replace(value: Vector, dst: str, repl: str, src: str, regex: str) -> Vector:
    out: Vector = {}
    for labels, number in value.items():
        found = dict(labels)
        match = re.fullmatch(regex, found.get(src, ""))
        if match:
            found[dst] = match.expand(re.sub(r"\$(\d+)", r"\\\1", repl))
        out[tuple(sorted(found.items()))] = number
    return out


def _quantile(q: float, buckets: Vector) -> Vector:
    """Prometheus's histogram_quantile: linear interpolation inside the bucket holding rank q."""
    groups: dict[Labels, list[tuple[float, float]]] = defaultdict(list)
    for labels, count in buckets.items():
        found = dict(labels)
        le = found.pop("le", None)
        if le is not None:
            groups[tuple(sorted(found.items()))].append((float(le), count))
    out: Vector = {}
    for labels, points in groups.items():
        points.sort()
        total = points[-1][1]
        if total <= 0:
            out[labels] = math.nan
            continue
        rank, lower, below = q * total, 0.0, 0.0
        for upper, count in points:
            if count >= rank:
                if math.isinf(upper):
                    out[labels] = lower
                else:
                    share = (rank - below) / (count - below) if count > below else 0.0
                    out[labels] = lower + (upper - lower) * share
                break
            lower, below = upper, count
    return out
