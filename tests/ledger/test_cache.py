"""The response cache's key and its ledger table (SQLite), and in-batch duplicate detection."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import update

from ledger.cache import CacheEntry, entries_for, lookup, purge_expired, request_key, stats, store
from ledger.db import session_scope
from ledger.dedup import find_leaders
from ledger.models import CachedResponse, utcnow
from ledger.outcomes import AttemptRecord, CachePolicy, ItemOutcome
from routing.types import CompletionRequest, InputItem, Message, RequestMeta


def request(**changes) -> CompletionRequest:  # type: ignore[no-untyped-def]
    base = {
        "deployment": "sim-nano",
        "model": "sim-nano",
        "messages": [Message(role="system", content="s"), Message(role="user", content="hi")],
        "max_output_tokens": 256,
        "temperature": None,
        "json_schema": None,
        "logprobs": False,
        "meta": RequestMeta(item_key="1", attempt_no=1),
    }
    return CompletionRequest(**{**base, **changes})


def entry(key: str, output: str = "billing", ttl_s: float = 60.0) -> CacheEntry:
    return CacheEntry(key, "default", "sim-nano", "sim-nano", output, [-0.1], 0.002, "b/1/1", ttl_s)


def test_key_is_stable_and_ignores_meta() -> None:
    key = request_key("default", "sim-nano", request())
    assert len(key) == 64 and key == request_key("default", "sim-nano", request())
    other_meta = request(meta=RequestMeta(item_key="2", expected="x", attempt_no=5))
    assert request_key("default", "sim-nano", other_meta) == key


@pytest.mark.parametrize(
    "changes",
    [
        {"messages": [Message(role="user", content="hi!")]},
        {"messages": [Message(role="system", content="s2"), Message(role="user", content="hi")]},
        {"model": "sim-mini"},
        {"max_output_tokens": 255},
        {"temperature": 0.0},
        {"json_schema": {"type": "object"}},
        {"logprobs": True},
    ],
)
def test_key_changes_with_the_request(changes: dict) -> None:
    assert request_key("default", "d", request(**changes)) != request_key("default", "d", request())


def test_key_changes_with_namespace_and_deployment() -> None:
    key = request_key("default", "sim-nano", request())
    assert request_key("v2", "sim-nano", request()) != key
    assert request_key("default", "sim-nano-eu", request()) != key


@pytest.fixture
def ledger(use_ledger, sqlite_url: str) -> str:
    return use_ledger(sqlite_url)


def test_store_lookup_expiry_and_purge(ledger: str) -> None:
    with session_scope() as session:
        assert store(session, [entry("a" * 64), entry("b" * 64, "refund_request")]) == 2
    with session_scope() as session:
        found = lookup(session, ["a" * 64, "b" * 64, "c" * 64])
        assert set(found) == {"a" * 64, "b" * 64}
        assert found["b" * 64].output == "refund_request"
        assert found["a" * 64].token_logprobs == [-0.1] and found["a" * 64].cost_usd == Decimal(
            "0.002"
        )
        # expire one entry: lookups no longer see it and purge removes it
        session.execute(
            update(CachedResponse)
            .where(CachedResponse.key == "a" * 64)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    with session_scope() as session:
        assert set(lookup(session, ["a" * 64, "b" * 64])) == {"b" * 64}
        figures = stats(session)
        assert (figures.entries, figures.live, figures.expired) == (2, 1, 1)
        assert figures.by_namespace == {"default": 2}
    with session_scope() as session:
        assert purge_expired(session) == 1
    with session_scope() as session:
        assert stats(session).entries == 1
        assert lookup(session, []) == {}


def test_storing_the_same_key_twice_refreshes_it(ledger: str) -> None:
    """Two workers answering the same request: the second store must not fail."""
    with session_scope() as first:
        store(first, [entry("k" * 64, "billing")])
    with session_scope() as second:
        store(second, [entry("k" * 64, "complaint"), entry("k" * 64, "complaint")])
    with session_scope() as session:
        assert lookup(session, ["k" * 64])["k" * 64].output == "complaint"
        assert stats(session).entries == 1


def test_every_answer_of_a_caching_task_becomes_an_entry() -> None:
    """An answer is a fact about its request, whatever its verdict: passed, rejected or a
    consensus sample. Errors and hits (already entries) are not stored."""

    def record(no: int, outcome: str, **extra) -> AttemptRecord:  # type: ignore[no-untyped-def]
        return AttemptRecord(
            no, "tier0", "sim-nano", "sim", "sim-nano", outcome, output="x", cost_usd=0.01,
            cache_key=f"{no}" * 64, **extra,
        )  # fmt: skip

    records = [
        record(1, "error"),
        record(2, "check_failed"),
        record(3, "sample"),
        record(4, "passed", cache_hit=True),
        record(5, "passed", answer="X."),  # the call's own answer, not the normalised output
    ]
    policy = CachePolicy("ns", 30.0)
    outcome = ItemOutcome(7, "b", "tier0", records, "succeeded", "tier0", cache=policy)
    entries = entries_for([outcome])
    assert [(e.key, e.output, e.source_attempt) for e in entries] == [
        ("2" * 64, "x", "b/7/2"),
        ("3" * 64, "x", "b/7/3"),
        ("5" * 64, "X.", "b/7/5"),
    ]
    assert {(e.namespace, e.ttl_s) for e in entries} == {("ns", 30.0)}
    uncached = ItemOutcome(7, "b", "tier0", records, "succeeded", "tier0", cache=None)
    assert entries_for([uncached]) == []


def test_duplicates_need_equal_text_and_fields() -> None:
    items = [
        InputItem("1", "a", 1, None, {"lang": "en"}),
        InputItem("2", "a", 2, "gold", {"lang": "en"}),
        InputItem("3", "a", 3, None, {"lang": "de"}),
        InputItem("4", "b", 4, None, {}),
        InputItem("5", "a", 5, None, {"lang": "en"}),
    ]
    leader_of, followers = find_leaders(items)
    assert leader_of == [None, 0, None, None, 0]
    assert followers == [2, 0, 0, 0, 0]


def test_cache_commands(ledger: str) -> None:
    import json

    from typer.testing import CliRunner

    from batchrouter.cli import app

    with session_scope() as session:
        store(session, [entry("a" * 64), entry("b" * 64, ttl_s=0.001)])
    runner = CliRunner()
    shown = runner.invoke(app, ["cache", "stats", "--json"])
    assert shown.exit_code == 0, shown.output
    figures = json.loads(shown.stdout)
    assert (figures["entries"], figures["live"], figures["expired"]) == (2, 1, 1)
    purged = runner.invoke(app, ["cache", "purge"])
    assert purged.exit_code == 0 and "purged 1 expired" in purged.output
    with session_scope() as session:
        assert stats(session).entries == 1
