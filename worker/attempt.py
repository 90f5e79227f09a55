"""One item on one tier: choose a deployment, call it, judge the output, decide what follows.

This is the worker's inner loop, written over the provider contract and the pure routing core;
it touches neither Celery nor the database, so it runs the same under a worker, in replay and in
evaluation. It never raises: every failure becomes an attempt record and an outcome (a
failure preparing or judging the item ends that item `failed` with the reason).

Under a worker, a journal (worker/journal.py) makes each call durable: a row before the call,
its outcome soon after. An item claimed again after its worker died continues from the calls
its dead round made (`ClaimedItem.dead_round`): an answer already judged settles it without
another call.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from ledger.cache import CachedAnswer, request_key
from ledger.models import ItemState
from ledger.outcomes import AttemptRecord, ClaimedItem, ItemOutcome
from ledger.superseded import not_sent
from providers.base import get_provider
from providers.errors import backoff_delay, redact
from routing.config import RoutingConfig, TaskType
from routing.deployments import Deployment
from routing.policy import (
    RETRYABLE,
    Step,
    after_error,
    fits_context,
    next_tier,
    when_tier_exhausted,
)
from routing.prices import Prices
from routing.templates import TemplateError
from routing.tokens import count_message_tokens
from routing.types import (
    CompletionRequest,
    CompletionResult,
    ErrorClass,
    Message,
    ProviderError,
    Usage,
)
from worker.cache_hits import hit_record
from worker.journal import CallJournal, LedgerUnavailable
from worker.judging import best_record, judge_and_decide, resume
from worker.middleware import CallContext, Denied, Middleware, installed
from worker.outage import RungHealth, outage_outcome
from worker.requests import build_request, cache_policy, fill_usage, item_messages

log = logging.getLogger("batchrouter.worker")
# One line per provider call, at DEBUG: a worker logs per chunk at INFO (worker/pipeline.py);
# BATCHROUTER_LOG_CALLS=1 shows these at INFO too (worker/app.py).
calls_log = logging.getLogger("batchrouter.calls")


def call_log_level() -> int:
    from routing.settings import get_settings

    return logging.INFO if get_settings().log_calls else logging.DEBUG


Sleep = Callable[[float], Awaitable[None]]
# Backoff jitter needs no seed of its own per item (seeding from os.urandom for every item
# was a measurable share of the worker's time); evaluate passes a seeded one.
_JITTER = random.Random()


@dataclass
class _Run:
    """The state of one item's round on its tier: its calls so far and how to make another."""

    item: ClaimedItem
    config: RoutingConfig
    task: TaskType
    messages: list[Message]
    records: list[AttemptRecord] = field(default_factory=list)
    calls: int = 0  # counted against the task type's attempt cap
    middleware: list[Middleware] = field(default_factory=list)
    prompt_tokens: int = 0
    journal: CallJournal | None = None
    cached: dict[str, CachedAnswer] = field(default_factory=dict)  # this round's cache hits

    def can_call(self) -> bool:
        return self.calls < self.task.max_attempts

    async def call(
        self, name: str, *, sample: int | None = None, tier: str | None = None
    ) -> tuple[AttemptRecord, CompletionResult | ProviderError] | Denied:
        """One answer from deployment `name`, recorded whatever happens: from the response
        cache when it holds this very request (no cost, no middleware), else a provider call,
        unless a middleware denies it or the item's claim is lost (then nothing is called,
        recorded or counted). `sample` (a consensus's j-th answer of `name`) records it as a
        sample; `tier` records it on another rung than the item's (an audit call). An error, or a sample, is settled in the journal at once; an answer when it
        has been judged."""
        began = time.perf_counter()  # the call's time in this worker counts from here
        deployment = self.config.deployments[name]
        attempt_no = self.item.attempt_no_base + self.calls + 1
        request = build_request(
            self.task, name, deployment, self.messages, self.item, attempt_no, sample or 0
        )
        key = request_key(self.task.cache_namespace, name, request) if self.task.cache else None
        hit = self.cached.get(key) if key is not None else None
        if hit is not None:
            record = hit_record(
                self.config, name, hit, attempt_no, tier or self.item.tier, self.messages
            )
            self.calls += 1
            self.records.append(record)
            if sample is not None:
                record.outcome = "sample"
            return record, CompletionResult(
                text=hit.output, usage=Usage(), token_logprobs=hit.token_logprobs
            )
        prices = self.config.prices_for(name)
        ctx = CallContext(
            self.item, self.config, self.task, name, deployment, prices,
            self.prompt_tokens, deployment.max_output_tokens,
            sum(record.cost_usd for record in self.records),
        )  # fmt: skip
        for index, layer in enumerate(self.middleware):
            denied = await layer.before_call(ctx)
            if denied is not None:
                for admitted in reversed(self.middleware[:index]):
                    await admitted.release(ctx)
                return denied
        record = AttemptRecord(
            attempt_no=attempt_no,
            tier=tier or self.item.tier,
            deployment=name,
            provider=deployment.provider,
            model=deployment.model,
            outcome="error",
            prices=prices.model_dump(),
            cache_key=key,
        )
        if self.journal is not None:
            try:
                held = await self.journal.intent(self.item, record, ctx.estimated_cost_usd)
            except LedgerUnavailable:
                held = None
            if not held:
                for layer in reversed(self.middleware):
                    await layer.release(ctx)
                if held is None:
                    raise LedgerUnavailable("the call's intent could not be written")
                # Never sent: if a first try of the intent did commit unheard (a cut-off
                # ledger), its row is set to cost 0 when this round's outcome is refused.
                self.records.append(not_sent(record))
                return Denied("the item's claim was taken over by another worker")
        self.calls += 1
        self.records.append(record)
        result = await self._call(record, request, deployment, prices)
        # The provider's latency is what the HTTP client measured from sending the request;
        # the rest of the call's time was spent here: middleware (rate limits, budget and
        # statistics round trips), the journal's intent write, waiting for a pooled connection,
        # and for a busy event loop to run this coroutine again.
        wall_ms = (time.perf_counter() - began) * 1000.0
        record.queued_ms = max(wall_ms - record.latency_ms, 0.0)
        level = call_log_level()
        if calls_log.isEnabledFor(level):
            calls_log.log(
                level,
                "item %s attempt %d: %s %s in %.0f ms (+%.0f ms queued in the worker)",
                self.item.external_id,
                record.attempt_no,
                name,
                record.error_class or "answered",
                record.latency_ms,
                record.queued_ms,
            )
        for layer in reversed(self.middleware):
            await layer.after_call(ctx, record, result)
        if sample is not None:
            record.outcome = "sample"
        if sample is not None or isinstance(result, ProviderError):
            self.settle(record)
        return record, result

    def settle(self, record: AttemptRecord) -> None:
        if self.journal is not None:
            self.journal.settled(self.item, record)

    async def _call(
        self,
        record: AttemptRecord,
        request: CompletionRequest,
        deployment: Deployment,
        prices: Prices,
    ) -> CompletionResult | ProviderError:
        try:
            result = await get_provider(deployment.provider).complete(request, deployment)
        except ProviderError as error:
            fill_usage(record, error.billed_usage, prices)
            record.latency_ms = error.latency_ms
            record.error_class = error.error_class.value
            record.error_message = redact(error.message)
            return error
        except Exception as exc:  # a bug in an adapter must not kill the worker
            record.error_class = ErrorClass.INTERNAL.value
            record.error_message = redact(f"{type(exc).__name__}: {exc}")
            return ProviderError(ErrorClass.INTERNAL, record.error_message)
        fill_usage(record, result.usage, prices, result.cost_usd_override)
        record.latency_ms = result.latency_ms
        record.request_id = result.request_id
        record.output = record.answer = result.text
        if record.cache_key is not None:
            record.token_logprobs = result.token_logprobs
        return result

    def parked(self, denied: Denied) -> ItemOutcome:
        """Back to queued on the same tier, not published: it waits for a resume. A denial
        that fails the item (a spend cap) ends it instead, keeping its best output."""
        if denied.fail_item:
            return self.outcome(
                ItemState.FAILED, self.item.tier, denied.reason, best_record(self.records)
            )
        parked = self.outcome(ItemState.QUEUED, self.item.tier, denied.reason, None)
        parked.parked = True
        parked.pause_reason = denied.reason if denied.pause_batch else None
        return parked

    def outcome(
        self, state: str, to_tier: str, error: str | None, record: AttemptRecord | None
    ) -> ItemOutcome:
        return ItemOutcome(
            item_id=self.item.id,
            batch_id=self.item.batch_id,
            tier=self.item.tier,
            attempts=self.records,
            next_state=state,
            next_tier=to_tier,
            output=record.output if record else None,
            deployment=record.deployment if record else None,
            model=record.model if record else None,
            error=error,
            claim_no=self.item.claim_no,
            cache=cache_policy(self.task),
        )


async def run_item(
    item: ClaimedItem,
    config: RoutingConfig,
    task_name: str,
    *,
    sleep: Sleep = asyncio.sleep,
    rng: random.Random | None = None,
    middleware: list[Middleware] | None = None,
    journal: CallJournal | None = None,
    cached: dict[str, CachedAnswer] | None = None,
) -> ItemOutcome:
    """The item's round on its tier. `journal`: write each call to the ledger as it happens;
    `cached`: the response cache's answers to this round's possible calls, by key."""
    layers = installed() if middleware is None else middleware
    run: _Run | None = None
    try:
        task = config.task_type(task_name)
        dead = list(item.dead_round)
        run = _Run(item, config, task, [], records=dead, calls=item.attempts + len(dead))
        run.middleware, run.journal, run.cached = layers, journal, cached or {}
        return resume(run) or await _round(run, item_messages(item, task), sleep, rng)
    except LedgerUnavailable:
        raise  # not the item's fault: the chunk is not recorded and comes back
    except TemplateError as exc:  # a template that skipped the load check: refused, not run
        return _failed_before_round(item, run, f"prompt template refused: {exc}")
    except Exception as exc:  # a check, the tokenizer, memory: this item only
        log.exception("item %s: could not be run", item.id)
        reason = redact(f"could not run the item: {type(exc).__name__}: {exc}")[:500]
        return _failed_before_round(item, run, reason)


def _failed_before_round(item: ClaimedItem, run: _Run | None, reason: str) -> ItemOutcome:
    """The item fails with `reason`, keeping the calls its round made."""
    return ItemOutcome(
        item_id=item.id,
        batch_id=item.batch_id,
        tier=item.tier,
        attempts=run.records if run is not None else list(item.dead_round),
        next_state=ItemState.FAILED,
        next_tier=item.tier,
        error=reason,
        claim_no=item.claim_no,
    )


async def _round(
    run: _Run, messages: list[Message], sleep: Sleep, rng: random.Random | None
) -> ItemOutcome:
    config, task, tier = run.config, run.task, run.item.tier
    run.messages = messages
    rng = rng or _JITTER
    layers = run.middleware
    last_error: ErrorClass | None = None
    last_message = "no deployment could take the item"
    health = RungHealth()  # which deployments are down: an outage (worker/outage.py)

    names = list(config.tier(tier).deployments)
    counted: dict[str, int] = {}  # prompt tokens by model: counted once per round

    def prompt_tokens_for(model: str) -> int:
        if model not in counted:
            counted[model] = count_message_tokens(run.messages, model)
        return counted[model]

    first_model = config.deployments[names[0]].model
    for layer in layers:
        names = await layer.order(config, tier, names, prompt_tokens_for(first_model))
    for name in names:
        deployment = config.deployments[name]
        prompt_tokens = prompt_tokens_for(deployment.model)
        run.prompt_tokens = prompt_tokens
        if not fits_context(config, name, prompt_tokens):
            last_error = ErrorClass.CONTEXT_LENGTH
            last_message = (
                f"{name}: prompt of ~{prompt_tokens} tokens + {deployment.max_output_tokens} output "
                f"tokens exceeds its {deployment.context_window}-token window"
            )
            health.too_long.add(name)
            continue
        retries = 0
        while True:
            if not run.can_call():
                reason = f"attempt cap reached ({task.max_attempts} calls); last: {last_message}"
                return run.outcome(ItemState.FAILED, tier, reason, best_record(run.records))
            called = await run.call(name)
            if isinstance(called, Denied) and called.circuit is not None:
                health.circuit_open(name, called.circuit)  # no call, no attempt: the next one
                break
            if isinstance(called, Denied):
                return run.parked(called)
            record, result = called
            if isinstance(result, ProviderError):
                last_error, last_message = result.error_class, f"{name}: {record.error_message}"
                step = after_error(result.error_class, retries, task)
                if step is Step.RETRY:
                    delay = backoff_delay(retries, result.retry_after_s, rng=rng)
                    if delay is not None:
                        retries += 1
                        await sleep(delay)
                        continue
                    step = Step.NEXT_DEPLOYMENT
                if step is Step.NEXT_DEPLOYMENT:
                    if result.error_class is ErrorClass.TRANSIENT:
                        health.down.add(name)
                    break
                return run.outcome(ItemState.FAILED, tier, last_message, best_record(run.records))
            return await judge_and_decide(run, record, result)

    outage = outage_outcome(run, health, last_message, rng)
    if outage is not None:
        return outage
    if when_tier_exhausted(last_error, task, tier) is Step.ESCALATE:
        return run.outcome(ItemState.QUEUED, next_tier(task, tier) or tier, last_message, None)
    return run.outcome(
        ItemState.FAILED, tier, f"tier {tier} exhausted: {last_message}", best_record(run.records)
    )


async def judge_deferred_result(
    item: ClaimedItem,
    config: RoutingConfig,
    task_name: str,
    record: AttemptRecord,
    result: CompletionResult | ProviderError,
) -> ItemOutcome:
    """The outcome of a call made elsewhere (a provider batch API): the same checks and the
    same ladder as a call made here. `record` is already filled in (usage, cost, output)."""
    task = config.task_type(task_name)
    run = _Run(item, config, task, [], records=[record], calls=item.attempts + 1)
    if isinstance(result, CompletionResult):
        return await judge_and_decide(run, record, result)
    message = f"{record.deployment}: {record.error_message}"
    if not run.can_call():
        reason = f"attempt cap reached ({task.max_attempts} calls); last: {message}"
        return run.outcome(ItemState.FAILED, item.tier, reason, best_record(run.records))
    if result.error_class in RETRYABLE:  # again in a later provider batch, same tier
        return run.outcome(ItemState.QUEUED, item.tier, message, None)
    if when_tier_exhausted(result.error_class, task, item.tier) is Step.ESCALATE:
        return run.outcome(ItemState.QUEUED, next_tier(task, item.tier) or item.tier, message, None)
    return run.outcome(
        ItemState.FAILED,
        item.tier,
        f"tier {item.tier} exhausted: {message}",
        best_record(run.records),
    )
