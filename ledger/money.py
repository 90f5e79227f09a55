"""Money in the ledger: exact decimals, stored as NUMERIC(20, 12) (migration 0009).

Floats drift: a sum of a million call costs in binary floating point is off in its last digits,
and a finance team reconciling the ledger against an invoice needs the cents and the fractions
of a cent to be the ones billed. So every USD column is `Money`: Python code reads `Decimal`,
and a float handed in by the worker (prices times tokens are computed in floats in the pure
routing core) is converted through its shortest repr and rounded to 12 decimal places, which
turns `1500 * 1.0 / 1e6` (0.0015000000000000000312...) into exactly `0.0015`.

12 places resolve one token at a price of $0.000001 per 1M tokens; 20 digits leave 8 before the
point ($100M), for sums too.

Sums are exact in SQL too: PostgreSQL adds NUMERIC exactly. SQLite has no decimal type (a
NUMERIC column keeps a REAL), so `money_sum` adds whole pico-dollars there (each value rounded
to 12 places, as an INTEGER: exact up to $9.2M per sum) instead of adding floats.

This module is light (no SQLAlchemy: `status` imports it); the column type and `money_sum` are
in ledger/money_sql.py.
"""

from __future__ import annotations

import json
import re
import uuid
from decimal import Decimal
from typing import Any

PLACES = 12
QUANTUM = Decimal(1).scaleb(-PLACES)  # 1E-12
ZERO = Decimal(0).quantize(QUANTUM)


def money(value: Decimal | float | int | str | None) -> Decimal:
    """`value` as an exact Decimal of 12 places; None is 0. A float goes through its repr (the
    shortest decimal that reads back as the same float), never through its binary expansion."""
    if value is None:
        return ZERO
    if isinstance(value, Decimal):
        return value.quantize(QUANTUM)
    if isinstance(value, float):
        return Decimal(repr(value)).quantize(QUANTUM)
    return Decimal(value).quantize(QUANTUM)


def plain(value: Decimal) -> str:
    """A Decimal without trailing zeros or exponent: '0.0402', '0', '-1.5'."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


def dumps(value: Any, *, indent: int | None = 2) -> str:
    """JSON with every Decimal written as an exact number literal (json writes floats only):
    each Decimal becomes a marked string first, then the marks and quotes are taken off."""
    mark = f"decimal-{uuid.uuid4().hex}:"

    def default(obj: Any) -> Any:
        if isinstance(obj, Decimal):
            return mark + plain(obj)
        raise TypeError(f"{type(obj).__name__} is not JSON serializable")

    text = json.dumps(value, indent=indent, default=default)
    return re.sub(f'"{re.escape(mark)}(-?[0-9.]+)"', r"\1", text)
