"""Redis Lua scripts sent together: every call the event loop issues within one tick goes in
one pipeline, one round trip.

Each provider call runs two statistics scripts (worker/stats_store.py: begin before, end
after). Sent one by one, at hundreds of calls in flight, each paid its own round trip and its
own trip through redis-py's connection pool, and together they took 30% of a busy worker's
event loop (issue 17). Sent as one pipeline per tick they cost one round trip for all.

Nothing about the scripts changes: each EVALSHA still runs atomically on its own, in the order
issued (a pipeline is not a transaction, and needs none); each caller gets its own reply or
its own error. A script Redis does not know (it restarted and lost them) is loaded and the
calls that met NOSCRIPT are sent again. If the round trip fails, every caller in it gets the
error (the statistics middleware counts each as skipped: worker/deployment_stats.py).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from redis.exceptions import NoScriptError


@dataclass(frozen=True)
class _Call:
    script: Any  # redis.commands.core.AsyncScript: its `sha` and `script` text
    keys: list[str]
    args: list[Any]
    reply: asyncio.Future[Any]


class ScriptBatch:
    """Queues script calls on one event loop and sends each tick's calls as one pipeline."""

    def __init__(self, client: Any) -> None:
        self.client = client  # a redis.asyncio.Redis of this loop
        self._queued: list[_Call] = []
        self._sending: set[asyncio.Task[None]] = set()  # keeps the flush tasks referenced

    def call(self, script: Any, keys: list[str], args: list[Any] | None = None) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        call = _Call(script, keys, list(args or []), loop.create_future())
        self._queued.append(call)
        if len(self._queued) == 1:  # the first of this tick: send them all once it ends
            loop.call_soon(self._flush)
        return call.reply

    def _flush(self) -> None:
        calls, self._queued = self._queued, []
        task = asyncio.get_running_loop().create_task(self._send(calls))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, calls: list[_Call]) -> None:
        try:
            replies = await self._pipeline(calls)
            missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
            if missing:
                for script in {id(calls[i].script): calls[i].script for i in missing}.values():
                    await self.client.script_load(script.script)
                again = await self._pipeline([calls[i] for i in missing])
                for i, reply in zip(missing, again, strict=True):
                    replies[i] = reply
        except Exception as exc:  # the round trip failed: every caller in it hears so
            for call in calls:
                if not call.reply.done():
                    call.reply.set_exception(exc)
            return
        for call, reply in zip(calls, replies, strict=True):
            if call.reply.done():  # its caller gave up (cancelled)
                continue
            if isinstance(reply, Exception):
                call.reply.set_exception(reply)
            else:
                call.reply.set_result(reply)

    async def _pipeline(self, calls: list[_Call]) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        for call in calls:
            pipe.execute_command("EVALSHA", call.script.sha, len(call.keys), *call.keys, *call.args)
        return list(await pipe.execute(raise_on_error=False))
