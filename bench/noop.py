"""The P1 baseline: a bare Celery app whose one task does nothing but count itself.

    celery -A bench.noop worker -P prefork -c 2   (BATCHROUTER_BENCH_REDIS_URL: `python -m bench`
                                                   sets it to the Redis it started or claimed)

Celery's defaults otherwise (prefork, early acks, prefetch 4): the fastest plain Celery gets.
P1 also runs it as our workers run (two processes, `-P threads -c 20`), as a second reading:
the counter is one INCR, safe from any number of threads.
"""

from __future__ import annotations

import os

import redis
from celery import Celery

URL = os.environ.get("BATCHROUTER_BENCH_REDIS_URL", "redis://127.0.0.1:6379/8")
QUEUE = "bench.noop"
COUNTER = "bench:noop:done"

app = Celery("bench_noop", broker=URL)
app.conf.update(task_ignore_result=True, task_default_queue=QUEUE, worker_hijack_root_logger=False)
_client: redis.Redis | None = None


@app.task(name="bench.noop")
def noop() -> None:
    global _client
    if _client is None:  # one connection per child process, made after the fork
        _client = redis.Redis.from_url(URL)
    _client.incr(COUNTER)
