"""One line, not a traceback, when the ledger database or Redis cannot be reached.

A command that cannot connect used to end in a 450-550 line traceback and exit 1, the code
README reserves for "the batch ended with failed items" (issue 16). `describe` recognises a
connection failure anywhere in an exception's chain (SQLAlchemy wraps the driver's error in
`.orig`, Celery wraps Redis's in kombu's) and names the URL, without its password, and what to
check; the CLI then exits 3. Exception classes are recognised by module and name, so that this
module loads none of the drivers.
"""

from __future__ import annotations

from collections.abc import Iterator

from ledger.errors import hide_password

DATABASE, REDIS = "database", "redis"
# SQLSTATE classes of a failed connection: 08 connection exception, 28 bad credentials,
# 3D no such database, 57P the server is shutting down or not accepting connections yet.
# (psycopg leaves sqlstate empty when the server never answered.)
CONNECTION_STATES = ("08", "28", "3D", "57P")


def describe(exc: BaseException, database_url: str | None = None) -> str | None:
    """The one-line message for a connection failure in `exc`'s chain, or None."""
    for error in _chain(exc):
        kind = _kind(error)
        if kind == DATABASE:
            url = database_url or _setting("resolved_database_url")
            return (
                f"cannot reach the ledger database at {hide_password(url)} ({_reason(error, url)}); "
                "check that the database server is running and accepts connections there, "
                "and BATCHROUTER_DATABASE_URL"
            )
        if kind == REDIS:
            variable, url = _redis_url(str(error))
            return (
                f"cannot reach Redis at {hide_password(url)} ({_reason(error, url)}); "
                f"check that redis-server is running there, and {variable}"
            )
    return None


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        error = pending.pop(0)
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        yield error
        orig = getattr(error, "orig", None)
        pending += [orig if isinstance(orig, BaseException) else None]
        pending += [error.__cause__, error.__context__]


def _kind(error: BaseException) -> str | None:
    names = {(cls.__module__.split(".")[0], cls.__name__) for cls in type(error).__mro__}
    if ("psycopg", "OperationalError") in names:
        state = getattr(getattr(error, "diag", None), "sqlstate", None) or ""
        return DATABASE if not state or state.startswith(CONNECTION_STATES) else None
    if ("sqlite3", "OperationalError") in names and "unable to open" in str(error):
        return DATABASE
    if ("redis", "ConnectionError") in names or ("redis", "TimeoutError") in names:
        return REDIS
    if ("kombu", "OperationalError") in names:
        return REDIS
    return None


def _setting(method: str) -> str:
    try:
        from routing.settings import get_settings

        return str(getattr(get_settings(), method)())
    except Exception:  # the settings themselves are broken: say what we can
        return "(unknown URL)"


def _redis_url(message: str) -> tuple[str, str]:
    """The Redis a message names: the rate-limit Redis when it is another server whose
    address the driver's message mentions, else the broker."""
    broker = _setting("resolved_broker_url")
    limits = _setting("resolved_ratelimit_redis_url")
    if limits not in (broker, "None") and _address(limits) and _address(limits) in message:
        return "BATCHROUTER_RATELIMIT_REDIS_URL", limits
    return "BATCHROUTER_BROKER_URL", broker


def _address(url: str) -> str:
    """host:port of a URL."""
    return url.partition("://")[2].rpartition("@")[2].split("/", 1)[0]


def _reason(error: BaseException, url: str) -> str:
    """The driver's first line, without the URL's password should it quote it."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    reason = lines[0] if lines else type(error).__name__
    password = url.partition("://")[2].rpartition("@")[0].partition(":")[2]
    if password:
        reason = reason.replace(password, "***")
    return reason if len(reason) <= 300 else reason[:297] + "..."
