"""The pre-call router: P(the cheap rung's answer will be right | the item's text).

A TF-IDF + logistic-regression model, fitted with scikit-learn (batchrouter/learning/fit.py)
and stored as plain numbers: the vocabulary, the idf weights, the coefficients and the
intercept. Scoring here rebuilds scikit-learn's `TfidfVectorizer(lowercase=True,
ngram_range=(1, ngram_max), sublinear_tf=..., norm="l2")` followed by `LogisticRegression`'s
decision function in plain Python, so a worker needs neither scikit-learn nor numpy, and the
file can hold nothing that runs (no pickle). tests/routing/test_router.py checks that the
scores equal scikit-learn's.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

KIND = "tfidf-logreg"
TOKEN = re.compile(r"(?u)\b\w\w+\b")  # scikit-learn's default token_pattern


@dataclass(frozen=True)
class TextRouter:
    vocabulary: Mapping[str, int]
    idf: Sequence[float]
    coef: Sequence[float]
    intercept: float
    ngram_max: int = 2
    sublinear_tf: bool = True

    def terms(self, text: str) -> list[str]:
        tokens = TOKEN.findall(text.lower())
        out = list(tokens)
        for n in range(2, self.ngram_max + 1):
            out += [" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
        return out

    def features(self, text: str) -> dict[int, float]:
        """The item's TF-IDF vector, L2-normalised, as {column: weight}."""
        counts = Counter(self.vocabulary[t] for t in self.terms(text) if t in self.vocabulary)
        weights = {
            column: (1.0 + math.log(count) if self.sublinear_tf else float(count))
            * self.idf[column]
            for column, count in counts.items()
        }
        norm = math.sqrt(sum(w * w for w in weights.values()))
        return {c: w / norm for c, w in weights.items()} if norm else {}

    def score(self, text: str) -> float:
        """The probability that the cheap rung's answer to `text` is right."""
        z = self.intercept + sum(self.coef[c] * w for c, w in self.features(text).items())
        if z >= 0:
            return 1.0 / (1.0 + math.exp(-z))
        e = math.exp(z)
        return e / (1.0 + e)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": KIND,
            "ngram_max": self.ngram_max,
            "sublinear_tf": self.sublinear_tf,
            "intercept": self.intercept,
            "vocabulary": dict(self.vocabulary),
            "idf": list(self.idf),
            "coef": list(self.coef),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TextRouter:
        if data.get("kind") != KIND:
            raise ValueError(f"router kind {data.get('kind')!r} is not {KIND!r}")
        vocabulary = {str(term): int(column) for term, column in data["vocabulary"].items()}
        idf = [float(x) for x in data["idf"]]
        coef = [float(x) for x in data["coef"]]
        if len(idf) != len(coef) or any(not 0 <= c < len(idf) for c in vocabulary.values()):
            raise ValueError("router: vocabulary, idf and coef do not line up")
        return cls(
            vocabulary=vocabulary,
            idf=idf,
            coef=coef,
            intercept=float(data["intercept"]),
            ngram_max=int(data.get("ngram_max", 1)),
            sublinear_tf=bool(data.get("sublinear_tf", False)),
        )
