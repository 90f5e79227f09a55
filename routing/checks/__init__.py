"""Quality checks: each takes an output and says pass or fail, with a reason and a score.

A task type lists its checks in the routing file; all must pass. Checks are pure functions over
plain data, so the worker, replay and evaluation all judge an output the same way. Each kind
lives in the module named for what it checks:

| kind | module | passes when |
| --- | --- | --- |
| non_empty, label, length, regex | text | visible non-refusal text; a label of the set; a length within bounds; a pattern match |
| json, python | structured | JSON valid against a schema or pydantic model; Python that compiles and defines a function |
| logprob | confidence | token logprob confidence above a threshold |
| consensus | consensus | m of k answers agree (the worker collects the answers) |
| router_score | learned | the fitted router's score of the item reaches a threshold (`batchrouter fit`) |
| custom | custom | your own function, named by dotted path or entry point (host allow-list) |
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, get_args

from pydantic import Field

from routing.checks.base import (
    CheckBase,
    CheckInput,
    Judgement,
    Verdict,
    extract_fenced,
    normalize_label,
)
from routing.checks.confidence import NO_LOGPROBS, LogprobCheck
from routing.checks.consensus import NORMALIZERS, ConsensusCheck, agreement
from routing.checks.custom import CustomCheck
from routing.checks.imports import resolve_allowed
from routing.checks.learned import RouterScoreCheck
from routing.checks.structured import JsonCheck, PythonCheck
from routing.checks.text import (
    REFUSAL_PATTERNS,
    LabelCheck,
    LengthCheck,
    NonEmptyCheck,
    RegexCheck,
)

AnyCheck = (
    NonEmptyCheck
    | LabelCheck
    | LengthCheck
    | RegexCheck
    | JsonCheck
    | PythonCheck
    | LogprobCheck
    | ConsensusCheck
    | CustomCheck
    | RouterScoreCheck
)
CheckSpec = Annotated[AnyCheck, Field(discriminator="kind")]
CHECK_KINDS = frozenset(cls.model_fields["kind"].default for cls in get_args(AnyCheck))


def judge(
    checks: Sequence[CheckBase],
    output: str,
    source: str,
    *,
    logprobs: Sequence[float] | None = None,
    label_logprobs: Mapping[str, float] | None = None,
    samples: Sequence[str] | None = None,
    fields: Mapping[str, Any] | None = None,
) -> Judgement:
    """Run every check on `output` (the model's answer to `source`). A check that raises fails
    with the exception's text; nothing here raises.

    `logprobs`/`label_logprobs` feed logprob checks, `samples` (all answers collected) feeds
    consensus checks, `fields` (the item's other input fields) fills templated settings.
    """
    given = CheckInput(output, source, logprobs, label_logprobs, samples, fields or {})
    verdicts: list[Verdict] = []
    kept = output.strip()
    for spec in checks:
        try:
            verdict = spec.run(given)
            if not isinstance(verdict, Verdict):
                raise TypeError(f"returned {type(verdict).__name__}, not a Verdict")
        except Exception as exc:  # a check must never kill the worker
            name = _name_of(spec)
            verdict = Verdict(name, False, f"check raised {type(exc).__name__}: {exc}", 0.0)
        verdicts.append(verdict)
        if verdict.normalized is not None:
            kept = verdict.normalized
    return Judgement(all(v.passed for v in verdicts), tuple(verdicts), kept)


def _name_of(spec: CheckBase) -> str:
    try:
        return spec.verdict_name()
    except Exception:
        return str(getattr(spec, "kind", "check"))


__all__ = [
    "CHECK_KINDS",
    "NO_LOGPROBS",
    "NORMALIZERS",
    "REFUSAL_PATTERNS",
    "AnyCheck",
    "CheckBase",
    "CheckInput",
    "CheckSpec",
    "ConsensusCheck",
    "CustomCheck",
    "JsonCheck",
    "Judgement",
    "LabelCheck",
    "LengthCheck",
    "LogprobCheck",
    "NonEmptyCheck",
    "PythonCheck",
    "RegexCheck",
    "RouterScoreCheck",
    "Verdict",
    "agreement",
    "extract_fenced",
    "judge",
    "normalize_label",
    "resolve_allowed",
]
