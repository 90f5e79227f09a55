"""The fitted artefact: one versioned JSON file holding what `batchrouter fit` learned.

    {"format": "batchrouter-learned/1", "task_type": ..., "created": ...,
     "router": {...TextRouter...} | null,          # the pre-call model
     "router_tier": "cheap",                        # the rung whose success it predicts
     "rungs": {"cheap": {...Calibrated...}, ...},   # the calibrated acceptance per rung
     "alpha": 0.02, "delta": 0.05, "history": {...}}

A routing file names it by path and sha256 (`router: {file: ..., sha256: ...}` on the task
type, or a `router_score` check). The hash is checked on every load, so the routing file a
batch stores (the ledger keeps it as `config_yaml`) says exactly which artefact its items were
routed with, and a batch can be replayed under an older artefact as long as its file is kept
(`batchrouter fit` names each file by its hash, so a new fit never overwrites an old one).
Only JSON is read: nothing in the file can make a worker run code.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from routing.learned.router import TextRouter

FORMAT = "batchrouter-learned/1"
_lock = threading.Lock()
_loaded: dict[tuple[str, str], Artefact] = {}


class ArtefactError(ValueError):
    """An artefact that cannot be used: missing, changed since the routing file named it, or
    not one `batchrouter fit` wrote."""


@dataclass(frozen=True)
class Artefact:
    task_type: str
    router: TextRouter | None
    router_tier: str | None
    rungs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    data: Mapping[str, Any] = field(default_factory=dict)  # the whole file, for reports


def sha256_of(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def write_artefact(folder: str | Path, data: Mapping[str, Any]) -> tuple[Path, str]:
    """Write `data` as `<task_type>-<sha256 prefix>.json` in `folder`; return path and hash."""
    body = (json.dumps({"format": FORMAT, **data}, indent=1, sort_keys=True) + "\n").encode()
    digest = hashlib.sha256(body).hexdigest()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{data['task_type']}-{digest[:12]}.json"
    path.write_bytes(body)
    return path, digest


def load_artefact(path: str | Path, sha256: str | None = None) -> Artefact:
    """The artefact at `path`, refused when its bytes do not hash to `sha256` (when given).
    Read once per process and hash."""
    key = (str(path), sha256 or "")
    found = _loaded.get(key)
    if found is not None:
        return found
    try:
        body = Path(path).read_bytes()
    except OSError as exc:
        raise ArtefactError(f"{path}: cannot read the fitted artefact ({exc.strerror})") from None
    digest = hashlib.sha256(body).hexdigest()
    if sha256 is not None and digest != sha256.lower():
        raise ArtefactError(
            f"{path}: sha256 is {digest}, but the routing file names {sha256}: the file "
            "changed since it was fitted (refit, or name the new hash)"
        )
    try:
        data = json.loads(body)
        if data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format')!r} is not {FORMAT!r}")
        router = TextRouter.from_dict(data["router"]) if data.get("router") else None
        artefact = Artefact(
            task_type=str(data["task_type"]),
            router=router,
            router_tier=data.get("router_tier"),
            rungs=dict(data.get("rungs") or {}),
            data=data,
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ArtefactError(f"{path}: not a fitted artefact: {exc}") from None
    with _lock:
        _loaded[key] = artefact
    return artefact


def clear_cache() -> None:
    with _lock:
        _loaded.clear()
