"""The long-running commands: `worker`, `flower`, `fake-provider`, `demo`, and `db upgrade`."""

from __future__ import annotations

import ipaddress
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from batchrouter.cli.common import console, errors, fail

# Flower keeps every task it has seen in memory (100,000 by default, flower#1305): a 1M-item
# batch at 25 ids a message is 40,000 messages plus escalations, so keep fewer, and keep no
# on-disk state (persistent mode re-reads it all at start).
FLOWER_MAX_TASKS = 10_000


def worker(
    tier: Annotated[str, typer.Option(help="tier name or position (0 = cheapest)")],
    config: Annotated[Path | None, typer.Option(help="routing file naming the tiers")] = None,
    concurrency: Annotated[
        int | None, typer.Option(help="task slots (default $BATCHROUTER_CONCURRENCY)")
    ] = None,
    pool: Annotated[str, typer.Option(help="Celery pool: threads, prefork, solo")] = "threads",
    loglevel: Annotated[str, typer.Option(help="log level")] = "INFO",
    hostname: Annotated[str | None, typer.Option(help="worker name (default <tier>@%h)")] = None,
    control: Annotated[
        bool, typer.Option(help="also take control tasks (reconcile, batch callbacks)")
    ] = True,
) -> None:
    """Run a Celery worker consuming one tier's queue (and the control queue)."""
    from routing.config import ConfigError, load_config
    from routing.settings import get_settings

    settings = get_settings()
    try:
        queue = load_config(config or settings.config).tier_by_ref(tier).name
    except (ConfigError, KeyError) as exc:
        raise fail(str(exc)) from None
    from worker.app import app as celery_app
    from worker.queues import CONTROL_QUEUE

    celery_app.worker_main(
        [
            "worker",
            "-Q",
            f"{queue},{CONTROL_QUEUE}" if control else queue,
            "-n",
            hostname or f"{queue}@%h",
            "-P",
            pool,
            "-c",
            str(concurrency or settings.concurrency),
            "-E",
            "--loglevel",
            loglevel,
        ]
    )


def flower_command(port: int, address: str, max_tasks: int) -> list[str]:
    """The `celery flower` command line that `batchrouter flower` runs. It never holds the
    password: anyone on the host can read a command line (`ps`); Flower reads its basic auth
    from FLOWER_BASIC_AUTH in its environment (flower/command.py: apply_env_options)."""
    command = [sys.executable, "-m", "celery", "-A", "worker", "flower"]
    command += [f"--port={port}", f"--address={address}", f"--max_tasks={max_tasks}"]
    command += ["--persistent=False", "--purge_offline_workers=600", "--inspect_timeout=5000"]
    return command


def is_loopback(address: str) -> bool:
    """Whether `address` only accepts connections from this host ("" means every interface)."""
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def flower(
    port: Annotated[int, typer.Option(help="HTTP port")] = 5555,
    address: Annotated[
        str, typer.Option(help="address to listen on; other than loopback needs a password")
    ] = "127.0.0.1",
    max_tasks: Annotated[
        int, typer.Option(help="tasks Flower keeps in memory (Flower's default is 100000)")
    ] = FLOWER_MAX_TASKS,
    basic_auth_file: Annotated[
        Path | None,
        typer.Option(help="file holding user:password (instead of $FLOWER_BASIC_AUTH)"),
    ] = None,
) -> None:
    """Flower for the tier queues and workers. Listens on 127.0.0.1 unless told otherwise, and
    then only with a password ($FLOWER_BASIC_AUTH=user:pass, or --basic-auth-file)."""
    basic_auth = os.environ.get("FLOWER_BASIC_AUTH") or None
    if basic_auth_file is not None:
        try:
            basic_auth = basic_auth_file.read_text(encoding="utf-8").strip() or None
        except OSError as exc:
            raise fail(f"{basic_auth_file}: cannot read the password file ({exc})") from None
        if basic_auth is None or ":" not in basic_auth:
            raise fail(f"{basic_auth_file}: expected one line user:password")
    oauth = bool(os.environ.get("FLOWER_AUTH"))  # Flower's own OAuth login (--auth regexp)
    if not (basic_auth or oauth) and not is_loopback(address):
        raise fail(
            f"refusing to serve Flower on {address or 'every interface'} without a password: "
            "its pages show workers and queues and its API can revoke tasks. Set "
            "FLOWER_BASIC_AUTH=user:password (or --basic-auth-file), or keep the default "
            "--address 127.0.0.1"
        )
    if basic_auth is None and not os.environ.get("FLOWER_UNAUTHENTICATED_API"):
        errors.print(
            "note: no FLOWER_BASIC_AUTH: the web UI (on this host only) is open and Flower's "
            "HTTP API is disabled"
        )
    env = dict(os.environ)
    if basic_auth:
        env["FLOWER_BASIC_AUTH"] = basic_auth  # the environment, not the command line
    command = flower_command(port, address, max_tasks)
    sys.stdout.flush()
    # Replace this process: signals (Ctrl-C, SIGTERM from a supervisor) go straight to Flower.
    os.execve(command[0], command, env)


def fake_provider(
    port: Annotated[int, typer.Option(help="port to listen on")] = 8199,
    host: Annotated[str, typer.Option(help="address to bind (loopback by default)")] = "127.0.0.1",
    config: Annotated[
        Path | None, typer.Option(help="YAML/JSON: latency, errors, limits, answers")
    ] = None,
) -> None:
    """Run the fake provider server (OpenAI, Anthropic and Gemini formats) for load tests."""
    from providers.fake_server import run_fake_provider

    run_fake_provider(port, host, str(config) if config else None)


def demo(
    items: Annotated[int, typer.Option(help="how many example tickets to run")] = 600,
) -> None:
    """Run the example tickets through three tiers on the embedded broker and SQLite ledger."""
    from batchrouter.demo import run_demo

    raise typer.Exit(run_demo(items, console))


db_app = typer.Typer(no_args_is_help=True, help="Ledger schema.")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the ledger's tables (Alembic, to the newest revision)."""
    from ledger.db import upgrade_schema

    upgrade_schema()
    errors.print("ledger schema is up to date")


def register(app: typer.Typer) -> None:
    app.command()(worker)
    app.command()(flower)
    app.command("fake-provider")(fake_provider)
    app.command()(demo)
    app.add_typer(db_app, name="db")
