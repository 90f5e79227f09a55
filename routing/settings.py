"""Runtime settings from the environment (BATCHROUTER_*), via pydantic-settings.

The embedded default needs no server: a SQLite ledger and a filesystem broker under
BATCHROUTER_HOME. Production sets a Redis broker and a PostgreSQL ledger.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BATCHROUTER_", extra="ignore")

    home: Path = Path(".batchrouter")  # where the embedded ledger and broker keep their files
    database_url: str | None = None  # default: sqlite:///<home>/ledger.db
    broker_url: str | None = None  # default: filesystem broker in <home>/broker
    config: Path = Path("examples/routing.yaml")  # the routing file
    # Item ids per broker message. A task slot holds its chunk until the chunk's slowest item
    # ends, so concurrency x chunk_size (2,000) claims four times max_in_flight: the calls of
    # a chunk waiting on a straggler leave their in-flight places to other chunks' items.
    # docs/benchmarks.md, session 7: 2x a long-tailed batch's throughput of 25 x 20, and a
    # quarter of the per-message ledger work on instant calls.
    chunk_size: int = Field(default=100, ge=1, le=1000)
    # Seconds a finished item's outcome may wait to be written with others of its chunk
    # (worker/recorder.py): a chunk's finished items are recorded within about this, not
    # when its slowest item ends; 0 writes each as it finishes.
    record_flush_s: float = Field(default=0.5, ge=0)
    # Celery task slots per worker process; each runs a chunk's items concurrently on the
    # process's loop, so up to concurrency x chunk_size calls are open (capped by max_in_flight).
    concurrency: int = Field(default=20, ge=1)
    visibility_timeout: int = Field(default=900, ge=1)  # seconds; longer than any task
    soft_shutdown_timeout: int = Field(default=30, ge=0)  # seconds a stopping worker finishes
    reconcile_interval: int = Field(default=60, ge=1)  # seconds between beat reconcile runs
    # Deferred tiers: how often the beat task polls provider batches, and how long a batch
    # whose create call may have reached the provider is left before it is looked for.
    deferred_poll_interval: int = Field(default=30, ge=1)
    deferred_submit_grace_s: float = Field(default=300.0, ge=0)
    # One poll at a time per ledger (ledger/locks.py): the lease a poll holds, renewed between
    # its steps. A poller that dies on another host delays the next poll by at most this.
    deferred_poll_lease_s: float = Field(default=300.0, gt=0)
    max_claims: int = Field(default=5, ge=1)  # claims without an outcome before an item fails
    # Claims are leases (ledger/leases.py): each worker process renews its lease every third of
    # this; once it has lapsed (the process died or is cut off from the ledger), the lease
    # check, every `lease_check_interval` s on beat, re-queues its running items. A cut-off
    # host's items are taken over within lease + one check (docs/operations.md, several hosts).
    claim_lease_s: float = Field(default=30.0, ge=1.0)
    lease_check_interval: int = Field(default=10, ge=1)
    # Connections that notice a dead network (docs/operations.md, "Timeouts"). Redis (broker,
    # rate limiter, statistics): a command waits at most this long; TCP keepalive on.
    redis_timeout_s: float = Field(default=10.0, gt=0)
    # PostgreSQL: connecting waits at most db_connect_timeout_s; a connection whose peer went
    # silent is dropped within about db_network_timeout_s (TCP keepalive + tcp_user_timeout);
    # the server ends a session that waits on a lock longer than db_lock_timeout_s, sits idle
    # in an open transaction longer than db_idle_in_transaction_timeout_s (a cut-off worker's
    # row locks are freed) or runs a statement longer than db_statement_timeout_s (0: never).
    # db_session_settings=false sends none of the server-side ones (for PgBouncer, which
    # refuses startup options).
    db_connect_timeout_s: int = Field(default=5, ge=1)
    db_network_timeout_s: float = Field(default=15.0, ge=1.0)
    db_lock_timeout_s: float = Field(default=30.0, ge=0)
    db_idle_in_transaction_timeout_s: float = Field(default=60.0, ge=0)
    db_statement_timeout_s: float = Field(default=300.0, ge=0)
    db_session_settings: bool = True
    # A budget reservation is held at most a call's longest life plus this margin; past it the
    # reconciler releases it as spent (its worker died mid-call; worker/budget.py).
    reservation_margin_s: float = Field(default=60.0, ge=0)
    sim_time_scale: float = Field(default=1.0, ge=0)  # shrink sim latencies (tests, demo)
    metrics_port: int | None = Field(default=None, ge=0, le=65535)  # worker /metrics (Prometheus)
    # The address /metrics listens on: loopback unless the host opts in (it has no auth).
    metrics_address: str = "127.0.0.1"
    # What a routing file may name as a custom check or a JSON check's model: comma-separated
    # `module:function` entries or module prefixes (`myapp.checks`), besides the entry points
    # of the `batchrouter.checks` group. The routing file is data (a copy is stored in the
    # ledger and read back by workers); which code runs is this host's decision, never its.
    allowed_checks: str = ""
    # One log line per provider call (logger `batchrouter.calls`, and httpx's request line)
    # even at --loglevel INFO. Off: a worker logs one INFO line per chunk; per-call lines
    # show only at --loglevel DEBUG (docs/operations.md, "Logs").
    log_calls: bool = False
    # Provider calls one worker process runs at once, over all its task slots (bounds memory).
    max_in_flight: int = Field(default=500, ge=1)
    # The HTTP client under the adapters (providers/http.py): aiohttp's connection pool, or
    # httpx's own (sharded httpcore pools), the fallback; both behind the same httpx API.
    http_client: Literal["aiohttp", "httpx"] = "aiohttp"
    # Global RPM/TPM buckets (worker/ratelimit.py): the Redis holding them (default: the broker,
    # when it is Redis; else per-process buckets), the burst a bucket allows (seconds of its
    # per-minute rate), and how far ahead a waiting call may be given a slot.
    ratelimit_redis_url: str | None = None
    ratelimit_burst_s: float = Field(default=10.0, gt=0, le=60)
    ratelimit_max_reserve_s: float = Field(default=30.0, ge=0)
    # Messages published per Redis round trip when enqueueing (worker/publish.py).
    publish_pipeline: int = Field(default=500, ge=1)

    def allowed_check_entries(self) -> tuple[str, ...]:
        return tuple(e.strip() for e in self.allowed_checks.split(",") if e.strip())

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        self.home.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{(self.home / 'ledger.db').resolve()}"

    def resolved_broker_url(self) -> str:
        return self.broker_url or "filesystem://"

    def resolved_ratelimit_redis_url(self) -> str | None:
        if self.ratelimit_redis_url:
            return self.ratelimit_redis_url
        broker = self.resolved_broker_url()
        return broker if broker.startswith(("redis://", "rediss://", "unix://")) else None

    def broker_folder(self) -> Path:
        folder = (self.home / "broker").resolve()
        folder.mkdir(parents=True, exist_ok=True)
        return folder


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
