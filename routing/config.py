"""The routing file: deployments, tiers (cheapest first) and task types, validated by pydantic.

A broken file fails at load with every error naming its field path and line, for example
`routing.yaml:14: task_types.ticket_classification.ladder.1: unknown tier 'tier9'`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

from routing.audit import Audit
from routing.checks import CheckSpec, LabelCheck
from routing.checks.imports import RESOLVE_CODE
from routing.deployments import Deployment
from routing.learned.entry import RouterRef
from routing.prices import Prices
from routing.rungs import Rung
from routing.schema import Loc, StrictModel, unknown_key_message, walk_loc
from routing.templates import template_fields
from routing.tiers import Tier
from routing.yamlfile import DuplicateKeyError, load_yaml_with_lines, nearest_line, read_text

BATCH_API_PROVIDERS = ("openai", "anthropic")  # providers whose batch API a deferred tier uses
_CALLER_REPORTS_REFERENCES = "caller reports references"  # validation context key


class TaskType(StrictModel):
    # Rungs, cheapest first, never stepped down: a tier name, or a tier with its own acceptance
    # (routing/rungs.py): checks that replace, add to or drop the task type's, or best effort.
    ladder: list[Rung] = Field(min_length=1)
    system_prompt: str | None = None
    # Templates of plain {field} names (routing/templates.py): {text} is the item's text,
    # {labels} the label check's labels, any other name an input field of the item.
    prompt: str = Field(min_length=1)
    checks: list[CheckSpec] = Field(default_factory=list)
    max_attempts: int = Field(default=6, ge=1, le=100)  # calls per item, all tiers together
    transient_retries: int = Field(default=2, ge=0, le=10)  # per deployment, before falling back
    show_failed_output: bool = False  # let the next tier see the rejected answer and the reason
    # Spend cap per item, all tiers together: a call whose estimate would pass it is not made
    # and the item fails with the reason (worker/budget.py).
    max_item_cost_usd: float | None = Field(default=None, gt=0)
    # Deferred tiers for this task type: true for every tier of its ladder, or a list of tier
    # names; adds to the tiers marked `deferred: true` themselves.
    deferred: bool | list[str] = False
    # The response cache (ledger/cache.py) and in-batch deduplication (ledger/dedup.py): off
    # when the task needs a fresh answer for every item. The namespace is part of the key, so a
    # new namespace starts an empty cache (for instance after changing the checks).
    cache: bool = True
    cache_namespace: str = Field(default="default", min_length=1, max_length=100)
    cache_ttl_s: float = Field(default=7 * 86_400, gt=0, le=365 * 86_400)
    # Quality measured, not assumed (routing/audit.py, ledger/quality.py): a reproducible
    # sample of accepted items also sent to the audit rung, and the share of right accepted
    # answers below which the report flags a rung.
    audit: Audit | None = None
    quality_target: float | None = Field(default=None, gt=0, le=1)
    # When every deployment of a rung is down (routing/policy.when_rung_down): `wait` for it
    # up to outage_wait_s then escalate (fail on the last rung); `escalate` at once; `fail`
    # after the wait, even with a rung above. Waiting spends no attempt.
    on_outage: Literal["wait", "escalate", "fail"] = "wait"
    outage_wait_s: float = Field(default=600.0, ge=0, le=86_400)
    # The artefact `batchrouter fit` wrote (routing/learned/entry.py, docs/learning.md): items
    # its router scores below `skip_below` start on the second rung.
    router: RouterRef | None = None

    @field_validator("prompt")
    @classmethod
    def _prompt_uses_text(cls, value: str) -> str:
        if "text" not in template_fields(value):
            raise ValueError("the prompt template must contain {text}")
        return value

    @field_validator("system_prompt")
    @classmethod
    def _system_prompt_is_plain(cls, value: str | None) -> str | None:
        if value is not None:
            template_fields(value)
        return value

    @property
    def tier_names(self) -> list[str]:
        """The ladder's tiers, cheapest first."""
        return [rung.tier for rung in self.ladder]

    def rung(self, tier: str) -> Rung:
        for rung in self.ladder:
            if rung.tier == tier:
                return rung
        raise KeyError(f"tier {tier!r} is not on this task type's ladder {self.tier_names}")

    def checks_for(self, tier: str) -> list[CheckSpec]:
        """The checks an answer must pass on `tier`'s rung."""
        return self.rung(tier).checks(self.checks)

    @property
    def audit_tier(self) -> str | None:
        """The rung audit samples are sent to, None without an audit."""
        if self.audit is None:
            return None
        return self.audit.tier or self.ladder[-1].tier

    def template_fields(self) -> list[str]:
        """The fields the prompt and system prompt use (`text`, `labels`, input fields)."""
        fields = template_fields(self.system_prompt or "")
        return fields + [f for f in template_fields(self.prompt) if f not in fields]

    @property
    def output_schema(self) -> dict | None:
        """The JSON Schema of the task's `json` check, sent to deployments with json_output."""
        for check in self.checks:
            schema = getattr(check, "output_schema", None)
            if callable(schema):
                found = schema()
                if found is not None:
                    return dict(found)
        return None

    @property
    def labels(self) -> list[str]:
        for check in self.checks:
            if isinstance(check, LabelCheck):
                return check.labels
        return []


class RoutingConfig(StrictModel):
    deployments: dict[str, Deployment] = Field(min_length=1)
    tiers: list[Tier] = Field(min_length=1)
    task_types: dict[str, TaskType] = Field(min_length=1)

    @model_validator(mode="after")
    def _references_resolve(self, info: ValidationInfo) -> RoutingConfig:
        # parse_config reports every problem at its own line; other callers get the first.
        if not (info.context or {}).get(_CALLER_REPORTS_REFERENCES):
            problems = reference_problems(self)
            if problems:
                loc, message = problems[0]
                raise ValueError(f"{_dotted(loc)}: {message}")
        return self

    def is_deferred(self, task_name: str, tier_name: str) -> bool:
        """Whether `task_name`'s items on `tier_name` go through a provider batch API."""
        task = self.task_types[task_name]
        if task.deferred is True or tier_name in (task.deferred or []):
            return True
        return any(tier.name == tier_name and tier.deferred for tier in self.tiers)

    def tier(self, name: str) -> Tier:
        for tier in self.tiers:
            if tier.name == name:
                return tier
        raise KeyError(f"unknown tier {name!r}; tiers are {[t.name for t in self.tiers]}")

    def tier_by_ref(self, ref: str | int) -> Tier:
        """A tier by name, or by its position in the tiers list (0 = cheapest)."""
        if isinstance(ref, int) or str(ref).isdigit():
            index = int(ref)
            if not 0 <= index < len(self.tiers):
                raise KeyError(f"tier {index} does not exist; there are {len(self.tiers)} tiers")
            return self.tiers[index]
        return self.tier(str(ref))

    def task_type(self, name: str) -> TaskType:
        if name not in self.task_types:
            known = ", ".join(sorted(self.task_types))
            raise KeyError(f"unknown task type {name!r}; the routing file defines: {known}")
        return self.task_types[name]

    def prices_for(self, deployment_name: str) -> Prices:
        deployment = self.deployments[deployment_name]
        if deployment.prices is not None:
            return deployment.prices
        from routing.price_table import lookup_prices

        return lookup_prices(deployment.model, provider=deployment.provider)


def reference_problems(config: RoutingConfig) -> list[tuple[Loc, str]]:
    """Names that must resolve across sections (tiers, deployments, ladders), each with the
    path of the node that names it, so an error points at its own line."""
    problems: list[tuple[Loc, str]] = []
    names = [tier.name for tier in config.tiers]
    for index, tier in enumerate(config.tiers):
        if tier.name in names[:index]:
            problems.append((("tiers", index, "name"), f"tier name {tier.name!r} is used twice"))
        for position, name in enumerate(tier.deployments):
            if name not in config.deployments:
                problems.append(
                    (
                        ("tiers", index, "deployments", position),
                        f"tier {tier.name!r} names unknown deployment {name!r}",
                    )
                )
    for task_name, task in config.task_types.items():
        problems.extend(_task_problems(config, task_name, task, names))
    return problems


def _task_problems(
    config: RoutingConfig, task_name: str, task: TaskType, names: list[str]
) -> list[tuple[Loc, str]]:
    problems: list[tuple[Loc, str]] = []
    at: Loc = ("task_types", task_name)
    ladder = task.tier_names
    for number, check in enumerate(task.checks):
        problems.extend(
            _unknown_consensus_deployments(config, task_name, check, (*at, "checks", number))
        )
    deferred = task.deferred if isinstance(task.deferred, list) else []
    for position, tier_name in enumerate(deferred):
        if tier_name not in ladder:
            problems.append(
                (
                    (*at, "deferred", position),
                    f"task type {task_name!r}: deferred tier {tier_name!r} is not on its ladder",
                )
            )
    if task.audit is not None and task.audit.tier is not None and task.audit.tier not in ladder:
        problems.append(
            (
                (*at, "audit", "tier"),
                f"task type {task_name!r}: audit tier {task.audit.tier!r} is not on its "
                f"ladder {ladder}",
            )
        )
    positions = []
    reachable: list[str] = []  # deployments of this rung and the rungs below it
    for position, tier_name in enumerate(ladder):
        if tier_name not in names:
            problems.append(
                (
                    (*at, "ladder", position),
                    f"task type {task_name!r}: unknown tier {tier_name!r}; tiers are {names}",
                )
            )
            continue
        positions.append(names.index(tier_name))
        tier = config.tier(tier_name)
        reachable += tier.deployments
        problems.extend(
            _rung_problems(config, task_name, task, position, reachable, (*at, "ladder", position))
        )
        if config.is_deferred(task_name, tier_name) and tier.deployments[0] in config.deployments:
            problem = _deferred_problem(config, task_name, task, tier)
            if problem:
                problems.append(((*at, "ladder", position), problem))
    if positions != sorted(set(positions)):
        problems.append(
            (
                (*at, "ladder"),
                f"task type {task_name!r}: ladder {ladder} must climb the tiers in order",
            )
        )
    return problems


def _unknown_consensus_deployments(
    config: RoutingConfig, task_name: str, check: object, at: Loc
) -> list[tuple[Loc, str]]:
    return [
        (
            (*at, "deployments", position),
            f"task type {task_name!r}: consensus names unknown deployment {name!r}",
        )
        for position, name in enumerate(getattr(check, "deployments", None) or [])
        if name not in config.deployments
    ]


def _rung_problems(
    config: RoutingConfig,
    task_name: str,
    task: TaskType,
    position: int,
    reachable: list[str],
    at: Loc,
) -> list[tuple[Loc, str]]:
    """A rung's acceptance must be able to run there: what it drops exists, best effort is on
    the last rung, and a consensus counts only deployments this rung or a rung below it has
    (the answers of the rungs below carry up as votes)."""
    rung = task.ladder[position]
    tier_name = rung.tier
    problems: list[tuple[Loc, str]] = []
    kinds = {check.kind for check in task.checks}
    for number, kind in enumerate(rung.accept.drop):
        if kind not in kinds:
            problems.append(
                (
                    (*at, "accept", "drop", number),
                    f"task type {task_name!r}: rung {tier_name!r} drops {kind!r}, which is not "
                    f"one of the task type's checks ({sorted(kinds) or 'none'})",
                )
            )
    if rung.accept.best_effort and position != len(task.ladder) - 1:
        problems.append(
            (
                (*at, "accept", "best_effort"),
                f"task type {task_name!r}: only the last rung can take its answer as the final "
                f"word (best_effort); {tier_name!r} is rung {position + 1} of {len(task.ladder)}",
            )
        )
    own = [("checks", rung.accept.checks or []), ("add", rung.accept.add)]
    for field_name, checks in own:
        for number, check in enumerate(checks):
            problems.extend(
                _unknown_consensus_deployments(
                    config, task_name, check, (*at, "accept", field_name, number)
                )
            )
    for check in rung.checks(task.checks):
        for name in getattr(check, "deployments", None) or []:
            if name in config.deployments and name not in reachable:
                problems.append(
                    (
                        _check_loc(task, rung, check, at),
                        f"task type {task_name!r}: the consensus on rung {tier_name!r} counts "
                        f"deployment {name!r}, which neither this rung nor a rung below it has "
                        f"(it has {sorted(set(reachable))})",
                    )
                )
    return problems


def _check_loc(task: TaskType, rung: Rung, check: object, rung_at: Loc) -> Loc:
    """Where the file gives `check` for this rung: the rung's own lists, else the task type's."""
    for field_name, checks in (("checks", rung.accept.checks or []), ("add", rung.accept.add)):
        for number, own in enumerate(checks):
            if own is check:
                return (*rung_at, "accept", field_name, number)
    number = next(i for i, default in enumerate(task.checks) if default is check)
    return (*rung_at[:2], "checks", number)


def _deferred_problem(config: RoutingConfig, task_name: str, task: TaskType, tier: Tier) -> str:
    first = config.deployments[tier.deployments[0]]
    if first.provider not in BATCH_API_PROVIDERS:
        return (
            f"task type {task_name!r}: deferred tier {tier.name!r} sends its calls to "
            f"{tier.deployments[0]!r}, whose provider {first.provider!r} has no batch API "
            f"batchrouter can use (one of {list(BATCH_API_PROVIDERS)})"
        )
    if any(getattr(check, "kind", None) == "consensus" for check in task.checks_for(tier.name)):
        return (
            f"task type {task_name!r}: a consensus check needs extra calls per item, "
            f"which a deferred tier ({tier.name!r}) cannot make"
        )
    return ""


class ConfigError(ValueError):
    """A routing file that cannot be used; the message names file, line and field path."""


def parse_config(
    text: str, source: str = "<routing file>", *, resolve_code: bool = True
) -> RoutingConfig:
    """The routing file in `text`, validated; ConfigError naming each problem's line.

    `resolve_code=False` checks everything but the custom checks and models the file names,
    which are neither resolved nor imported: for callers that read only its shape (ladders,
    prices), such as reports, on hosts that may not allow or have that code.
    """
    try:
        data, lines = load_yaml_with_lines(text)
    except DuplicateKeyError as exc:
        raise ConfigError(f"invalid routing file\n  {source}:{exc.line}: {exc}") from None
    except Exception as exc:  # yaml's own errors carry the line already
        raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping with deployments, tiers, task_types")
    try:
        context = {_CALLER_REPORTS_REFERENCES: True, RESOLVE_CODE: resolve_code}
        config = RoutingConfig.model_validate(data, context=context)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc, holders = walk_loc(RoutingConfig, tuple(error["loc"]))
            message = error["msg"]
            if error["type"] == "extra_forbidden" and loc:
                message = unknown_key_message(str(loc[-1]), holders[-1])
            problems.append(_problem(source, lines, loc, message))
        raise ConfigError("invalid routing file\n  " + "\n  ".join(problems)) from None
    references = reference_problems(config)
    if references:
        problems = [_problem(source, lines, loc, message) for loc, message in references]
        raise ConfigError("invalid routing file\n  " + "\n  ".join(problems))
    return config


def _problem(source: str, lines: dict[Loc, int], loc: Loc, message: str) -> str:
    """`rules.yaml:14: task_types.t.ladder.1: message`, at the line of the deepest node of
    `loc` that the file has (the node itself, else its closest ancestor)."""
    line = nearest_line(lines, loc)
    where = f"{source}:{line}" if line else source
    return f"{where}: {_dotted(loc)}: {message}"


def _dotted(loc: Loc) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def load_config(path: str | Path) -> RoutingConfig:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: routing file not found")
    return parse_config(read_text(path), str(path))
