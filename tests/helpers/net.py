"""Small helpers for the operations tests: free ports, polling, and hosts in network
namespaces (root only) for partition tests."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def poll(check: Callable[[], T | None], timeout: float, what: str, every: float = 0.2) -> T:
    """Call `check` until it returns something truthy; fail with `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as exc:  # the service is still starting
            last_error = exc
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} ({last_error!r})")


def run_closing_client(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run(coro), then close that loop's pooled provider client (providers/http.py), so
    no socket outlives its loop."""
    from providers import http

    async def main() -> T:
        try:
            return await coro
        finally:
            await http.aclose_client()

    return asyncio.run(main())


# --- Hosts in network namespaces (tests/faults/test_partition.py) -----------------------------


def _ip(*args: str, namespace: str | None = None, check: bool = True) -> None:
    command = (
        ["ip", *args] if namespace is None else ["ip", "netns", "exec", namespace, "ip", *args]
    )
    done = subprocess.run(command, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise NetworkError(f"{' '.join(command)}: {done.stderr.strip() or done.returncode}")


class NetworkError(RuntimeError):
    """A namespace, link or address could not be set up."""


def namespaces_unavailable() -> str | None:
    """Why this machine cannot give tests network namespaces (None: it can): not root, no
    `ip`, or the kernel refuses (an unprivileged container)."""
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root"
    probe = f"brprobe{os.getpid()}"
    try:
        _ip("netns", "add", probe)
        _ip("link", "add", "br0", "type", "bridge", namespace=probe)
        _ip("link", "add", "v0", "type", "veth", "peer", "name", "v1", namespace=probe)
    except NetworkError as exc:
        return f"cannot create network namespaces, bridges or veth pairs here: {exc}"
    finally:
        _ip("netns", "del", probe, check=False)
    return None


@dataclass
class Lan:
    """One network: a bridge in a namespace of its own (the switch), with a port for the root
    namespace (where the tests' servers listen, on `server_address`) and one per host.
    Cutting a host unplugs its port: its packets, and those sent to it, vanish silently, as
    on a real partition (no reset, no error until a timeout says so)."""

    name: str  # the switch's namespace
    subnet: str  # "10.a.b"
    root_link: str
    ports: dict[str, str] = field(default_factory=dict)  # host namespace -> switch port

    @property
    def server_address(self) -> str:
        return f"{self.subnet}.1"

    def cut(self, host: str) -> None:
        _ip("link", "set", self.ports[host], "down", namespace=self.name)

    def reconnect(self, host: str) -> None:
        _ip("link", "set", self.ports[host], "up", namespace=self.name)


@dataclass
class Hosts:
    """Hosts (network namespaces) on one or more LANs; `run` prefixes a command with
    `ip netns exec HOST`."""

    prefix: str
    lans: dict[str, Lan] = field(default_factory=dict)
    hosts: list[str] = field(default_factory=list)

    def run(self, host: str) -> list[str]:
        return ["ip", "netns", "exec", host]

    def cut(self, host: str, *lans: str) -> None:
        for lan in lans or tuple(self.lans):
            self.lans[lan].cut(host)

    def reconnect(self, host: str, *lans: str) -> None:
        for lan in lans or tuple(self.lans):
            self.lans[lan].reconnect(host)


def _free_subnet(taken: set[str]) -> str:
    routes = subprocess.run(["ip", "-4", "route", "show", "table", "all"],
                            capture_output=True, text=True).stdout  # fmt: skip
    for _ in range(200):
        subnet = f"10.{random.randint(100, 250)}.{random.randint(0, 255)}"
        if subnet not in taken and f"{subnet}." not in routes:
            return subnet
    raise NetworkError("no free 10.x.y.0/24 subnet for the test network")


@contextmanager
def hosts_on_lans(hosts: int, lans: tuple[str, ...] = ("lan",)) -> Iterator[Hosts]:
    """`hosts` namespaces, each plugged into every LAN; removed afterwards (with every link:
    deleting a namespace deletes the veth ends in it, and their peers)."""
    prefix = f"br{os.getpid() % 100000}{random.randint(0, 99):02d}"
    made = Hosts(prefix)
    namespaces: list[str] = []
    try:
        for index, lan_name in enumerate(lans):
            switch = f"{prefix}-{lan_name}"
            subnet = _free_subnet({lan.subnet for lan in made.lans.values()})
            root_link = f"{prefix}l{index}"
            _ip("netns", "add", switch)
            namespaces.append(switch)
            _ip("link", "add", "br0", "type", "bridge", namespace=switch)
            _ip("link", "set", "br0", "up", namespace=switch)
            _ip("link", "add", root_link, "type", "veth", "peer", "name", "root", "netns", switch)
            _ip("link", "set", "root", "master", "br0", "up", namespace=switch)
            _ip("addr", "add", f"{subnet}.1/24", "dev", root_link)
            _ip("link", "set", root_link, "up")
            made.lans[lan_name] = Lan(switch, subnet, root_link)
        for number in range(1, hosts + 1):
            host = f"{prefix}-h{number}"
            _ip("netns", "add", host)
            namespaces.append(host)
            made.hosts.append(host)
            _ip("link", "set", "lo", "up", namespace=host)
            for index, lan in enumerate(made.lans.values()):
                port = f"h{number}"
                _ip("link", "add", port, "type", "veth", "peer", "name", f"eth{index}",
                    "netns", host, namespace=lan.name)  # fmt: skip
                _ip("link", "set", port, "master", "br0", "up", namespace=lan.name)
                _ip("addr", "add", f"{lan.subnet}.{10 + number}/24", "dev", f"eth{index}",
                    namespace=host)  # fmt: skip
                _ip("link", "set", f"eth{index}", "up", namespace=host)
                lan.ports[host] = port
        yield made
    finally:
        for namespace in reversed(namespaces):
            _ip("netns", "del", namespace, check=False)
        for lan in made.lans.values():
            _ip("link", "del", lan.root_link, check=False)  # gone with its peer, normally
