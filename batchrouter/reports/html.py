"""The report as one self-contained HTML page: inline CSS and SVG charts, no script, no CDN.

Written for someone who has never seen the command line: every chart says what it shows and
how to read it. It opens offline and can be mailed as an attachment.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

from batchrouter.reports.terminal import usd
from ledger.report import Report

COLORS = {
    "resolved": "#2e7d32",
    "passed on": "#f9a825",
    "failed": "#c62828",
    "in progress": "#9e9e9e",
    "bar": "#1565c0",
    "p50": "#90caf9",
    "p95": "#1e88e5",
    "p99": "#0d47a1",
}
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;
max-width:1100px;color:#222;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2.2rem;
border-bottom:1px solid #ddd;padding-bottom:.3rem}
.sub{color:#666;margin-top:0}.cards{display:flex;flex-wrap:wrap;gap:.8rem;margin:1.2rem 0}
.card{border:1px solid #ddd;border-radius:8px;padding:.7rem 1rem;min-width:150px}
.card b{display:block;font-size:1.35rem}.card span{color:#666;font-size:.85rem}
.good b{color:#2e7d32}.bad b{color:#c62828}
table{border-collapse:collapse;width:100%;font-size:.9rem;margin:.6rem 0}
th,td{border-bottom:1px solid #eee;padding:.35rem .5rem;text-align:right}
th:first-child,td:first-child,td.l,th.l{text-align:left}th{background:#fafafa}
.explain{color:#555;font-size:.92rem;max-width:850px}svg text{font-size:12px;fill:#333}
.legend span{display:inline-block;margin-right:1rem;font-size:.85rem}
.legend i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-1px}
.notes{color:#666;font-size:.85rem}
.split td.bar{width:30%}.split .fill{height:14px;background:#2e7d32;border-radius:2px}
.split .neg .fill{background:#c62828}.split tr.neg td{color:#c62828}
.split tr.sum td{font-weight:bold;border-top:2px solid #ccc}
"""


def _bar_chart(rows: Sequence[tuple[str, Any]], fmt=usd, width: int = 720) -> str:  # type: ignore[no-untyped-def]
    """Horizontal bars, one per (label, value), scaled to the largest value."""
    if not rows:
        return "<p class='explain'>Nothing to show for this selection.</p>"
    label_w, bar_h, gap = 210, 22, 8
    top = float(max(value for _, value in rows)) or 1.0  # geometry in floats; labels exact
    height = len(rows) * (bar_h + gap) + gap
    parts = [f"<svg role='img' width='{width}' height='{height}' viewBox='0 0 {width} {height}'>"]
    for index, (label, value) in enumerate(rows):
        y = gap + index * (bar_h + gap)
        length = max((width - label_w - 110) * float(value) / top, 1 if value else 0)
        parts.append(
            f"<text x='{label_w - 8}' y='{y + 15}' text-anchor='end'>{escape(label)}</text>"
            f"<rect x='{label_w}' y='{y}' width='{length:.1f}' height='{bar_h}' "
            f"fill='{COLORS['bar']}'><title>{escape(label)}: {escape(fmt(value))}</title></rect>"
            f"<text x='{label_w + length + 6:.1f}' y='{y + 15}'>{escape(fmt(value))}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _legend(names: Sequence[str]) -> str:
    return (
        "<div class='legend'>"
        + "".join(f"<span><i style='background:{COLORS[n]}'></i>{escape(n)}</span>" for n in names)
        + "</div>"
    )


def _funnel_chart(report: Report, width: int = 720) -> str:
    """Per tier, a bar as long as the items it received, split by what became of them."""
    if not report.by_tier:
        return "<p class='explain'>No attempts in this selection.</p>"
    label_w, bar_h, gap = 120, 28, 12
    top = max(t.items_received for t in report.by_tier) or 1
    height = len(report.by_tier) * (bar_h + gap) + gap
    parts = [f"<svg role='img' width='{width}' height='{height}' viewBox='0 0 {width} {height}'>"]
    for index, tier in enumerate(report.by_tier):
        y = gap + index * (bar_h + gap)
        x = float(label_w)
        parts.append(
            f"<text x='{label_w - 8}' y='{y + 18}' text-anchor='end'>{escape(tier.tier)}</text>"
        )
        for name, count in (
            ("resolved", tier.resolved),
            ("passed on", tier.escalated),
            ("failed", tier.failed),
            ("in progress", tier.in_progress),
        ):
            if count <= 0:
                continue
            length = (width - label_w - 300) * count / top
            parts.append(
                f"<rect x='{x:.1f}' y='{y}' width='{length:.1f}' height='{bar_h}' "
                f"fill='{COLORS[name]}'><title>{escape(tier.tier)}: {count} {name}</title></rect>"
            )
            x += length
        parts.append(
            f"<text x='{x + 6:.1f}' y='{y + 18}'>{tier.items_received} received: "
            f"{tier.resolved} resolved, {tier.escalated} passed on</text>"
        )
    parts.append("</svg>")
    return _legend(["resolved", "passed on", "failed", "in progress"]) + "".join(parts)


def _latency_chart(report: Report, width: int = 720) -> str:
    if not report.latency:
        return "<p class='explain'>No calls in this selection.</p>"
    label_w, bar_h, gap = 210, 15, 16
    top = max(line.p99_ms for line in report.latency) or 1.0
    group_h = 3 * bar_h + gap
    height = len(report.latency) * group_h + gap
    parts = [f"<svg role='img' width='{width}' height='{height}' viewBox='0 0 {width} {height}'>"]
    for index, line in enumerate(report.latency):
        y0 = gap + index * group_h
        parts.append(
            f"<text x='{label_w - 8}' y='{y0 + 18}' text-anchor='end'>"
            f"{escape(line.deployment)}</text>"
        )
        for row, (name, value) in enumerate(
            (("p50", line.p50_ms), ("p95", line.p95_ms), ("p99", line.p99_ms))
        ):
            y = y0 + row * bar_h
            length = max((width - label_w - 110) * value / top, 1)
            parts.append(
                f"<rect x='{label_w}' y='{y}' width='{length:.1f}' height='{bar_h - 1}' "
                f"fill='{COLORS[name]}'><title>{name}: {value:,.0f} ms</title></rect>"
                f"<text x='{label_w + length + 6:.1f}' y='{y + 11}' style='font-size:11px'>"
                f"{name} {value:,.0f} ms</text>"
            )
    parts.append("</svg>")
    return _legend(["p50", "p95", "p99"]) + "".join(parts)


def _latency_table(report: Report) -> str:
    """The provider's latency and the time queued in the worker, per deployment (issue 19)."""
    if not report.latency:
        return ""
    rows = [
        (
            line.deployment,
            line.model,
            f"{line.calls:,}",
            *(f"{value:,.0f}" for value in (line.p50_ms, line.p95_ms, line.p99_ms, line.mean_ms)),
            "-" if line.queued_mean_ms is None else f"{line.queued_mean_ms:,.0f}",
        )
        for line in report.latency
    ]
    headers = ("deployment", "model", "calls", "p50 ms", "p95 ms", "p99 ms", "mean ms")
    return _table((*headers, "queued in the worker, mean ms"), rows, left=2)


def _table(
    headers: Sequence[str], rows: Sequence[Sequence[object]], left: int = 1, text_last: bool = False
) -> str:
    def align(i: int) -> str:
        return "l" if i < left or (text_last and i == len(headers) - 1) else ""

    head = "".join(f"<th class='{align(i)}'>{escape(h)}</th>" for i, h in enumerate(headers))
    body = "".join(
        "<tr>"
        + "".join(f"<td class='{align(i)}'>{escape(str(cell))}</td>" for i, cell in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _card(label: str, value: str, tone: str = "") -> str:
    return f"<div class='card {tone}'><b>{escape(value)}</b><span>{escape(label)}</span></div>"


def _saving_split(r: Report) -> str:
    """The saving split into routing, deferral and cache (report_levers.py), one row each."""
    rows = [
        (
            "Routing",
            r.routing_saving_usd,
            "",
            "Answering on cheaper tiers first: the premium-only cost minus what the calls would "
            "have cost at immediate prices with no cache. Negative when escalations cost more "
            "than one premium call per item.",
        ),
        (
            "Deferral",
            r.deferral_saving_usd,
            f"{r.deferred_calls:,} deferred calls",
            "Calls sent through a provider's batch API: the same tokens at immediate prices "
            "minus the batch price paid.",
        ),
        (
            "Cache",
            r.cache_saving_usd,
            f"{r.cache_hits:,} cache hits",
            "Answers reused from the response cache or from an identical item of the batch: "
            "what the reused call cost. Nothing was billed for them.",
        ),
        ("Total", r.saving_usd, "", "Premium-only minus spent: the sum of the three above."),
    ]
    top = float(max(abs(value) for _, value, _, _ in rows)) or 1.0
    body = []
    for name, value, count, how in rows:
        tone = ["neg" if value < 0 else "", "sum" if name == "Total" else ""]
        share = f"{100 * value / r.premium_only_cost_usd:.1f}%" if r.premium_only_cost_usd else ""
        body.append(
            f"<tr class='{' '.join(t for t in tone if t)}'><td class='l'>{escape(name)}</td>"
            f"<td>{escape(usd(value))}</td><td>{escape(share)}</td>"
            f"<td class='bar'><div class='fill' style='width:{100 * float(abs(value)) / top:.1f}%'>"
            f"</div></td><td>{escape(count)}</td><td class='l'>{escape(how)}</td></tr>"
        )
    head = "".join(
        f"<th class='{'l' if i in (0, 5) else ''}'>{h}</th>"
        for i, h in enumerate(["lever", "saved", "of premium-only", "", "calls", "how"])
    )
    return (
        f"<table class='split'><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


def render_html(report: Report) -> str:
    r = report
    saving_tone = "good" if r.saving_usd >= 0 else "bad"
    accuracy = (
        f"{100 * r.correct / r.with_expected:.1f}% of {r.with_expected}" if r.with_expected else ""
    )
    cards = [
        _card("spent on model calls", usd(r.cost_usd)),
        _card(
            f"had every item gone to the premium tier ({r.premium_tier})",
            usd(r.premium_only_cost_usd),
        ),
        _card(f"saved ({r.saving_pct:.1f}%)", usd(r.saving_usd), saving_tone),
        _card(
            "items (succeeded / failed / pending)",
            f"{r.items} ({r.succeeded}/{r.failed}/{r.pending})",
        ),
        _card("cost per succeeded item", usd(r.cost_per_succeeded_usd)),
        _card("model calls (attempts)", f"{r.attempts:,}"),
        _card(
            "tokens in (cached, cache writes)",
            f"{r.input_tokens:,} ({r.cached_input_tokens:,}, {r.cache_write_tokens:,})",
        ),
        _card("tokens out (reasoning)", f"{r.output_tokens:,} ({r.reasoning_tokens:,})"),
    ]
    if r.unconfirmed_calls:  # part of the cost: a conservative bound nobody confirmed
        cards.append(
            _card(
                f"of the cost: estimated, unconfirmed ({r.unconfirmed_calls:,} failed calls "
                "billed at their estimate: timeouts, calls lost in flight)",
                usd(r.unconfirmed_cost_usd),
                "bad",
            )
        )
    if accuracy:
        cards.append(_card("matched the expected answer", accuracy))
    tier_cost = [(t.tier, t.cost_usd) for t in r.by_tier]
    model_cost = [(f"{m.model} ({m.tier})", m.cost_usd) for m in r.by_model]
    levers = bool(r.cache_hits or r.deferred_calls)  # lever columns only when a lever was used
    lever_headers = ["cache hits", "cache saved", "deferred", "deferral saved", "routing saved"]
    groups = _table(
        [
            *r.group_by,
            "items",
            "calls",
            "succeeded",
            "errors",
            "input tokens",
            "cached",
            "cache writes",
            "output tokens",
            "reasoning",
            "cost",
            "per success",
            "premium-only",
            *(lever_headers if levers else []),
        ],
        [
            [
                *(g.key.get(name) or "-" for name in r.group_by),
                g.items,
                g.attempts,
                g.succeeded,
                g.errors,
                f"{g.input_tokens:,}",
                f"{g.cached_input_tokens:,}",
                f"{g.cache_write_tokens:,}",
                f"{g.output_tokens:,}",
                f"{g.reasoning_tokens:,}",
                usd(g.cost_usd),
                usd(g.cost_per_succeeded_usd),
                usd(g.premium_only_cost_usd),
                *(
                    [g.cache_hits, usd(g.cache_saving_usd), g.deferred_calls]
                    + [usd(g.deferral_saving_usd), usd(g.routing_saving_usd)]
                    if levers
                    else []
                ),
            ]
            for g in r.groups
        ],
        left=len(r.group_by),
    )
    failures = _table(
        ["kind", "what", "count", "share", "example"],
        [
            [f.kind, f.name, f.count, f"{f.share_pct:.1f}%", (f.example or "")[:120]]
            for f in r.failure_reasons
        ],
        left=2,
        text_last=True,
    )
    filters = ", ".join(f"{k} = {v}" for k, v in r.filters.items() if v) or "none"
    sim = (
        "<p class='explain'><b>Simulated:</b> these figures come from the offline sim provider, "
        "not from a real model.</p>"
        if r.simulated
        else ""
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>batchrouter report: {escape(r.title)}</title><style>{CSS}</style></head>
<body>
<h1>LLM batch cost report</h1>
<p class="sub">{escape(r.title)} &middot; generated {escape(r.generated_at)} &middot;
filters: {escape(filters)}</p>
<p class="explain">batchrouter sends each task to the cheapest model tier first, checks the
answer automatically, and passes only the tasks whose answer failed a check on to the next,
more expensive tier. This page shows what that cost, and what sending everything straight to
the most expensive (premium) tier would have cost instead.</p>
{sim}
<div class="cards">{"".join(cards)}</div>

<h2>Where the saving came from</h2>
<p class="explain">The saving against the premium tier has three sources, which add up to the
total: routing (cheaper tiers answered first), deferral (provider batch prices) and the cache
(answers reused instead of paid for again).</p>
{_saving_split(r)}

<h2>Cost by tier</h2>
<p class="explain">Money spent on each tier, cheapest tier first. Every call is counted,
including calls whose answer was rejected.</p>
{_bar_chart(tier_cost)}

<h2>Cost by model</h2>
{_bar_chart(model_cost)}

<h2>Escalation funnel</h2>
<p class="explain">Each bar is as long as the number of tasks that reached the tier. Green
tasks were answered there; yellow ones failed a check and were passed on to the next tier;
red ones failed on their last tier; grey ones are still waiting.</p>
{_funnel_chart(r)}

<h2>Latency per deployment</h2>
<p class="explain">How long one call took at the provider (request sent to answer read): half
of the calls were faster than p50, 95% faster than p95, 99% faster than p99. Apart from it, the
time a call waited inside the worker before it was sent (rate limits, the cap on calls in
flight, a busy worker): a large figure there means more workers, not a slower provider.</p>
{_latency_chart(r)}
{_latency_table(r)}

<h2>Details by {escape(", ".join(r.group_by))}</h2>
{groups}

<h2>Top failure reasons</h2>
<p class="explain">Why calls did not produce an accepted answer: a quality check that said no
("check"), or an error from the model provider ("error").</p>
{failures if r.failure_reasons else "<p class='explain'>No failed calls.</p>"}

<div class="notes">{"".join(f"<p>Note: {escape(n)}</p>" for n in r.notes)}</div>
</body></html>
"""
