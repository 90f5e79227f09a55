"""Start and stop real `batchrouter worker` processes for integration tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from tests.conftest import EXAMPLES, ROOT


@contextmanager
def running_workers(
    tiers: list[str],
    *,
    database_url: str,
    broker_url: str,
    log_dir: Path,
    config: Path = EXAMPLES / "routing.yaml",
    concurrency: int = 4,
    extra_env: dict[str, str] | None = None,
    celery_command: list[str] | None = None,
    prefix: list[str] | None = None,
    name: str | None = None,
) -> Iterator[list[subprocess.Popen]]:
    """One worker process per tier, like `batchrouter worker --tier N` in production.

    `celery_command` starts each with that Celery command line instead (`celery -A worker
    worker -Q TIER ...`), with `TIER` replaced by the tier's name. `prefix` runs each under
    a wrapper (`ip netns exec HOST`: tests/helpers/net.py); `name` tells workers of several
    such hosts apart (they share a hostname)."""
    env = worker_env(database_url, broker_url, log_dir, extra_env)
    processes = []
    for tier in tiers:
        log = open(log_dir / f"worker-{tier}.log", "wb")  # noqa: SIM115 - closed with the worker
        if celery_command is not None:
            command = [sys.executable, "-m"] + [tier if a == "TIER" else a for a in celery_command]
            command += ["--hostname", f"{tier}-{name or os.getpid()}@%h"]
        else:
            command = [sys.executable, "-m", "batchrouter", "worker", "--tier", tier]
            command += ["--config", str(config), "--concurrency", str(concurrency)]
            command += ["--loglevel", "INFO", "--hostname", f"{tier}-{name or os.getpid()}@%h"]
        command = [*(prefix or []), *command]
        processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env))
    try:
        yield processes
    finally:
        stop_workers(processes)


def worker_env(
    database_url: str, broker_url: str, log_dir: Path, extra_env: dict[str, str] | None = None
) -> dict[str, str]:
    env = os.environ.copy()
    env.update(
        BATCHROUTER_DATABASE_URL=database_url,
        BATCHROUTER_BROKER_URL=broker_url,
        BATCHROUTER_HOME=str(log_dir / "home"),
        **(extra_env or {}),
    )
    return env


@contextmanager
def running_beat(
    *,
    database_url: str,
    broker_url: str,
    log_dir: Path,
    extra_env: dict[str, str] | None = None,
    prefix: list[str] | None = None,
) -> Iterator[subprocess.Popen]:
    """`celery -A worker beat`, as every host runs it (its schedule file in `log_dir`)."""
    env = worker_env(database_url, broker_url, log_dir, extra_env)
    log = open(log_dir / "beat.log", "wb")  # noqa: SIM115 - closed with the process
    command = [sys.executable, "-m", "celery", "-A", "worker", "beat", "--loglevel", "INFO"]
    command += ["--schedule", str(log_dir / "beat-schedule")]
    process = subprocess.Popen(
        [*(prefix or []), *command], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT
    )
    try:
        yield process
    finally:
        stop_workers([process], timeout=10)
        log.close()


@contextmanager
def workers_with_metrics(
    tiers: list[str], *, database_url: str, broker_url: str, log_dir: Path
) -> Iterator[dict[str, str]]:
    """A worker per tier of examples/routing.yaml, each serving Prometheus metrics on its own
    port; yields tier -> its /metrics URL, once every one answers."""
    import httpx

    from tests.helpers.net import free_port, poll

    ports = {tier: free_port() for tier in tiers}
    with ExitStack() as stack:
        for tier, port in ports.items():
            stack.enter_context(
                running_workers(
                    [tier],
                    database_url=database_url,
                    broker_url=broker_url,
                    log_dir=log_dir,
                    extra_env={
                        "BATCHROUTER_METRICS_PORT": str(port),
                        "BATCHROUTER_CONFIG": str(EXAMPLES / "routing.yaml"),
                    },
                )
            )
        urls = {tier: f"http://127.0.0.1:{port}/metrics" for tier, port in ports.items()}
        for url in urls.values():
            poll(lambda url=url: httpx.get(url, timeout=5).text, 30, f"the metrics endpoint {url}")
        yield urls


def stop_workers(processes: list[subprocess.Popen], timeout: float = 20) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for process in processes:
        try:
            process.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def running_flower(broker_url: str, port: int, log_path: Path, auth: str = "ops:s3cret"):  # type: ignore[no-untyped-def]
    """`batchrouter flower` against the given broker, behind basic auth; yields its base URL."""
    import httpx

    env = {**os.environ, "BATCHROUTER_BROKER_URL": broker_url, "FLOWER_BASIC_AUTH": auth}
    log = open(log_path, "wb")  # noqa: SIM115 - closed with the process
    command = [sys.executable, "-m", "batchrouter", "flower", "--port", str(port)]
    process = subprocess.Popen(
        command + ["--address", "127.0.0.1"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/healthcheck", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        yield base
    finally:
        stop_workers([process], timeout=15)
        log.close()
