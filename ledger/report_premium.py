"""How a batch prices premium-only: its task type's last tier, first deployment, one call per
item (report_walk.py finds each item's prompt and answer tokens).

For batches whose premium deployment replays a table, recorded costs come first. A replay
table (routing/replay_table.py) may record what each call cost (`cost_usd`); the replay
provider then bills that instead of usage x prices. Premium-only does the same: for each item
the table has a recorded premium answer with a cost for, that cost is what one premium call
would have cost; other items are priced from their tokens (issue 14: tokens alone made a
batch report -106.5% saving where about -3% was right).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from sqlalchemy.orm import Session

from ledger.money import QUANTUM, ZERO, money
from ledger.report_queries import ReportFilter
from ledger.report_walk import item_premium_tokens
from routing.config import RoutingConfig, parse_config
from routing.replay_table import ReplayTable, ReplayTableError, read_replay_table


@dataclass
class Premium:
    """How one batch prices a premium-only call: its task type's last tier, first deployment."""

    ladder: list[str]
    tier: str
    deployment: str
    input_per_mtok: Decimal
    output_per_mtok: Decimal
    model: str = ""
    replay_file: str | None = None  # a replay deployment's table: its recorded costs count

    def price(self, input_tokens: int, output_tokens: int) -> Decimal:
        """One premium call per item, exact: tokens x price per 1M tokens."""
        total = input_tokens * self.input_per_mtok + output_tokens * self.output_per_mtok
        return (total / 1_000_000).quantize(QUANTUM)


def premium_of(rows: list[tuple[str, str, str | None, str, str]]) -> dict[str, Premium | None]:
    parsed: dict[tuple[str, str], Premium | None] = {}  # many batches share one routing file
    out: dict[str, Premium | None] = {}
    for batch_id, task_type, _project, config_yaml, source in rows:
        key = (config_yaml, task_type)
        if key not in parsed:
            try:
                config: RoutingConfig = parse_config(config_yaml, source, resolve_code=False)
                ladder = config.task_type(task_type).tier_names
                deployment = config.tier(ladder[-1]).deployments[0]
                prices = config.prices_for(deployment)
                spec = config.deployments[deployment]
                parsed[key] = Premium(
                    ladder, ladder[-1], deployment, money(prices.input), money(prices.output),
                    spec.model, spec.replay_file if spec.provider == "replay" else None,
                )  # fmt: skip
            except Exception:  # an unreadable stored config must not hide the other figures
                parsed[key] = None
        out[batch_id] = parsed[key]
    return out


def recorded_premiums(
    session: Session,
    f: ReportFilter,
    premiums: dict[str, Premium | None],
    sources: dict[str, str],
) -> tuple[dict[str, Decimal], int]:
    """Premium-only per replay batch (batch id -> USD), and how many items a recorded cost
    priced. `sources` names each batch's routing file: a relative replay_file is looked for
    as the workers read it (from the working folder), then beside the routing file."""
    tables: dict[str, ReplayTable | None] = {}
    for batch_id, premium in premiums.items():
        if premium is not None and premium.replay_file:
            tables[batch_id] = _table(premium.replay_file, sources.get(batch_id, ""))
    wanted = [batch_id for batch_id, table in tables.items() if table is not None]
    if not wanted:
        return {}, 0
    totals: dict[str, Decimal] = dict.fromkeys(wanted, ZERO)
    recorded = 0
    for batch_id, external_id, prompt, answer in item_premium_tokens(session, f, wanted):
        premium, table = premiums[batch_id], tables[batch_id]
        assert premium is not None and table is not None
        row = table.lookup(external_id, premium.model)
        if row is not None and row.error_class is None and row.cost_usd is not None:
            totals[batch_id] += money(row.cost_usd)
            recorded += 1
        else:
            totals[batch_id] += premium.price(prompt, answer)
    return totals, recorded


def _table(replay_file: str, source: str) -> ReplayTable | None:
    for path in (Path(replay_file), Path(source).parent / replay_file):
        try:
            return read_replay_table(path)
        except (OSError, ReplayTableError):
            continue
    return None  # gone since the batch ran: its tokens price it
