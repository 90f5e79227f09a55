"""What a deferred tier sends and how it is paid: one batch request per item, named so that
every result finds its item again, priced at the deployment's batch prices."""

from __future__ import annotations

import re

from ledger.outcomes import AttemptRecord, ClaimedItem
from providers.batch_api import BatchRequest
from routing.config import RoutingConfig
from routing.price_table import lookup_prices, price_table
from routing.prices import Prices, cost_usd, scaled_prices
from routing.types import Usage
from worker.requests import build_request, fill_usage, item_messages

# custom_id = "<provider batch id>-<item id>-<attempt no>": under the providers' 64 characters
# of [A-Za-z0-9_-], and it starts with our provider batch id, which is how a batch created by
# a poller that died before recording it is recognised (BatchClient.find).
_CUSTOM_ID = re.compile(r"^(?P<pb>[0-9a-f]{32})-(?P<item>\d+)-(?P<attempt>\d+)$")


def custom_id(pb_id: str, item: ClaimedItem) -> str:
    return f"{pb_id}-{item.id}-{attempt_no(item)}"


def parse_custom_id(value: str) -> tuple[str, int, int] | None:
    """(provider batch id, item id, attempt no), or None for an id that is not ours."""
    found = _CUSTOM_ID.match(value)
    if found is None:
        return None
    return found["pb"], int(found["item"]), int(found["attempt"])


def attempt_no(item: ClaimedItem) -> int:
    """The number the deferred call gets among the item's attempts (it is the next one)."""
    return item.attempt_no_base + item.attempts + 1


def deferred_deployment(config: RoutingConfig, tier: str) -> str:
    """A deferred tier sends everything to its first deployment (config checks it is one
    whose provider has a batch API)."""
    return config.tier(tier).deployments[0]


def batch_request(
    pb_id: str, item: ClaimedItem, config: RoutingConfig, task_name: str, deployment_name: str
) -> BatchRequest:
    """The request the item would make on this deployment right now, as a batch line."""
    task = config.task_type(task_name)
    deployment = config.deployments[deployment_name]
    messages = item_messages(item, task)
    request = build_request(task, deployment_name, deployment, messages, item, attempt_no(item))
    return BatchRequest(custom_id=custom_id(pb_id, item), request=request)


def batch_prices(config: RoutingConfig, deployment_name: str) -> Prices:
    """The deployment's batch-API prices: the table's batch figures for its model, or its own
    `prices:` scaled by the table's batch multiplier (0.5 for OpenAI and Anthropic)."""
    deployment = config.deployments[deployment_name]
    if deployment.prices is not None:
        return scaled_prices(deployment.prices, price_table().batch_multiplier, "batch")
    return lookup_prices(deployment.model, batch=True, provider=deployment.provider)


def price_deferred_call(
    record: AttemptRecord, usage: Usage | None, immediate: Prices, batch: Prices
) -> None:
    """Fill the attempt's tokens and cost at batch prices; `saved_usd` is what the same tokens
    would have cost as an immediate call (the deferral saving the report shows)."""
    if usage is None:
        return  # not billed (expired, cancelled, or an error the provider does not charge)
    fill_usage(record, usage, batch)
    record.saved_usd = max(cost_usd(usage, immediate) - record.cost_usd, 0.0)
