"""Celery workers: `celery -A worker worker -Q <tier>` finds `app` here.

The app is built on first access (PEP 562), so importing this package does not freeze the
settings: a program may set BATCHROUTER_* variables before it first touches the broker.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name in ("app", "celery"):
        from worker.app import app

        return app
    raise AttributeError(name)
