"""The SQL side of ledger/money.py: the `Money` column type and `money_sum`, an exact sum on
PostgreSQL (NUMERIC) and on SQLite (whole pico-dollars as INTEGER, since SQLite keeps REAL)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Numeric
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator, TypeEngine

from ledger.money import PLACES, QUANTUM, ZERO, money


class Money(TypeDecorator[Decimal]):
    """A USD amount: NUMERIC(20, 12) in the database, Decimal in Python (floats accepted)."""

    impl = Numeric(20, PLACES, asdecimal=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else money(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else money(value)


class _SummedMoney(TypeDecorator[Decimal]):
    """The result of `money_sum`: NUMERIC on PostgreSQL, whole pico-dollars on SQLite."""

    impl = Numeric(38, PLACES, asdecimal=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":  # an INTEGER: no float result processor in the way
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(38, PLACES, asdecimal=True))

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal:
        if value is None:
            return ZERO
        if dialect.name == "sqlite":
            return Decimal(int(value)).scaleb(-PLACES).quantize(QUANTUM)
        return money(value)


class money_sum(FunctionElement[Decimal]):  # noqa: N801 - named like the SQL functions
    """coalesce(sum(expr), 0) of a money expression, exact on both databases (a Decimal)."""

    type = _SummedMoney()
    inherit_cache = True


@compiles(money_sum)
def _money_sum(element: money_sum, compiler: SQLCompiler, **kw: Any) -> str:
    return f"coalesce(sum({compiler.process(element.clauses, **kw)}), 0)"


@compiles(money_sum, "sqlite")
def _money_sum_sqlite(element: money_sum, compiler: SQLCompiler, **kw: Any) -> str:
    scaled = f"CAST(round(({compiler.process(element.clauses, **kw)}) * 1e{PLACES}) AS INTEGER)"
    return f"coalesce(sum({scaled}), 0)"
