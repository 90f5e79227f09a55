"""The pre-call router: P(the cheap rung's answer will be right | the item's text).

A TF-IDF + logistic-regression model, fitted with scikit-learn (batchrouter/learning/fit.py)
and stored as plain numbers: the vocabulary, the idf weights, the coefficients and the
intercept. The `lsa` backend (`fit --router-backend lsa`) puts a dense embedding between the
two: the TF-IDF vector projected on the top singular vectors of the training items' TF-IDF
matrix (latent semantic analysis: scikit-learn's TruncatedSVD, then unit length), which
relates items that share no word but share context; the logistic regression runs on that
embedding. It is fitted on the user's own history, so it works offline: no model download. Scoring here rebuilds scikit-learn's `TfidfVectorizer(lowercase=True,
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
KIND_LSA = "lsa-logreg"  # with `components`: the LSA embedding between TF-IDF and the model
TOKEN = re.compile(r"(?u)\b\w\w+\b")  # scikit-learn's default token_pattern


@dataclass(frozen=True)
class TextRouter:
    vocabulary: Mapping[str, int]
    idf: Sequence[float]
    coef: Sequence[float]
    intercept: float
    ngram_max: int = 2
    sublinear_tf: bool = True
    # lsa-logreg: k rows of len(idf) numbers (TruncatedSVD's components_); coef has k numbers
    components: Sequence[Sequence[float]] = ()

    @property
    def kind(self) -> str:
        return KIND_LSA if self.components else KIND

    def embedding(self, text: str) -> list[float]:
        """The item's LSA embedding: its TF-IDF vector on each component, at unit length."""
        weights = self.features(text)
        dense = [sum(row[c] * w for c, w in weights.items()) for row in self.components]
        norm = math.sqrt(sum(x * x for x in dense))
        return [x / norm for x in dense] if norm else dense

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
        if self.components:
            z = self.intercept + sum(
                c * x for c, x in zip(self.coef, self.embedding(text), strict=True)
            )
        else:
            z = self.intercept + sum(self.coef[c] * w for c, w in self.features(text).items())
        if z >= 0:
            return 1.0 / (1.0 + math.exp(-z))
        e = math.exp(z)
        return e / (1.0 + e)

    def as_dict(self) -> dict[str, Any]:
        data = {
            "kind": self.kind,
            "ngram_max": self.ngram_max,
            "sublinear_tf": self.sublinear_tf,
            "intercept": self.intercept,
            "vocabulary": dict(self.vocabulary),
            "idf": list(self.idf),
            "coef": list(self.coef),
        }
        if self.components:
            data["components"] = [list(row) for row in self.components]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TextRouter:
        kind = data.get("kind")
        if kind not in (KIND, KIND_LSA):
            raise ValueError(f"router kind {kind!r} is neither {KIND!r} nor {KIND_LSA!r}")
        vocabulary = {str(term): int(column) for term, column in data["vocabulary"].items()}
        idf = [float(x) for x in data["idf"]]
        coef = [float(x) for x in data["coef"]]
        components = tuple(tuple(float(x) for x in row) for row in data.get("components") or [])
        width = len(components) if kind == KIND_LSA else len(idf)
        lined_up = len(coef) == width and all(len(row) == len(idf) for row in components)
        if (kind == KIND_LSA) != bool(components) or not lined_up:
            raise ValueError("router: vocabulary, idf, components and coef do not line up")
        if any(not 0 <= c < len(idf) for c in vocabulary.values()):
            raise ValueError("router: vocabulary, idf and coef do not line up")
        return cls(
            vocabulary=vocabulary,
            idf=idf,
            coef=coef,
            intercept=float(data["intercept"]),
            ngram_max=int(data.get("ngram_max", 1)),
            sublinear_tf=bool(data.get("sublinear_tf", False)),
            components=components,
        )
