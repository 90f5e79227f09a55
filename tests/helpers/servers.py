"""Servers the tests start themselves, and a database they may borrow on one they did not.

The rule (README, `make test`): tests never stop, restart or flush a server they did not start.
So a test that must kill or restart Redis or PostgreSQL starts its own here: a `redis-server`
or an `initdb` cluster on a free port, in a temporary folder of its own. Each object stops only
the process it started (Redis: the child it spawned; PostgreSQL: the postmaster of its own data
folder) and removes its folder, also when the test failed.

`claim_empty_database` is for a Redis the suite did not start (BATCHROUTER_TEST_REDIS_URL): it
takes a database that is empty, marks it as this run's, and only ever deletes keys in it.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import cast
from urllib.parse import urlparse, urlunparse

import redis

from tests.helpers.net import free_port


class ServerError(RuntimeError):
    """A server could not be started (the binary is missing, its port was taken, ...)."""


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --- Redis ------------------------------------------------------------------------------------


class RedisServer:
    """A `redis-server` child process on 127.0.0.1 (or `host`), keeping nothing on disk."""

    def __init__(self, folder: Path, host: str = "127.0.0.1") -> None:
        self.folder = folder
        self.host = host
        self.port = 0
        self.process: subprocess.Popen | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://{self.host}:{self.port}/{db}"

    def start(self) -> None:
        """Start on a free port (the first time) or on the port it had (after `stop`)."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServerError("redis-server is not on PATH")
        for _ in range(3 if self.port == 0 else 1):  # a free port may be taken before we bind
            port = self.port or free_port()
            log = self.folder / "redis.log"
            command = [binary, "--port", str(port), "--bind", self.host, "--daemonize", "no"]
            command += ["--dir", str(self.folder), "--logfile", str(log)]
            command += ["--save", "", "--appendonly", "no"]
            if self.host != "127.0.0.1":  # a test network's address (tests/helpers/net.py),
                command += ["--protected-mode", "no"]  # reachable from its namespaces only
            self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL)
            if self._wait_ready(port):
                self.port = port
                return
            self.stop()
        raise ServerError(f"redis-server did not start on port {port}:\n{_log_tail(log)}")

    def _wait_ready(self, port: int, timeout: float = 10) -> bool:
        client = redis.Redis(
            host=self.host, port=port, socket_connect_timeout=0.5, socket_timeout=0.5
        )
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline and self.process and self.process.poll() is None:
                try:
                    if client.ping():
                        return True
                except redis.RedisError:
                    time.sleep(0.02)
            return False
        finally:
            client.close()

    def stop(self) -> None:
        """Stop the process this object started. With no save points Redis writes nothing: its
        data (queues included) is gone, as after a crash of a Redis that keeps nothing."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def empty(self) -> None:
        """Delete every key of every database: allowed, because this server is ours."""
        client = redis.Redis.from_url(self.url())
        try:
            client.flushall()
        finally:
            client.close()


@contextmanager
def redis_server(host: str = "127.0.0.1") -> Iterator[RedisServer]:
    """A running RedisServer in a temporary folder; stopped and removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="batchrouter-redis-"))
    server = RedisServer(folder, host)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


# --- A database on a Redis the suite did not start --------------------------------------------

CLAIM_KEY = "batchrouter-tests:claimed-by"


class ClaimedDatabase:
    """An empty database of someone else's Redis, claimed for this test run.

    It was empty when claimed and carries the claim key, so every key in it is this run's:
    `clean` deletes them one by one (never FLUSHDB/FLUSHALL), `release` leaves it empty."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token
        self.client = redis.Redis.from_url(url)

    def clean(self) -> None:
        self.client.set(CLAIM_KEY, self.token, nx=True)  # a test may have deleted it
        ours = [k for k in self.client.scan_iter(count=1000) if k != CLAIM_KEY.encode()]
        for start in range(0, len(ours), 500):
            self.client.unlink(*ours[start : start + 500])

    def release(self) -> None:
        self.clean()
        if self.client.get(CLAIM_KEY) == self.token.encode():
            self.client.delete(CLAIM_KEY)
        self.client.close()


def claim_empty_database(url: str) -> ClaimedDatabase:
    """The first empty database of `url`'s server, trying the one the URL names first.

    A database holding any key is left alone (its keys are neither read nor written), so two
    runs, or a run and a developer's own data, never share one: the claim key is set only if
    absent, and the database is kept only if that key is then the only one in it."""
    parsed = urlparse(url)
    named = int(parsed.path.strip("/") or 0)
    probe = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        try:
            count = int(cast(dict, probe.config_get("databases"))["databases"])
        except (redis.ResponseError, KeyError):  # CONFIG is disabled on some managed servers
            count = 16
    finally:
        probe.close()
    token = uuid.uuid4().hex
    for db in [named, *(n for n in range(count) if n != named)]:
        candidate = urlunparse(parsed._replace(path=f"/{db}"))
        client = redis.Redis.from_url(candidate)
        try:
            if client.dbsize() == 0 and client.set(CLAIM_KEY, token, nx=True):
                if client.dbsize() == 1:
                    return ClaimedDatabase(candidate, token)
                client.delete(CLAIM_KEY)  # someone wrote there meanwhile: theirs, not ours
        finally:
            client.close()
    where = urlunparse(parsed._replace(path=""))
    raise ServerError(
        f"no empty database among the {count} of {where}; the tests use only an empty one"
    )


# --- PostgreSQL -------------------------------------------------------------------------------


def _pg_bindir() -> Path:
    """BATCHROUTER_TEST_PG_BINDIR, else the newest /usr/lib/postgresql/N/bin, else PATH."""
    if "BATCHROUTER_TEST_PG_BINDIR" in os.environ:
        return Path(os.environ["BATCHROUTER_TEST_PG_BINDIR"])
    versions = Path("/usr/lib/postgresql").glob("*/bin/initdb")
    newest = sorted(versions, key=lambda p: [int(n) for n in re.findall(r"\d+", p.parts[-3])])
    if newest:
        return newest[-1].parent
    initdb = shutil.which("initdb")
    if initdb is None:
        raise ServerError("initdb not found (set BATCHROUTER_TEST_PG_BINDIR)")
    return Path(initdb).parent


class PostgresCluster:
    """A PostgreSQL cluster made by `initdb` in a folder of its own, served on 127.0.0.1.

    PostgreSQL refuses to run as root; as root, its commands run as the OS user
    BATCHROUTER_TEST_PG_OS_USER (default `postgres`) through `runuser`."""

    def __init__(self, folder: Path, host: str = "127.0.0.1") -> None:
        self.folder = folder
        self.host = host  # the address it listens on; its /24 may connect without a password
        self.data = folder / "data"
        self.port = 0
        self.bindir = _pg_bindir()
        self.os_user: str | None = None
        if os.geteuid() == 0:
            self.os_user = os.environ.get("BATCHROUTER_TEST_PG_OS_USER", "postgres")

    @property
    def admin_url(self) -> str:
        return f"postgresql+psycopg://postgres@{self.host}:{self.port}/postgres"

    def _run(self, *command: str, timeout: float = 120) -> None:
        argv = [str(self.bindir / command[0]), *command[1:]]
        if self.os_user is not None:
            argv = ["runuser", "-u", self.os_user, "--", *argv]
        # Output to a file, not a pipe: a postmaster that pg_ctl starts would hold a pipe open.
        with (self.folder / "commands.log").open("a+") as out:
            start = out.tell()
            try:
                done = subprocess.run(argv, stdout=out, stderr=out, timeout=timeout)
            except FileNotFoundError as exc:  # no runuser, or no such binary
                raise ServerError(str(exc)) from exc
            out.seek(start)
            said = out.read()
        if done.returncode != 0:
            log = _log_tail(self.folder / "postgres.log")
            raise ServerError(f"{' '.join(argv)} failed:\n{said}\n{log}")

    def init(self) -> None:
        if self.os_user is not None:
            owner = pwd.getpwnam(self.os_user)
            os.chown(self.folder, owner.pw_uid, owner.pw_gid)
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust",
            "-E", "UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip
        # Throwaway data: no fsync. A fast restart is still a clean shutdown.
        settings = [
            f"listen_addresses = '{self.host}'",
            f"unix_socket_directories = '{self.folder}'",
            "fsync = off",
            "synchronous_commit = off",
            "full_page_writes = off",
        ]
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\n# batchrouter tests\n" + "\n".join(settings) + "\n")
        if self.host != "127.0.0.1":  # hosts of a test network (tests/helpers/net.py)
            network = self.host.rsplit(".", 1)[0] + ".0/24"
            with (self.data / "pg_hba.conf").open("a") as hba:
                hba.write(f"host all all {network} trust\n")

    def start(self) -> None:
        for _ in range(3 if self.port == 0 else 1):  # a free port may be taken before we bind
            port = self.port or free_port()
            with (self.data / "postgresql.conf").open("a") as conf:
                conf.write(f"port = {port}\n")  # the last setting of a name wins
            try:
                self._pg_ctl("start")
            except ServerError:
                if self.port:
                    raise
                continue
            self.port = port
            return
        raise ServerError(f"PostgreSQL did not start:\n{_log_tail(self.folder / 'postgres.log')}")

    def _pg_ctl(self, action: str, *options: str) -> None:
        log = str(self.folder / "postgres.log")
        self._run("pg_ctl", action, "-D", str(self.data), "-l", log, "-w", "-t", "60", *options)

    def restart(self) -> None:
        """A fast restart: every open connection is broken, as in a failover."""
        self._pg_ctl("restart", "-m", "fast")

    def stop(self) -> None:
        """Stop this cluster's postmaster (pg_ctl, else SIGKILL to the pid in its own folder)."""
        pid_file = self.data / "postmaster.pid"
        if not pid_file.exists():
            return
        try:
            self._pg_ctl("stop", "-m", "fast")
        except (ServerError, subprocess.TimeoutExpired):
            pid = int(pid_file.read_text().split()[0]) if pid_file.exists() else 0
            try:  # only if that pid is still our postmaster (`postgres -D <our data folder>`)
                ours = str(self.data).encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                ours = False
            if ours:
                os.kill(pid, signal.SIGKILL)

    def create_database(self, name: str) -> str:
        from sqlalchemy import create_engine, text
        from sqlalchemy.pool import NullPool

        admin = create_engine(self.admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        return self.admin_url.rsplit("/", 1)[0] + f"/{name}"


@contextmanager
def postgres_cluster(host: str = "127.0.0.1") -> Iterator[PostgresCluster]:
    """A running PostgresCluster in a temporary folder; stopped and removed afterwards.

    The folder is made with mkdtemp (under /tmp, not pytest's tmp_path: PostgreSQL's OS user
    must be able to reach it)."""
    folder = Path(tempfile.mkdtemp(prefix="batchrouter-pg-"))
    cluster: PostgresCluster | None = None
    try:
        cluster = PostgresCluster(folder, host)
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        if cluster is not None:
            cluster.stop()  # also after a start that failed half-way
        shutil.rmtree(folder, ignore_errors=True)
