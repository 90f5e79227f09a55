"""The router scored from its JSON numbers equals scikit-learn's own prediction."""

from __future__ import annotations

import random

import pytest

from routing.learned.router import TextRouter


def router_of(vectorizer, model, svd=None) -> TextRouter:  # type: ignore[no-untyped-def]
    """The router's JSON numbers, taken from fitted scikit-learn objects."""
    return TextRouter(
        vocabulary={t: int(c) for t, c in vectorizer.vocabulary_.items()},
        idf=[float(x) for x in vectorizer.idf_],
        coef=[float(x) for x in model.coef_[0]],
        intercept=float(model.intercept_[0]),
        components=() if svd is None else tuple(tuple(map(float, r)) for r in svd.components_),
    )


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
    router = router_of(vectorizer, model)
    fresh = texts[:20] + ["Card FRAUD, card fraud!", "an unseen sentence", ""]
    expected = model.predict_proba(vectorizer.transform(fresh))[:, 1]
    for text, want in zip(fresh, expected, strict=True):
        assert router.score(text) == pytest.approx(float(want), abs=1e-9)
    assert TextRouter.from_dict(router.as_dict()) == router


def test_the_lsa_embedding_scores_equal_scikit_learns_pipeline() -> None:
    """`--router-backend lsa`: TF-IDF, TruncatedSVD, unit length, logistic regression, scored
    from the JSON numbers alone as scikit-learn scores it, and read back whole."""
    text_module = pytest.importorskip("sklearn.feature_extraction.text")
    linear = pytest.importorskip("sklearn.linear_model")
    decomposition = pytest.importorskip("sklearn.decomposition")
    preprocessing = pytest.importorskip("sklearn.preprocessing")
    rng = random.Random(3)
    words = ["card", "refund", "fraud", "late", "charge", "pin", "atm", "transfer", "fee"]
    texts = [" ".join(rng.choice(words) for _ in range(rng.randint(2, 9))) for _ in range(300)]
    labels = [int("fraud" not in t) for t in texts]
    vectorizer = text_module.TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)
    svd = decomposition.TruncatedSVD(n_components=8, random_state=0)
    embedded = preprocessing.normalize(svd.fit_transform(vectorizer.fit_transform(texts)))
    model = linear.LogisticRegression(max_iter=1000).fit(embedded, labels)
    router = router_of(vectorizer, model, svd)
    fresh = texts[:20] + ["FRAUD on my card", "an unseen sentence"]
    want = model.predict_proba(preprocessing.normalize(svd.transform(vectorizer.transform(fresh))))[
        :, 1
    ]
    for text, expected in zip(fresh, want, strict=True):
        assert router.score(text) == pytest.approx(float(expected), abs=1e-9)
    data = router.as_dict()
    assert data["kind"] == "lsa-logreg" and len(data["components"]) == 8
    assert TextRouter.from_dict(data) == router
    broken = {**data, "coef": data["coef"][:-1]}  # one number short of the embedding
    with pytest.raises(ValueError, match="do not line up"):
        TextRouter.from_dict(broken)
