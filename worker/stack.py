"""The middleware stack every worker call goes through, built once per worker process.

Its own module so that the contract (worker/middleware.py) imports none of its implementations.
"""

from __future__ import annotations

from worker.middleware import Middleware


def default_middleware() -> list[Middleware]:
    """The worker's stack, installed once per worker process (worker/tasks.py). Order matters:
    before_call runs first to last (a layer that admitted a call a later one refuses gets
    `release`), after_call last to first. Deployment statistics go first: during an outage
    their circuit refuses every call (worker/outage.py), and a refused call must reserve no
    budget. The budget guard next, so a call it refuses waits for no rate-limit slot."""
    from worker.budget import BudgetGuard
    from worker.deployment_stats import DeploymentStats
    from worker.ratelimit import RateLimiter

    # The rate limiter comes last: it never denies, and a call waits for its slot only once
    # every other layer has admitted it.
    return [DeploymentStats.from_settings(), BudgetGuard(), RateLimiter.from_settings()]
