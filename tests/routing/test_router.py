"""The router scored from its JSON numbers equals scikit-learn's own prediction."""

from __future__ import annotations

import random

import pytest

from routing.learned.router import TextRouter


def test_plain_python_scores_equal_scikit_learns() -> None:
    text_module = pytest.importorskip("sklearn.feature_extraction.text")
    linear = pytest.importorskip("sklearn.linear_model")
    rng = random.Random(2)
    words = [
        "card",
        "refund",
        "fraud",
        "late",
        "charge",
        "pin",
        "atm",
        "transfer",
        "blocked",
        "fee",
    ]
    texts = [" ".join(rng.choice(words) for _ in range(rng.randint(2, 9))) for _ in range(300)]
    labels = [int("fraud" not in t and "blocked" not in t) for t in texts]
    vectorizer = text_module.TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)
    matrix = vectorizer.fit_transform(texts)
    model = linear.LogisticRegression(max_iter=1000).fit(matrix, labels)
    router = TextRouter(
        vocabulary={t: int(c) for t, c in vectorizer.vocabulary_.items()},
        idf=[float(x) for x in vectorizer.idf_],
        coef=[float(x) for x in model.coef_[0]],
        intercept=float(model.intercept_[0]),
    )
    fresh = texts[:20] + ["Card FRAUD, card fraud!", "an unseen sentence", ""]
    expected = model.predict_proba(vectorizer.transform(fresh))[:, 1]
    for text, want in zip(fresh, expected, strict=True):
        assert router.score(text) == pytest.approx(float(want), abs=1e-9)
    assert TextRouter.from_dict(router.as_dict()) == router
