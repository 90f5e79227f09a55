"""Judging a rung's answer: the rung's checks, the votes a consensus counts, best effort.

Pure but for the calls a consensus still needs (made through the round's own `call`); the
outcome table it applies is routing/policy.py's.
"""

from __future__ import annotations

from ledger.models import ItemState
from ledger.outcomes import AttemptRecord, ItemOutcome
from routing.audit import audited, same_answer
from routing.checks import ConsensusCheck, agreement, judge
from routing.policy import Step, after_check_failure, next_tier
from routing.types import CompletionResult
from worker.middleware import Denied
from worker.votes import Round, collect_votes


async def judge_and_decide(
    run: Round, record: AttemptRecord, result: CompletionResult
) -> ItemOutcome:
    """Judge the rung's answer by the rung's checks: a consensus among them counts the votes
    the item already has and asks only for the answers still needed (worker/votes.py); a
    best-effort rung keeps its answer whatever the checks say."""
    task, tier = run.task, run.item.tier
    rung = task.rung(tier)
    checks = rung.checks(task.checks)
    answer, answers = result.text, None
    consensus = next((c for c in checks if isinstance(c, ConsensusCheck)), None)
    if consensus is not None:
        answers = await collect_votes(run, consensus, record)
        winner, votes = agreement(answers, consensus.normalizer)
        if votes >= consensus.m or not rung.accept.best_effort:
            answer = winner or answer
    judgement = judge(
        checks,
        answer,
        run.item.text,
        logprobs=result.token_logprobs,
        fields=run.item.fields,
        samples=answers,
    )
    record.verdicts = [
        {"check": v.check, "passed": v.passed, "reason": v.reason, "score": v.score}
        for v in judgement.verdicts
    ]
    if judgement.passed or rung.accept.best_effort:
        if not judgement.passed:
            record.verdicts.append(
                {
                    "check": "best_effort",
                    "passed": True,
                    "reason": f"the last rung's answer is the final word ({judgement.reason})",
                    "score": 0.0,
                }
            )
        record.outcome = "passed"
        record.output = judgement.output
        run.settle(record)
        await audit_accepted(run, checks, judgement.output)
        return run.outcome(ItemState.SUCCEEDED, tier, None, record)
    record.outcome = "check_failed"
    run.settle(record)
    if after_check_failure(task, tier) is Step.ESCALATE:
        return run.outcome(
            ItemState.QUEUED, next_tier(task, tier) or tier, judgement.reason, record
        )
    return run.outcome(
        ItemState.FAILED, tier, f"last tier failed its checks: {judgement.reason}", record
    )


def best_record(records: list[AttemptRecord]) -> AttemptRecord | None:
    """The last attempt that produced any output: kept on a failed item for review."""
    for record in reversed(records):
        if record.output and record.outcome != "sample":
            return record
    return None


async def audit_accepted(run: Round, checks: list, accepted: str) -> None:
    """When the item is in its task type's audit sample and was accepted below the audit rung,
    ask the audit rung too: a priced call (outcome `audit`) whose answer is compared with the
    accepted one and never changes the item's result. A cap, a denial or an error skips it."""
    task, tier = run.task, run.item.tier
    audit_tier = task.audit_tier
    if task.audit is None or audit_tier is None or not audited(task.audit, run.item.external_id):
        return
    names = task.tier_names
    if names.index(tier) >= names.index(audit_tier) or not run.can_call():
        return
    name = run.config.tier(audit_tier).deployments[0]
    called = await run.call(name, tier=audit_tier)
    if isinstance(called, Denied):
        return
    record, result = called
    record.outcome = "audit"
    if isinstance(result, CompletionResult):
        agrees = same_answer(checks, accepted, result.text)
        reason = "agrees with" if agrees else "differs from"
        record.verdicts = [
            {
                "check": "audit",
                "passed": agrees,
                "reason": f"the audit rung's answer {reason} the accepted one",
                "score": 1.0 if agrees else 0.0,
            }
        ]
    run.settle(record)


def resume(run: Round) -> ItemOutcome | None:
    """The outcome of a round that an earlier claim left unfinished after a call reached a
    verdict: the item needs no new call. None when it must call (again)."""
    tier = run.item.tier
    for record in run.records:
        if record.outcome == "passed":
            return run.outcome(ItemState.SUCCEEDED, tier, None, record)
    rejected = next((r for r in reversed(run.records) if r.outcome == "check_failed"), None)
    if rejected is None:
        return None
    failed = [
        f"{v.get('check')}: {v.get('reason')}" for v in rejected.verdicts if not v.get("passed")
    ]
    reason = "; ".join(failed) or "a check failed"
    if after_check_failure(run.task, tier) is Step.ESCALATE:
        return run.outcome(ItemState.QUEUED, next_tier(run.task, tier) or tier, reason, rejected)
    return run.outcome(ItemState.FAILED, tier, f"last tier failed its checks: {reason}", rejected)
