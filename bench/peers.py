"""P2's ceiling and peer, measured in the same run against the same fake server (issue 17).

- `aiohttp`: a bare aiohttp client, nothing but the calls: the most this machine can push
  through the fake server at this latency and concurrency. P2's baseline.
- `litellm`: LiteLLM's Router with a fallback deployment, the usual way to call several
  providers from Python: the peer line (the optional `bench` extra; users never install it).
- `adapter`: batchrouter's own OpenAI adapter alone (providers/http.py), no queue or ledger,
  over the client BATCHROUTER_HTTP_CLIENT names: what the HTTP layer leaves to the pipeline.

Each runs in PROCESSES client processes of CONCURRENCY calls each, the shape of P2's workers
(2 processes x BATCHROUTER_MAX_IN_FLIGHT), over the same items and prompt. A child loads and
connects nothing until the parent says go, so imports (LiteLLM's take seconds) are not timed.
The rate is P2's: calls finished after the first one, over the time from the first to the last.

Child: `python -m bench.peers KIND --url URL --items FILE --share I/N --concurrency C`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import LABELS, bench_env
from bench.fake_run import cpu_seconds

KEY = "bench-key"  # what the fake server is configured to accept
MODEL = "gpt-4o-mini"
MAX_TOKENS = 16


@dataclass
class PeerRun:
    kind: str
    calls: int
    errors: int
    seconds: float  # first finished call to the last
    rate: float  # calls/s over that span
    server_cpu: float  # the fake server's CPU over the run, as a share of one core
    clients_cpu: float  # all client processes' CPU, as a share of one core
    error_sample: str = ""


def prompts(items: Path, share: int, shares: int) -> list[str]:
    """The prompt P2's routing file renders for each item of this child's share."""
    out = []
    for i, line in enumerate(items.read_text().splitlines()):
        if i % shares == share:
            text = json.loads(line)["text"]
            out.append(f"Labels: {', '.join(LABELS)}\nTicket: {text}")
    return out


async def _drive(call: Any, texts: list[str], concurrency: int) -> tuple[list[float], list[str]]:
    """Run `call(text)` over `texts` with `concurrency` open at once; completion times, errors."""
    done: list[float] = []
    errors: list[str] = []
    queue = iter(texts)

    async def lane() -> None:
        for text in queue:
            try:
                await call(text)
                done.append(time.time())
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}"[:300])

    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return done, errors


async def _bare_aiohttp(url: str, texts: list[str], concurrency: int) -> tuple[list, list]:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=0)
    headers = {"Authorization": f"Bearer {KEY}"}
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def call(text: str) -> None:
            payload = {
                "model": MODEL,
                "messages": [{"role": "user", "content": text}],
                "max_completion_tokens": MAX_TOKENS,
            }
            async with session.post(f"{url}/v1/chat/completions", json=payload) as response:
                body = await response.json()
                if response.status != 200 or not body["choices"][0]["message"]["content"]:
                    raise RuntimeError(f"HTTP {response.status}")

        return await _drive(call, texts, concurrency)


async def _litellm(url: str, texts: list[str], concurrency: int) -> tuple[list, list]:
    import litellm
    from litellm import Router

    litellm.telemetry = False
    litellm.suppress_debug_info = True
    params = {"model": f"openai/{MODEL}", "api_base": f"{url}/v1", "api_key": KEY}
    router = Router(
        model_list=[
            {"model_name": "fake", "litellm_params": dict(params)},
            {"model_name": "fake-fallback", "litellm_params": dict(params)},
        ],
        fallbacks=[{"fake": ["fake-fallback"]}],
    )

    async def call(text: str) -> None:
        response = await router.acompletion(
            model="fake", messages=[{"role": "user", "content": text}], max_tokens=MAX_TOKENS
        )
        if not response.choices[0].message.content:
            raise RuntimeError("empty answer")

    return await _drive(call, texts, concurrency)


async def _adapter(url: str, texts: list[str], concurrency: int) -> tuple[list, list]:
    from providers.http import aclose_client
    from providers.openai_compat import OpenAICompatProvider
    from routing.deployments import Deployment, Timeouts
    from routing.types import CompletionRequest, Message

    os.environ["BENCH_FAKE_KEY"] = KEY
    deployment = Deployment(
        provider="openai",
        model=MODEL,
        api_base=f"{url}/v1",
        api_key_env="BENCH_FAKE_KEY",
        max_output_tokens=MAX_TOKENS,
        timeouts=Timeouts(read=60, pool=60),
    )
    provider = OpenAICompatProvider()

    async def call(text: str) -> None:
        request = CompletionRequest(
            deployment="fake", model=MODEL, messages=[Message(role="user", content=text)]
        )
        await provider.complete(request, deployment)

    try:
        return await _drive(call, texts, concurrency)
    finally:
        await aclose_client()


CLIENTS = {"aiohttp": _bare_aiohttp, "litellm": _litellm, "adapter": _adapter}


def child(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.peers")
    parser.add_argument("kind", choices=sorted(CLIENTS))
    parser.add_argument("--url", required=True)
    parser.add_argument("--items", type=Path, required=True)
    parser.add_argument("--share", required=True, help="I/N: every Nth item from the Ith")
    parser.add_argument("--concurrency", type=int, required=True)
    args = parser.parse_args(argv)
    share, shares = (int(n) for n in args.share.split("/"))
    texts = prompts(args.items, share, shares)
    if args.kind == "litellm":
        import litellm  # noqa: F401  (imported before "ready": it takes seconds)
    print("ready", flush=True)
    sys.stdin.readline()  # go
    cpu = time.process_time()
    done, errors = asyncio.run(CLIENTS[args.kind](args.url, texts, args.concurrency))
    report = {
        "done": done,
        "errors": len(errors),
        "sample": errors[:1],
        "cpu": time.process_time() - cpu,
    }
    print(json.dumps(report), flush=True)


def measure(
    kind: str,
    url: str,
    server_pid: int,
    items: Path,
    *,
    processes: int,
    concurrency: int,
    env: dict[str, str] | None = None,
    timeout: float = 600,
) -> PeerRun:
    """Run `processes` children of `kind` over `items` against the server at `url`."""
    # LiteLLM fetches its price map from the internet unless told to use its own copy.
    environment = bench_env(LITELLM_LOCAL_MODEL_COST_MAP="True", **(env or {}))
    children = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.peers",
                kind,
                "--url",
                url,
                "--items",
                str(items),
                "--share",
                f"{i}/{processes}",
                "--concurrency",
                str(concurrency),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=environment,
        )  # fmt: skip
        for i in range(processes)
    ]
    try:
        for process in children:
            assert process.stdout is not None and process.stdin is not None
            if process.stdout.readline().strip() != "ready":
                raise RuntimeError(f"bench.peers {kind} did not start (exit {process.wait()})")
        cpu_before, began = cpu_seconds(server_pid), time.perf_counter()
        for process in children:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        reports = []
        for process in children:  # each prints one JSON line and exits
            out, _ = process.communicate(timeout=timeout)
            if process.returncode != 0 or not out.strip():
                raise RuntimeError(f"bench.peers {kind} failed (exit {process.returncode})")
            reports.append(json.loads(out.strip().splitlines()[-1]))
        wall = time.perf_counter() - began
        server_cpu = (cpu_seconds(server_pid) - cpu_before) / wall
    finally:
        for process in children:
            if process.poll() is None:
                process.kill()
                process.wait()
    done = sorted(t for report in reports for t in report["done"])
    errors = sum(report["errors"] for report in reports)
    span = done[-1] - done[0] if len(done) > 1 else 0.0
    return PeerRun(
        kind,
        len(done),
        errors,
        span,
        (len(done) - 1) / span if span > 0 else 0.0,
        server_cpu,
        sum(report["cpu"] for report in reports) / wall,
        next((s for report in reports for s in report["sample"]), ""),
    )


if __name__ == "__main__":
    child(sys.argv[1:])
