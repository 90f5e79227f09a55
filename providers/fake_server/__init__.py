"""A wire-faithful fake LLM provider: a real HTTP server on loopback speaking the OpenAI,
Anthropic and Gemini formats, with latency, error injection and enforced RPM/TPM limits.

    with running_fake_server(FakeServerConfig(latency=LatencyConfig(ms=50))) as base_url:
        OpenAI(base_url=f"{base_url}/v1", api_key="x")   # OpenAI format
        Anthropic(base_url=base_url, api_key="x")         # Anthropic format
        # Gemini: POST {base_url}/v1beta/models/{model}:generateContent

`"stream": true` is answered with server-sent events in the OpenAI or Anthropic format
(streaming.py); Anthropic's /v1/messages/count_tokens and prompt-cache usage (caching.py) are
served too.

Batch APIs: OpenAI /v1/files + /v1/batches, Anthropic /v1/messages/batches (batch_api.py).

Stats: GET {base_url}/_stats; POST {base_url}/_reset clears stats, limit buckets and batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from collections.abc import Callable, Iterator

from providers.fake_server.app import FakeApp
from providers.fake_server.config import (
    ERROR_KINDS,
    AnswerConfig,
    BatchConfig,
    ErrorsConfig,
    FakeServerConfig,
    LatencyConfig,
    LimitsConfig,
    load_fake_config,
)
from providers.fake_server.wire import handle_connection

__all__ = [
    "ERROR_KINDS",
    "AnswerConfig",
    "BatchConfig",
    "ErrorsConfig",
    "FakeApp",
    "FakeServerConfig",
    "LatencyConfig",
    "LimitsConfig",
    "load_fake_config",
    "make_app",
    "run_fake_provider",
    "running_fake_server",
    "serve",
]

log = logging.getLogger("batchrouter.fake_server")
BACKLOG = 4096  # >= 1000 clients may connect at once


def make_app(config: FakeServerConfig | None = None) -> FakeApp:
    return FakeApp(config or FakeServerConfig())


async def serve(
    config: FakeServerConfig | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    app: FakeApp | None = None,
    ready: Callable[[int], None] | None = None,
    stop: asyncio.Event | None = None,
    log_every_s: float | None = None,
) -> None:
    """Serve until `stop` is set (forever without one). `ready(port)` is called once listening;
    with `log_every_s`, the request counts are logged that often (besides GET /_stats)."""
    app = app or make_app(config)
    tasks: set[asyncio.Task[None]] = set()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            tasks.add(task)
        try:
            await handle_connection(reader, writer, app)
        except asyncio.CancelledError:
            # Shutdown. Finish normally: 3.11's stream callback would log a cancelled task.
            writer.close()
        finally:
            if task is not None:
                tasks.discard(task)

    server = await asyncio.start_server(on_connect, host, port, backlog=BACKLOG)
    bound = server.sockets[0].getsockname()[1]
    log.info("fake provider listening on http://%s:%d", host, bound)
    if ready is not None:
        ready(bound)
    reporter = asyncio.create_task(_report(app, log_every_s)) if log_every_s else None
    try:
        await (stop.wait() if stop is not None else asyncio.Event().wait())
    finally:
        if reporter is not None:
            reporter.cancel()
        server.close()
        for task in list(tasks):
            task.cancel()  # hanging requests would otherwise keep the loop alive
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


async def _report(app: FakeApp, every_s: float) -> None:
    while True:
        await asyncio.sleep(every_s)
        stats = app.stats()
        log.info(
            "requests=%d in_flight=%d peak=%d by_status=%s injected=%s rate_limited=%d",
            stats["requests"],
            stats["in_flight"],
            stats["peak_in_flight"],
            stats["by_status"],
            stats["injected"],
            stats["rate_limited"],
        )


@contextlib.contextmanager
def running_fake_server(
    config: FakeServerConfig | None = None, host: str = "127.0.0.1", port: int = 0
) -> Iterator[str]:
    """Run a server in a background thread with its own loop; yields its base URL."""
    started = threading.Event()
    state: dict[str, object] = {}

    def main() -> None:
        loop = asyncio.new_event_loop()
        stop = asyncio.Event()
        state["loop"], state["stop"] = loop, stop

        def ready(bound: int) -> None:
            state["port"] = bound
            started.set()

        try:
            loop.run_until_complete(serve(config, host, port, ready=ready, stop=stop))
        except BaseException as exc:  # surface bind errors to the caller
            state["error"] = exc
            started.set()
        finally:
            loop.close()

    thread = threading.Thread(target=main, name="fake-provider", daemon=True)
    thread.start()
    started.wait(30)
    if "error" in state or "port" not in state:
        raise RuntimeError(f"fake provider did not start: {state.get('error')}")
    try:
        yield f"http://{host}:{state['port']}"
    finally:
        loop = state["loop"]
        stop = state["stop"]
        assert isinstance(loop, asyncio.AbstractEventLoop) and isinstance(stop, asyncio.Event)
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def run_fake_provider(
    port: int = 8199, host: str = "127.0.0.1", config_path: str | None = None
) -> None:
    """Blocking entry point for `batchrouter fake-provider` and `python -m ...fake_server`."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    config = load_fake_config(config_path)
    print(
        f"fake provider on http://{host}:{port}  (OpenAI: /v1/chat/completions, Anthropic: "
        f"/v1/messages, Gemini: /v1beta/models/MODEL:generateContent, batches: /v1/batches "
        f"and /v1/messages/batches, stats: /_stats)",
        flush=True,
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(config, host, port, log_every_s=10.0))
