"""Where `fit` and `advise` read history: a replay table with its items, or ledger batches."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from batchrouter.learning.history import HistoryItem, from_ledger, from_replay


@dataclass
class Source:
    task_type: str
    config_text: str  # the routing file the history ran under (the proposal edits it)
    table: Path  # recorded answers, for `evaluate`'s what-if replays
    history: list[HistoryItem]
    note: dict[str, object]  # what the artefact records about where it learned


def from_table(config: Path, task_type: str, table: Path, items: Path) -> Source:
    from batchrouter.evaluate import resolve_replay_files
    from producers.readers import read_items
    from routing.config import load_config
    from routing.replay_table import read_replay_table
    from routing.yamlfile import read_text

    routing = resolve_replay_files(load_config(config), config.resolve().parent)
    routing.task_type(task_type)
    history = from_replay(routing, task_type, read_replay_table(table), read_items(items))
    note = {"replay_table": table.name, "items": items.name, "history_items": len(history)}
    return Source(task_type, read_text(config), table, history, note)


def from_batches(batch_refs: Sequence[str], folder: Path | None = None) -> Source:
    """The batches' history, and their answers (audit answers included) as one replay table."""
    from ledger.db import session_scope
    from ledger.replay_export import iter_replay_rows
    from routing.replay_table import write_replay_rows

    task_type, config, history = from_ledger(batch_refs)
    out = Path(folder or tempfile.mkdtemp(prefix="batchrouter-advise-")) / "ledger-answers.jsonl"
    with session_scope(readonly=True) as session:
        rows = [row for ref in batch_refs for row in iter_replay_rows(session, ref)]
        rows += [row for ref in batch_refs for row in iter_replay_rows(session, ref, ("audit",))]
    write_replay_rows(out, rows)
    from ledger.batches import find_batch

    with session_scope(readonly=True) as session:
        text = find_batch(session, batch_refs[0]).config_yaml
    note = {"batches": list(batch_refs), "history_items": len(history)}
    return Source(task_type, text, out, history, note)
