"""P5: `batchrouter report` over 1M attempt rows on PostgreSQL (bar < 5 s, goal < 1 s).

    .venv/bin/python -m bench.p5_report [--rows 1000000] [--admin-url postgresql+psycopg://...]

Creates a throwaway database, fills it with COPY (10 batches, 2 task types, 3 tiers: 60% of
items pass on tier0, 30% on tier1, 10% climb to tier2, so 1.5 attempts per item), runs the
report's queries (all batches; then one project grouped by model and day) and, as a baseline in
the same run, a naive report that loads the attempt rows into Python and aggregates there.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, select, text
from sqlalchemy.orm import Session

from ledger.db import make_engine, upgrade_schema
from ledger.models import Attempt, Item
from ledger.report import run_report
from ledger.report_queries import ReportFilter

BAR_S, GOAL_S = 5.0, 1.0
ADMIN_URL = os.environ.get(
    "BATCHROUTER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
CONFIG = (Path(__file__).resolve().parents[1] / "examples" / "routing.yaml").read_text()
TIERS = [("tier0", "sim-nano", 0.10, 0.40), ("tier1", "sim-mini", 0.40, 1.60)]
TIERS += [("tier2", "sim-premium", 2.50, 10.00)]
VERDICT_OK = json.dumps([{"check": "label", "passed": True, "reason": "ok", "score": 1.0}])
VERDICT_NO = json.dumps([{"check": "label", "passed": False, "reason": "not a label", "score": 0}])


def fill(url: str, rows: int, seed: int = 5) -> int:
    """COPY batches, items and ~`rows` attempts into the database at `url`; return attempts."""
    rng = random.Random(seed)
    items = max(int(rows / 1.5), 10)
    batches = [
        (uuid.uuid4().hex, f"p{b % 5}", ("ticket_classification", "summarization")[b % 2])
        for b in range(10)
    ]
    start = datetime(2026, 11, 1, tzinfo=UTC)
    engine = make_engine(url)
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        with cursor.copy(  # type: ignore[attr-defined]
            "COPY batches (id, name, task_type, project, config_yaml, config_source, total, done,"
            " created_at) FROM STDIN"
        ) as copy:
            for batch_id, project, task in batches:
                per = items // len(batches)
                copy.write_row(
                    (batch_id, batch_id[:8], task, project, CONFIG, "routing.yaml", per, per, start)
                )
        attempts = 0
        item_copy = cursor.copy(  # type: ignore[attr-defined]
            "COPY items (id, batch_id, external_id, line_no, text, fields, state, tier, attempts,"
            " cost_usd, updated_at) FROM STDIN"
        )
        rows_of_attempts: list[tuple] = []
        with item_copy as copy:
            for item_id in range(1, items + 1):
                batch_id = batches[item_id % len(batches)][0]
                roll = rng.random()
                climb = 0 if roll < 0.6 else 1 if roll < 0.9 else 2
                when = start + timedelta(minutes=item_id % (14 * 24 * 60))
                cost = 0.0
                for number in range(climb + 1):
                    tier, deployment, p_in, p_out = TIERS[number]
                    tokens_in, tokens_out = rng.randint(200, 2000), rng.randint(1, 40)
                    price = (tokens_in * p_in + tokens_out * p_out) / 1e6
                    cost += price
                    passed = number == climb
                    rows_of_attempts.append(
                        (
                            item_id,
                            batch_id,
                            number + 1,
                            tier,
                            deployment,
                            "sim",
                            deployment,
                            tokens_in,
                            0,
                            0,
                            tokens_out,
                            0,
                            False,
                            price,
                            "{}",
                            rng.lognormvariate(5.5 + number, 0.5),
                            "passed" if passed else "check_failed",
                            VERDICT_OK if passed else VERDICT_NO,
                            when + timedelta(seconds=number),
                        )
                    )
                copy.write_row(
                    (
                        item_id,
                        batch_id,
                        f"x{item_id}",
                        item_id,
                        "t",
                        "{}",
                        "succeeded",
                        TIERS[climb][0],
                        climb + 1,
                        cost,
                        when,
                    )
                )
        with cursor.copy(  # type: ignore[attr-defined]
            "COPY attempts (item_id, batch_id, attempt_no, tier, deployment, provider, model,"
            " input_tokens, cached_input_tokens, cache_write_tokens, output_tokens,"
            " reasoning_tokens, usage_estimated, cost_usd, prices, latency_ms, outcome, verdicts,"
            " created_at) FROM STDIN"
        ) as copy:
            for row in rows_of_attempts:
                copy.write_row(row)
                attempts += 1
        cursor.execute("SELECT setval(pg_get_serial_sequence('items', 'id'), %s)", (items,))
        raw.commit()
        cursor.execute("ANALYZE")
        raw.commit()
    finally:
        raw.close()
        engine.dispose()
    return attempts


def naive_report(session: Session) -> dict:
    """The baseline: every attempt row into Python, aggregated there."""
    cost_by_tier: dict[str, Decimal] = defaultdict(Decimal)  # money is Decimal (ledger/money.py)
    by_model: dict[tuple, list[Any]] = defaultdict(lambda: [0, 0, 0, Decimal(0)])
    latencies: dict[str, list[float]] = defaultdict(list)
    first: dict[int, tuple[int, int]] = {}
    last: dict[int, tuple[int, int]] = {}
    tiers_of: dict[int, set[str]] = defaultdict(set)
    failures: dict[str, int] = defaultdict(int)
    rows = session.execute(
        select(
            Attempt.item_id,
            Attempt.attempt_no,
            Attempt.tier,
            Attempt.deployment,
            Attempt.model,
            Attempt.input_tokens,
            Attempt.output_tokens,
            Attempt.cost_usd,
            Attempt.latency_ms,
            Attempt.outcome,
            Attempt.verdicts,
        )
    ).all()
    for item_id, no, tier, deployment, model, i, o, cost, ms, outcome, verdicts in rows:
        cost_by_tier[tier] += cost
        line = by_model[(tier, deployment, model)]
        line[0] += 1
        line[1] += i
        line[2] += o
        line[3] += cost
        latencies[deployment].append(ms)
        if item_id not in first or no < first[item_id][0]:
            first[item_id] = (no, i)
        if item_id not in last or no > last[item_id][0]:
            last[item_id] = (no, o)
        tiers_of[item_id].add(tier)
        if outcome == "check_failed":
            for verdict in verdicts:
                if not verdict["passed"]:
                    failures[verdict["check"]] += 1
    states = dict(session.execute(select(Item.id, Item.tier)).all())
    funnel = defaultdict(lambda: [0, 0])
    for item_id, tiers in tiers_of.items():
        for tier in tiers:
            funnel[tier][0] += 1
            funnel[tier][1] += states[item_id] == tier
    percentiles = {}
    for deployment, values in latencies.items():
        values.sort()
        percentiles[deployment] = [
            values[max(int(len(values) * p) - 1, 0)] for p in (0.5, 0.95, 0.99)
        ]
    return {"tiers": dict(cost_by_tier), "premium_in": sum(v[1] for v in first.values())}


def timed(label: str, action) -> float:  # type: ignore[no-untyped-def]
    began = time.perf_counter()
    action()
    elapsed = time.perf_counter() - began
    print(f"  {label:<48} {elapsed:7.2f} s")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="attempt rows to create")
    parser.add_argument(
        "--admin-url",
        default=ADMIN_URL,
        help="a PostgreSQL database to create the bench database from",
    )
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args(argv)

    name = f"batchrouter_p5_{uuid.uuid4().hex[:8]}"
    admin = create_engine(args.admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = args.admin_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        upgrade_schema(url)
        began = time.perf_counter()
        attempts = fill(url, args.rows)
        print(f"P5: filled {attempts:,} attempts in {time.perf_counter() - began:.1f} s ({name})")
        engine = make_engine(url)
        with Session(engine) as session:
            everything = ReportFilter()
            run_report(session, everything)  # warm the cache, as a second report would find it
            report_s = timed("report, all batches (SQL)", lambda: run_report(session, everything))
            timed(
                "report --project p1 --by model,day (SQL)",
                lambda: run_report(session, ReportFilter(project="p1"), ["model", "day"]),
            )
            naive_s = timed(
                "baseline: rows into Python, aggregated there", lambda: naive_report(session)
            )
        engine.dispose()
        verdict = (
            "meets the goal"
            if report_s < GOAL_S
            else "meets the bar"
            if report_s < BAR_S
            else "MISSES the bar"
        )
        print(
            f"P5 report over {attempts:,} attempts: {report_s:.2f} s (bar < {BAR_S:.0f} s, goal < "
            f"{GOAL_S:.0f} s: {verdict}); naive baseline {naive_s:.2f} s, "
            f"{naive_s / report_s:.1f}x slower"
        )
    finally:
        if not args.keep:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
