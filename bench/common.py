"""What every benchmark needs: a result row, throwaway databases, Redis, worker processes.

Benchmarks use a Redis of their own (`bench_redis`: a redis-server they start, or an empty
database they claim on the server BATCHROUTER_BENCH_REDIS_URL names) and a throwaway PostgreSQL
database each, so they never touch the tests' or anyone's data, and never flush a server they
did not start.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REDIS_URL = ""  # the benchmarks' Redis, set by bench_redis()
_empty_redis: Callable[[], None] | None = None
ADMIN_URL = os.environ.get(
    "BATCHROUTER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
LABELS = ["billing", "refund_request", "shipping_delay", "account_access", "password_reset"]


@dataclass
class Result:
    target: str  # P1, P2, ...
    what: str
    figure: float
    unit: str
    baseline: float | None  # measured in the same run; None when the bar is absolute
    baseline_what: str
    bar: str
    met: bool
    notes: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        if self.baseline in (None, 0):
            return None
        return self.figure / self.baseline  # type: ignore[operator]

    def line(self) -> str:
        ratio = f"{self.ratio:.2f}x" if self.ratio is not None else "-"
        base = f"{self.baseline:,.1f} {self.baseline_what}" if self.baseline is not None else "-"
        verdict = "met" if self.met else "NOT met"
        return (
            f"{self.target}: {self.figure:,.1f} {self.unit} | baseline {base} | ratio {ratio} | "
            f"bar {self.bar}: {verdict}"
        )


def bench_env(**extra: str) -> dict[str, str]:
    env = os.environ.copy()
    env.update(BATCHROUTER_BROKER_URL=REDIS_URL, PYTHONPATH=str(ROOT), **extra)
    return env


@contextmanager
def bench_redis() -> Iterator[str]:
    """The benchmarks' Redis for this run: a redis-server started here, or, when
    BATCHROUTER_BENCH_REDIS_URL names a server, an empty database claimed on it (only its own
    keys are ever deleted there). Sets REDIS_URL, and the variable worker processes read."""
    global REDIS_URL, _empty_redis
    from tests.helpers.servers import claim_empty_database, redis_server

    named = os.environ.get("BATCHROUTER_BENCH_REDIS_URL")
    with ExitStack() as stack:
        if named:
            claimed = claim_empty_database(named)
            stack.callback(claimed.release)
            REDIS_URL, _empty_redis = claimed.url, claimed.clean
        else:
            server = stack.enter_context(redis_server())
            REDIS_URL, _empty_redis = server.url(), server.empty
        os.environ["BATCHROUTER_BENCH_REDIS_URL"] = REDIS_URL  # bench.noop's workers read it
        try:
            yield REDIS_URL
        finally:
            REDIS_URL, _empty_redis = "", None
            if named:
                os.environ["BATCHROUTER_BENCH_REDIS_URL"] = named
            else:
                os.environ.pop("BATCHROUTER_BENCH_REDIS_URL", None)


def flush_redis() -> None:
    """Empty the benchmarks' Redis (all of it if it is our server, else our keys)."""
    assert _empty_redis is not None, "inside bench_redis() only"
    _empty_redis()


@contextmanager
def postgres_database(prefix: str = "batchrouter_bench") -> Iterator[str]:
    """A fresh PostgreSQL database with the ledger schema; dropped afterwards."""
    from sqlalchemy import create_engine, text

    from ledger.db import upgrade_schema

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        upgrade_schema(url)
        yield url
    finally:
        from ledger import db

        for key, engine in list(db._engines.items()):
            if key[0] == url:
                engine.dispose()
                del db._engines[key]
        retrying(lambda: _drop(admin, name))
        admin.dispose()


def _drop(admin, name: str) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import text

    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def retrying(work, attempts: int = 30):  # type: ignore[no-untyped-def]
    """Others' fault tests restart PostgreSQL on this machine: ride through a restart."""
    from sqlalchemy.exc import OperationalError

    for attempt in range(attempts):
        try:
            return work()
        except OperationalError:
            if attempt == attempts - 1:
                raise
            time.sleep(1.0)


def write_items(path: Path, count: int, seed: int = 7) -> Path:
    """`count` ticket-like JSONL items (~100 bytes of text each), with expected labels."""
    rng = random.Random(seed)
    words = [
        "order",
        "refund",
        "late",
        "password",
        "login",
        "address",
        "invoice",
        "charge",
        "app",
        "crash",
        "screen",
    ]
    with path.open("w") as out:
        for i in range(count):
            text = " ".join(rng.choice(words) for _ in range(14))
            label = LABELS[i % len(LABELS)]
            out.write(json.dumps({"id": f"T{i}", "text": text, "expected": label}) + "\n")
    return path


def write_routing(path: Path, deployments: dict[str, dict], ladder: list[str]) -> Path:
    """A routing file: one tier per entry of `ladder`, each with the deployment of that name."""
    import yaml

    config = {
        "deployments": deployments,
        "tiers": [{"name": f"tier{i}", "deployments": [name]} for i, name in enumerate(ladder)],
        "task_types": {
            "ticket_classification": {
                "ladder": [f"tier{i}" for i in range(len(ladder))],
                "prompt": "Labels: {labels}\nTicket: {text}",
                "checks": [{"kind": "non_empty"}, {"kind": "label", "labels": LABELS}],
                "max_attempts": 4,
            }
        },
    }
    path.write_text(yaml.safe_dump(config))
    return path


def start_worker(
    tier: str, config: Path, database_url: str, log: Path, loglevel: str = "WARNING", **env: str
) -> subprocess.Popen:
    """`batchrouter worker --tier TIER` with the settings' defaults unless `env` says otherwise."""
    command = [sys.executable, "-m", "bench.worker", "worker", "--tier", tier, "--config"]
    command += [str(config), "--loglevel", loglevel]
    command += ["--hostname", f"bench-{uuid.uuid4().hex[:6]}@%h", "--no-control"]
    environment = bench_env(
        BATCHROUTER_DATABASE_URL=database_url, BATCHROUTER_HOME=str(log.parent / "home"), **env
    )
    handle = log.open("wb")
    return subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=environment)


def stop(processes: list[subprocess.Popen], timeout: float = 20) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for process in processes:
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def start_fake_server(config: dict, log: Path) -> tuple[subprocess.Popen, str]:
    """The fake provider in a process of its own (it must not share a GIL with the workers)."""
    from providers.fake_server import free_port

    port = free_port()
    config_path = log.with_suffix(".json")
    config_path.write_text(json.dumps(config))
    command = [sys.executable, "-m", "providers.fake_server", "--port", str(port)]
    command += ["--config", str(config_path)]
    process = subprocess.Popen(
        command, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=bench_env()
    )
    url = f"http://127.0.0.1:{port}"
    import httpx

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/health", timeout=1)
            return process, url
        except httpx.HTTPError:
            time.sleep(0.1)
    stop([process])
    raise RuntimeError("the fake provider did not start")


def fake_stats(url: str) -> dict:
    import httpx

    return dict(httpx.get(f"{url}/_stats", timeout=10).json())


def wait_done(batch_id: str, database_url: str, total: int, timeout: float) -> float:
    """Poll the ledger until every item of the batch is terminal; return the finish time."""
    done = done_counter(batch_id, database_url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done() >= total:
            return time.perf_counter()
        time.sleep(0.05)
    raise TimeoutError(f"batch {batch_id} did not finish in {timeout:.0f} s")


def done_counter(batch_id: str, database_url: str):  # type: ignore[no-untyped-def]
    """A function returning how many items of the batch are terminal (the batch's counter)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url, pool_pre_ping=True)

    def done() -> int:
        def read() -> int:
            with engine.connect() as connection:
                return int(
                    connection.execute(
                        text("SELECT done FROM batches WHERE id = :b"), {"b": batch_id}
                    ).scalar_one()
                )

        return int(retrying(read))

    return done


def rescue(database_url: str) -> None:
    """Others' fault tests restart Redis on this machine, emptying its queues: put the ledger's
    waiting items back on their queues (the reconciler's job; bench workers run no beat)."""
    from routing.settings import get_settings
    from worker.reconcile import reconcile

    os.environ["BATCHROUTER_DATABASE_URL"] = database_url
    get_settings.cache_clear()
    try:
        print(f"    (no progress: reconciling {reconcile(queued_grace_s=5.0)})", flush=True)
    except Exception as exc:  # Redis may still be down: try again at the next stall
        print(f"    (no progress; reconcile failed: {exc})", flush=True)
    finally:
        os.environ.pop("BATCHROUTER_DATABASE_URL", None)
        get_settings.cache_clear()
