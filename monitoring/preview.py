"""A static preview of the Grafana dashboard from live workers, without Grafana or Prometheus.

    python monitoring/preview.py --metrics http://127.0.0.1:9808/metrics [--metrics ...] \\
        --seconds 30 --out preview.html

Scrapes the workers' /metrics twice, `--seconds` apart, evaluates every panel's query of
monitoring/grafana/dashboards/batchrouter.json with monitoring/promql.py (a rate is the change
between the two scrapes over the interval), and writes one HTML page laid out on the
dashboard's grid: a stat panel shows its number, a time-series panel its series' values at the
second scrape. The page says so at the top: it is not Grafana. docs/operations.md shows a
screenshot of it.
"""

from __future__ import annotations

import argparse
import html
import json
import math
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from promql import Evaluator, Series, merge, parse_scrape  # noqa: E402

DASHBOARD = Path(__file__).parent / "grafana" / "dashboards" / "batchrouter.json"
ROW_PX, WIDTH_PX = 34, 1360


def scrape(urls: list[str]) -> Series:
    import httpx

    return merge([parse_scrape(httpx.get(url, timeout=5).text, url) for url in urls])


def fmt(value: float, unit: str) -> str:
    if math.isnan(value):
        return "–"
    if unit == "currencyUSD":
        return f"${value:,.4f}" if abs(value) < 10 else f"${value:,.2f}"
    if unit == "percentunit":
        return f"{value * 100:.1f}%"
    if unit == "s":
        return f"{value:.3f} s"
    return f"{value:,.4g}"


def _legend(template: str, labels: dict[str, str]) -> str:
    out = template
    for key, value in labels.items():
        out = out.replace("{{" + key + "}}", value)
    return out


def panel_values(panel: dict[str, Any], evaluator: Evaluator) -> list[tuple[str, float]]:
    """(legend, value) of each series the panel's queries return, sorted by legend."""
    rows: list[tuple[str, float]] = []
    for target in panel["targets"]:
        value = evaluator.evaluate(target["expr"])
        if isinstance(value, float):
            rows.append((target["legendFormat"], value))
            continue
        rows += [(_legend(target["legendFormat"], dict(k)), v) for k, v in value.items()]
    return sorted(rows)


def _panel_html(panel: dict[str, Any], rows: list[tuple[str, float]]) -> str:
    unit = panel["fieldConfig"]["defaults"]["unit"]
    grid = panel["gridPos"]
    style = (
        f"left:{grid['x'] * WIDTH_PX / 24:.0f}px;top:{grid['y'] * ROW_PX}px;"
        f"width:{grid['w'] * WIDTH_PX / 24 - 8:.0f}px;height:{grid['h'] * ROW_PX - 8}px"
    )
    if panel["type"] == "stat":
        total = rows[0][1] if rows else 0.0  # Grafana's noValue: "0"
        body = f'<div class="stat">{html.escape(fmt(total, unit))}</div>'
    elif not rows:
        body = '<div class="empty">no series yet (0)</div>'
    else:
        top = max((abs(v) for _, v in rows if not math.isnan(v)), default=0.0) or 1.0
        lines = []
        for legend, value in rows:
            share = 0 if math.isnan(value) else abs(value) / top * 100
            lines.append(
                f'<div class="row"><span class="name">{html.escape(legend)}</span>'
                f'<span class="bar"><i style="width:{share:.0f}%"></i></span>'
                f'<span class="num">{html.escape(fmt(value, unit))}</span></div>'
            )
        body = "".join(lines)
    query = html.escape(" ; ".join(t["expr"] for t in panel["targets"]))
    return (
        f'<div class="panel" style="{style}"><h2>{html.escape(panel["title"])}</h2>'
        f'{body}<code title="{query}">{query}</code></div>'
    )


def render(dashboard: dict[str, Any], evaluator: Evaluator, caption: str) -> str:
    panels = [_panel_html(p, panel_values(p, evaluator)) for p in dashboard["panels"]]
    bottom = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in dashboard["panels"])
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>{html.escape(dashboard["title"])} (static preview)</title><style>
body{{background:#111217;color:#ccccdc;font:13px system-ui,sans-serif;margin:12px}}
h1{{font-size:18px;margin:0 0 4px}} .caption{{color:#e0b400;margin:0 0 10px;max-width:{WIDTH_PX}px}}
.grid{{position:relative;width:{WIDTH_PX}px;height:{bottom * ROW_PX}px}}
.panel{{position:absolute;background:#181b1f;border:1px solid #2c3235;border-radius:3px;
padding:6px 8px;box-sizing:border-box;overflow:hidden}}
h2{{font-size:13px;margin:0 0 6px;color:#fff}} .stat{{font-size:34px;color:#73bf69;margin-top:4px}}
.row{{display:flex;align-items:center;gap:6px;margin:2px 0}} .name{{width:38%;white-space:nowrap;
overflow:hidden;text-overflow:ellipsis}} .bar{{flex:1;background:#22252b;height:10px}}
.bar i{{display:block;height:10px;background:#5794f2}} .num{{width:90px;text-align:right}}
.empty{{color:#8e8e8e}} code{{position:absolute;bottom:4px;left:8px;right:8px;color:#6e7079;
font-size:10px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}}
</style></head><body><h1>{html.escape(dashboard["title"])}</h1>
<p class="caption">{html.escape(caption)}</p><div class="grid">{"".join(panels)}</div></body></html>
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--metrics", action="append", required=True, help="a worker's /metrics URL")
    parser.add_argument("--seconds", type=float, default=30.0, help="time between the scrapes")
    parser.add_argument("--note", default="", help="what ran while scraping, for the caption")
    parser.add_argument("--out", type=Path, default=Path("preview.html"))
    args = parser.parse_args()
    before = scrape(args.metrics)
    time.sleep(args.seconds)
    after = scrape(args.metrics)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    caption = (
        "Not Grafana: a static page made by monitoring/preview.py from the dashboard JSON "
        "(monitoring/grafana/dashboards/batchrouter.json). Each panel's query was evaluated by "
        f"monitoring/promql.py over two scrapes of {len(args.metrics)} running workers' /metrics "
        f"taken {args.seconds:g} s apart ({stamp}); a rate is the change between them over that "
        f"interval, and a time series shows its value at the second scrape. {args.note}"
    )
    dashboard = json.loads(DASHBOARD.read_text())
    args.out.write_text(render(dashboard, Evaluator(before, after, args.seconds), caption))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
