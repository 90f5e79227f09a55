"""The `monitoring` profile without Docker: compose, Prometheus and Grafana provisioning files
validate and agree with each other, the dashboard JSON is what monitoring/make_dashboard.py
makes, and every dashboard query, evaluated over two scrapes of running workers around a real
batch, reads metrics those workers export and gives the ledger's figures."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import httpx
import pytest
import yaml

from tests.conftest import EXAMPLES, ROOT
from tests.helpers.workers import workers_with_metrics
from tests.test_compose import compose_config

MONITORING = ROOT / "monitoring"
PROVISIONING = MONITORING / "grafana" / "provisioning"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "batchrouter.json"
LADDER = ["tier0", "tier1", "tier2"]


def _module(name: str) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    sys.path.insert(0, str(MONITORING))  # preview.py imports promql as its neighbour
    spec = importlib.util.spec_from_file_location(name, MONITORING / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> dict:
    result = compose_config(tmp_path_factory.mktemp("compose"), FLOWER_BASIC_AUTH="admin:secret")
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)["services"]


def _mounts(service: dict) -> dict[str, Path]:
    """container path -> host path of a service's bind mounts."""
    out = {}
    for volume in service.get("volumes", []):
        source, target = (
            volume.split(":")[:2]
            if isinstance(volume, str)
            else (volume["source"], volume["target"])
        )
        if source.startswith("/"):
            out[target] = Path(source)
    return out


def test_monitoring_profile_runs_prometheus_and_grafana_on_loopback(services: dict) -> None:
    for name in ("prometheus", "grafana"):
        service = services[name]
        assert service["profiles"] == ["monitoring"]  # a plain `up` does not start them
        assert all(str(p).startswith("127.0.0.1:") for p in service["ports"])
        for host_path in _mounts(service).values():
            assert host_path.exists(), host_path
            assert host_path.resolve().is_relative_to(MONITORING)


def test_prometheus_scrapes_every_worker_on_its_metrics_port(services: dict) -> None:
    workers = {name: s for name, s in services.items() if name.startswith("worker-")}
    assert len(workers) == 3
    expected = set()
    for name, worker in workers.items():
        env = worker["environment"]
        assert env["BATCHROUTER_METRICS_ADDRESS"] == "0.0.0.0" and "ports" not in worker
        expected.add(f"{name}:{env['BATCHROUTER_METRICS_PORT']}")
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    mounted = _mounts(services["prometheus"])["/etc/prometheus/prometheus.yml"]
    assert mounted.resolve() == (MONITORING / "prometheus.yml").resolve()
    targets = {
        target
        for job in config["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    }
    assert targets == expected


def test_grafana_provisioning_finds_prometheus_and_the_dashboard(services: dict) -> None:
    sources = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    assert sources["apiVersion"] == 1
    (source,) = sources["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    assert "9090:9090" in services["prometheus"]["ports"][0]
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "batchrouter.yml").read_text())
    (provider,) = providers["providers"]
    grafana_mounts = _mounts(services["grafana"])
    dashboards_dir = grafana_mounts[provider["options"]["path"]]
    assert (dashboards_dir / DASHBOARD.name).resolve() == DASHBOARD.resolve()
    assert grafana_mounts["/etc/grafana/provisioning"].resolve() == PROVISIONING.resolve()
    home = services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{provider['options']['path']}/{DASHBOARD.name}"
    dashboard = json.loads(DASHBOARD.read_text())
    uids = {t["datasource"]["uid"] for p in dashboard["panels"] for t in p["targets"]}
    assert uids == {source["uid"]}


def test_dashboard_json_is_generated_valid_and_covers_the_issue() -> None:
    make = _module("make_dashboard")
    assert DASHBOARD.read_text() == make.render(), "run: python monitoring/make_dashboard.py"
    dashboard = json.loads(DASHBOARD.read_text())
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels) and dashboard["uid"]
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        mine = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not mine & cells, f"{panel['title']} overlaps another panel"
        cells |= mine
        assert panel["type"] in ("stat", "timeseries") and panel["targets"]
        assert all(t["expr"] and t["refId"] for t in panel["targets"])
    titles = " | ".join(p["title"].lower() for p in panels)
    for topic in (
        "spend per minute by tier and model",
        "saving rate",
        "escalation rate per rung",
        "pass rate per rung",
        "queue depth per tier",
        "429s",
        "open circuits",
    ):
        assert topic in titles, topic


@pytest.mark.redis
@pytest.mark.timeout(240)
def test_every_query_reads_what_running_workers_export(
    use_ledger, sqlite_url: str, redis_url: str, tmp_path: Path
) -> None:
    from sqlalchemy import select

    from batchrouter.api import batch_report, submit_batch, wait_for_batch
    from ledger.db import session_scope
    from ledger.models import Attempt, Item

    promql = _module("promql")
    preview = _module("preview")
    url = use_ledger(sqlite_url)
    source = tmp_path / "tickets.jsonl"
    source.write_text("".join((EXAMPLES / "tickets.jsonl").read_text().splitlines(True)[:60]))
    # The example ladder, with a third of the answers accepted below tier2 audited there.
    routing = yaml.safe_load((EXAMPLES / "routing.yaml").read_text())
    routing["task_types"]["ticket_classification"]["audit"] = {"rate": 0.3, "tier": "tier2"}
    config = tmp_path / "routing.yaml"
    config.write_text(yaml.safe_dump(routing))
    with workers_with_metrics(
        LADDER, database_url=url, broker_url=redis_url, log_dir=tmp_path
    ) as by_tier:
        urls = list(by_tier.values())
        pages = [httpx.get(u, timeout=5).text for u in urls]
        before = promql.merge([promql.parse_scrape(p, u) for p, u in zip(pages, urls, strict=True)])
        submitted = submit_batch(source, "ticket_classification", config=config)
        wait_for_batch(submitted.batch_id, timeout=120)
        after = preview.scrape(urls)
    exported = set.intersection(*(promql.exported_names(p) for p in pages))
    evaluator = promql.Evaluator(before, after, 60.0)
    dashboard = json.loads(DASHBOARD.read_text())
    values = {}
    for panel in dashboard["panels"]:
        values[panel["title"]] = preview.panel_values(panel, evaluator)  # raises on a bad query
        for target in panel["targets"]:
            evaluator.names.clear()
            evaluator.evaluate(target["expr"])
            missing = evaluator.names - exported
            assert not missing, f"{panel['title']}: no worker exports {missing}"

    report = batch_report(submitted.batch_id)
    (spend,) = values["Spend, last hour"]
    assert spend[1] == pytest.approx(float(report.cost_usd), rel=1e-6)
    (saving,) = values["Saving rate vs premium-only (15 min)"]
    # The live estimate prices each item's settling call; the report its first prompt and
    # last answer. This ladder sends the same prompt to every tier, so they agree closely.
    assert saving[1] * 100 == pytest.approx(float(report.saving_pct), abs=1.0)
    passed = dict(values["Pass rate per rung"])
    tier0 = next(t for t in report.by_tier if t.tier == "tier0")
    assert passed["tier0"] == pytest.approx(tier0.resolved / tier0.attempts)  # sim never errs
    escalated = dict(values["Escalation rate per rung"])
    assert escalated["tier0"] == pytest.approx(tier0.escalated / tier0.items_received)
    assert values["Messages waiting on tier queues"] == [("waiting", 0.0)]
    with session_scope(readonly=True) as session:
        audits = session.execute(
            select(Item.tier, Attempt.verdicts)
            .join(Item, Item.id == Attempt.item_id)
            .where(Attempt.batch_id == submitted.batch_id, Attempt.outcome == "audit")
        ).all()
    by_rung: dict[str, list[bool]] = {}
    for rung, verdicts in audits:
        by_rung.setdefault(rung, []).append(bool(verdicts[0]["passed"]))
    assert by_rung, "the sample holds no audited item"
    expected = {rung: sum(agreed) / len(agreed) for rung, agreed in by_rung.items()}
    assert dict(values["Audit accuracy per rung (1 h)"]) == pytest.approx(expected)
    html = preview.render(dashboard, evaluator, "test")
    assert all(panel["title"] in html for panel in dashboard["panels"])


def test_operations_guide_shows_the_preview_screenshot() -> None:
    guide = (ROOT / "docs" / "operations.md").read_text()
    shot = ROOT / "docs" / "dashboard-preview.png"
    assert "(dashboard-preview.png)" in guide
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size < 200_000
