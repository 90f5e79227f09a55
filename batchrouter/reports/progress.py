"""`submit --wait`: a live progress bar for a running batch, read from the ledger.

Beside the counts, the bar shows the rate over the last minute and the time left at that rate;
a pause (a budget spent, an operator's `pause`) replaces them with the reason and what resumes
the batch, and each change of the batch's state is printed as a line, so a paused batch never
looks like a stalled bar (issue 16). When the batch ends a summary line says how it went; the
hints for what to type next (`status --failed`, `retry --failed`) are `failed_hint` and
`interrupted_hint`, printed by the command.
"""

from __future__ import annotations

import re
import time
from collections import deque
from dataclasses import dataclass, field

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from batchrouter.api import wait_for_batch
from batchrouter.reports.terminal import usd
from ledger.batches import BatchStatus

RATE_WINDOW_S = 60.0  # the rate is the items done over the last minute (or since the start)
MIN_RATE_SPAN_S = 2.0  # below this there is no rate to show yet
# ledger/budgets.py writes "budget of $X for batch B exhausted (spent $Y)", or "for project P".
BUDGET_REASON = re.compile(r"^budget of \S+ for (batch|project) (\S+) exhausted")


@dataclass
class Pace:
    """Items done per second over a sliding window, and the time left at that rate."""

    window_s: float = RATE_WINDOW_S
    samples: deque[tuple[float, int]] = field(default_factory=deque)

    def add(self, now: float, done: int) -> None:
        self.samples.append((now, done))
        while len(self.samples) > 2 and now - self.samples[1][0] >= self.window_s:
            self.samples.popleft()

    def rate(self) -> float | None:
        if len(self.samples) < 2:
            return None
        (first, done_first), (last, done_last) = self.samples[0], self.samples[-1]
        span = last - first
        return None if span < MIN_RATE_SPAN_S else max(done_last - done_first, 0) / span

    def eta_s(self, remaining: int) -> float | None:
        rate = self.rate()
        return None if not rate else remaining / rate


def clock(seconds: float) -> str:
    """1:02:03, 4:05 or 0:07."""
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def resume_hint(status: BatchStatus) -> str:
    """What resumes a paused batch: a higher budget (its own or its project's), or `resume`."""
    found = BUDGET_REASON.match(status.paused_reason or "")
    if found and found.group(1) == "project":
        return f"raise it with `batchrouter budget --project {found.group(2)} --set USD`"
    if found:
        return f"raise it with `batchrouter budget {status.batch_id} --set USD`"
    return f"`batchrouter resume {status.batch_id}` resumes it"


def pace_detail(status: BatchStatus, pace: Pace) -> str:
    """The rate and time left, or the pause and its reason."""
    if status.state == "paused":
        return f"PAUSED: {status.paused_reason or 'paused'}"
    rate = pace.rate()
    if rate is None:
        return "measuring rate"
    eta = pace.eta_s(status.total - status.done)
    left = "ETA -" if eta is None else f"ETA {clock(eta)}"
    return f"{rate:,.1f} items/s, {left}"


def state_line(status: BatchStatus) -> str:
    """The line printed when the batch's state changes."""
    if status.state == "paused":
        return (
            f"batch {status.batch_id} paused: {status.paused_reason or 'no reason given'}; "
            f"still waiting: {resume_hint(status)}, or Ctrl-C to stop watching"
        )
    if status.state == "running":
        return f"batch {status.batch_id} running again"
    return f"batch {status.batch_id} {status.state}"


def summary_line(status: BatchStatus, elapsed_s: float) -> str:
    """The closing line: how the batch ended, in how long, and what it spent."""
    counts = [f"{status.succeeded} succeeded", f"{status.failed} failed"]
    if status.by_state.get("cancelled"):
        counts.append(f"{status.by_state['cancelled']} cancelled")
    ended = "cancelled" if status.state == "cancelled" else "finished"
    return (
        f"batch {status.batch_id} {ended} in {clock(elapsed_s)}: {status.total} items, "
        + ", ".join(counts)
        + f"; spent {usd(status.spent_usd)}"
    )


def failed_hint(status: BatchStatus) -> str:
    return (
        f"{status.failed} items failed: `batchrouter status {status.batch_id} --failed` lists "
        f"them with their reasons; `batchrouter retry {status.batch_id} --failed` runs them again"
    )


def interrupted_hint(batch_id: str) -> str:
    return (
        f"stopped watching; batch {batch_id} goes on without you: `batchrouter status {batch_id}` "
        f"shows it, `batchrouter results {batch_id} --out FILE` exports it when it ends, "
        f"`batchrouter retry {batch_id} --failed` re-runs failed items"
    )


def follow_batch(
    batch_id: str, console: Console, timeout: float | None = None, poll: float = 0.5
) -> BatchStatus:
    """Show the batch's progress on `console` until it ends; return its final status."""
    started = time.monotonic()
    pace = Pace()
    seen_state = "running"
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task(f"batch {batch_id[:8]}", total=None, detail="")

        def show(status: BatchStatus) -> None:
            nonlocal seen_state
            pace.add(time.monotonic(), status.done)
            if status.state != seen_state and not status.finished:
                seen_state = status.state
                bar.console.print(state_line(status), markup=False, highlight=False)
            waiting: dict[str, int] = {}
            for (tier, state), count in status.by_tier_state.items():
                if state in ("queued", "running"):
                    waiting[tier] = waiting.get(tier, 0) + count
            detail = f"ok {status.succeeded} failed {status.failed}"
            if waiting:
                detail += " | waiting " + " ".join(f"{t}:{n}" for t, n in sorted(waiting.items()))
            # In the ledger, not the broker: staged or inside a provider batch (deferred tiers),
            # and duplicates that settle with the first copy of their text.
            for state in ("deferred", "waiting"):
                if status.by_state.get(state):
                    detail += f" | {state} {status.by_state[state]}"
            detail += " | " + pace_detail(status, pace)
            bar.update(task, total=status.total, completed=status.done, detail=escape(detail))

        final = wait_for_batch(batch_id, timeout=timeout, poll=poll, on_progress=show)
    console.print(summary_line(final, time.monotonic() - started), markup=False, highlight=False)
    return final
