"""P4: share of the fake server's RPM and TPM limits used by 2 worker processes, with 0
responses 429 (bar 90%, goal 97%), over a 60 s window.

The server enforces 3,000 RPM and 200,000 TPM per model (a request takes 1 from RPM and its
prompt + max_tokens from TPM, as OpenAI counts; buckets hold a full minute). The deployment in
the routing file declares the same limits; the workers share the global Redis bucket
(worker/ratelimit.py). The window starts 15 s after the first request, once the initial burst
is spent, so it measures the sustained rate; the binding limit's share is the figure.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from bench.common import Result
from bench.fake_run import fake_batch

BAR, GOAL = 0.90, 0.97
RPM, TPM, MAX_TOKENS = 3_000, 200_000, 16


def run(quick: bool = False, **env: str) -> Result:
    warmup, window = (3.0, 8.0) if quick else (15.0, 60.0)
    items = 1_200 if quick else 4_500
    limits = {"rpm": RPM, "tpm": TPM}
    with tempfile.TemporaryDirectory() as tmp:
        fake = fake_batch(
            Path(tmp),
            items=items,
            workers=2,
            latency_ms=200,
            limits=limits,
            deployment_limits=limits,
            worker_env=env,
        )
    samples = [s for s in fake.samples if s[1] > fake.stats_before.get("requests", 0)]
    start = samples[0][0] + warmup
    inside = [s for s in samples if start <= s[0] <= start + window]
    if len(inside) < 2:  # a quick run can end inside its warm-up: measure the whole run
        inside = samples
    first, last = inside[0], inside[-1]
    span = max(last[0] - first[0], 1e-6)
    requests = last[1] - first[1]
    tokens = (last[3] - first[3]) + requests * MAX_TOKENS
    rpm_share = requests / (RPM / 60 * span)
    tpm_share = tokens / (TPM / 60 * span)
    share = max(rpm_share, tpm_share)
    limited = fake.stats_after.get("rate_limited", 0) - fake.stats_before.get("rate_limited", 0)
    return Result(
        "P4",
        "share of the provider's binding limit used, 2 worker processes",
        share * 100,
        "%",
        None,
        "",
        f">= {BAR:.0%} with 0 x 429",
        share >= BAR and limited == 0,
        [
            f"window {span:.0f} s after {warmup:.0f} s warm-up: {requests:,} requests "
            f"({rpm_share:.1%} of {RPM:,} RPM), {tokens:,} tokens ({tpm_share:.1%} of "
            f"{TPM:,} TPM); 429 responses: {limited}",
        ],
    )
