"""`python -m bench.worker ...` = `batchrouter worker ...`, for benchmarks that need to leave a
middleware out: BATCHROUTER_BENCH_SKIP_MIDDLEWARE=BudgetGuard,DeploymentStats (class names).
Used only to show what each layer costs; the reported figures run the full stack."""

from __future__ import annotations

import os

from worker import middleware, stack


def main() -> None:
    skip = {name for name in os.environ.get("BATCHROUTER_BENCH_SKIP_MIDDLEWARE", "").split(",")}
    full = stack.default_middleware

    def reduced() -> list[middleware.Middleware]:
        return [layer for layer in full() if type(layer).__name__ not in skip]

    stack.default_middleware = reduced  # type: ignore[assignment]
    from batchrouter.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
