"""Static checks of the Grafana dashboards and provisioning (no Grafana or Prometheus here).

Every metric a dashboard queries must exist: the platform's own (``finone_*``) are found by
parsing the metric definitions in the sources, not by importing them, and Ray's own are
accepted by a short list of prefixes. Ray's metrics agent exports a metric ``<name>`` as
``ray_<name>``: a Counter as ``ray_<name>_total`` (the OpenTelemetry Prometheus exporter of
Ray 2.60 writes counters as Prometheus counters, whose samples carry the ``_total`` suffix), a
Gauge as ``ray_<name>``, a Histogram as ``ray_<name>_bucket``, ``_sum`` and ``_count``.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray
import yaml
from ray._private import ray_constants

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "dashboards" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
PROVISIONING = GRAFANA / "provisioning"
SOURCE_PACKAGES = ("actors", "serve", "cluster", "training")

DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
METRIC_CLASSES = ("Counter", "Gauge", "Histogram")
PLATFORM_PREFIX = "finone_"
# The Prometheus series each kind of metric becomes, by suffix after `ray_<name>`.
SERIES_SUFFIXES = {
    "Counter": ("_total",),
    "Gauge": ("",),
    "Histogram": ("_bucket", "_sum", "_count"),
}
# Ray's own metrics (exported by Ray itself, not defined in this repository) a dashboard may use,
# by name after `ray_`: the families Ray's own default and Serve dashboards chart (a test below
# finds each in the dashboard definitions shipped inside Ray).
RAY_METRIC_PREFIXES = (
    "serve_",  # Ray Serve: replicas, queued and ongoing requests, latency per deployment
    "node_",  # per node: CPU, memory, disk, network
    "component_",  # per Ray process (raylet, workers, dashboard): CPU and memory
    "object_store_",  # the object store's memory
    "tasks",  # tasks by state
    "actors",  # actors by state: feed actors, recorder, alert evaluator, retrain scheduler
    "resources",  # logical resources (CPU, memory) used and available
)
RAY_DASHBOARDS = Path(ray.__file__).parent / "dashboard" / "modules" / "metrics" / "dashboards"
METRIC_TOKEN = re.compile(r"(?<![A-Za-z0-9_:])ray_[a-z0-9_]+")
SUFFIX = re.compile(r"_(total|bucket|sum|count)$")
GRID_COLUMNS = 24


# -- the checker ---------------------------------------------------------------------------------


def defined_metrics(roots: list[Path]) -> dict[str, str]:
    """Metric name -> kind (Counter, Gauge, Histogram) of every ``Counter("name", ...)``-style
    call in the Python files under ``roots`` whose name is a string literal."""
    found: dict[str, str] = {}
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call):
                    continue
                func = node.func
                kind = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
                if kind not in METRIC_CLASSES:
                    continue
                name_node = node.args[0] if node.args else None
                if name_node is None:
                    name_node = next((k.value for k in node.keywords if k.arg == "name"), None)
                if isinstance(name_node, ast.Constant) and isinstance(name_node.value, str):
                    found[name_node.value] = kind
    return found


def normalise(token: str) -> str:
    """``ray_finone_feed_messages_total`` -> ``finone_feed_messages``."""
    return SUFFIX.sub("", token.removeprefix("ray_"))


def metric_tokens(expr: str) -> set[str]:
    return set(METRIC_TOKEN.findall(expr))


def check_expr(expr: str, defined: dict[str, str]) -> list[str]:
    """What is wrong with the metric names of one PromQL expression (empty when nothing)."""
    problems = []
    for token in sorted(metric_tokens(expr)):
        bare = token.removeprefix("ray_")
        name = normalise(token)
        platform = next((n for n in (bare, name) if n in defined), None)
        if platform is not None:
            series = {f"ray_{platform}{suffix}" for suffix in SERIES_SUFFIXES[defined[platform]]}
            if token not in series:
                problems.append(
                    f"{token}: {platform} is a {defined[platform]}, exported as "
                    f"{' / '.join(sorted(series))}"
                )
        elif name.startswith(PLATFORM_PREFIX):
            problems.append(f"{token}: no metric {name} is defined in {', '.join(SOURCE_PACKAGES)}")
        elif not name.startswith(RAY_METRIC_PREFIXES):
            problems.append(f"{token}: neither a platform metric nor one of Ray's metric families")
    return problems


def queries(node: Any) -> Iterator[str]:
    """Every PromQL string of a dashboard: panel targets' ``expr`` and template variables'
    ``definition`` and ``query``."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "definition", "query") and isinstance(value, str):
                yield value
            else:
                yield from queries(value)
    elif isinstance(node, list):
        for item in node:
            yield from queries(item)


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def all_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # a collapsed row holds its panels


@pytest.fixture(scope="module")
def code_metrics() -> dict[str, str]:
    return defined_metrics([ROOT / package for package in SOURCE_PACKAGES])


# -- (a) every queried metric exists -------------------------------------------------------------


def test_there_are_dashboards_for_feeds_api_and_models() -> None:
    assert {path.stem for path in DASHBOARDS} >= {"feeds", "api", "models"}


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_metric_a_dashboard_queries_is_defined(
    path: Path, code_metrics: dict[str, str]
) -> None:
    dashboard = load(path)
    exprs = list(queries(dashboard))
    assert exprs and all(metric_tokens(expr) for expr in exprs), "a query names no metric"
    problems = sorted({problem for expr in exprs for problem in check_expr(expr, code_metrics)})
    assert not problems, "\n".join(problems)


def test_the_ray_metric_families_are_ones_rays_own_dashboards_chart() -> None:
    shipped = " ".join(path.read_text() for path in RAY_DASHBOARDS.glob("*_panels.py"))
    for prefix in RAY_METRIC_PREFIXES:
        assert f"ray_{prefix}" in shipped, prefix


def test_the_platform_metrics_are_found_in_the_sources(code_metrics: dict[str, str]) -> None:
    # Metrics the feed actors and the recorder have defined from the start, with their kinds.
    assert code_metrics["finone_feed_messages"] == "Counter"
    assert code_metrics["finone_feed_live"] == "Gauge"
    assert code_metrics["finone_recorder_trades"] == "Counter"
    assert all(name.startswith(PLATFORM_PREFIX) for name in code_metrics), code_metrics


# -- (b) structurally valid Grafana --------------------------------------------------------------


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_is_structurally_valid_grafana(path: Path) -> None:
    dashboard = load(path)
    assert isinstance(dashboard["uid"], str) and 0 < len(dashboard["uid"]) <= 40
    assert isinstance(dashboard["title"], str) and dashboard["title"]
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["schemaVersion"] >= 36
    assert dashboard["panels"]

    panels = list(all_panels(dashboard))
    ids = [panel["id"] for panel in panels]
    assert all(isinstance(i, int) for i in ids) and len(ids) == len(set(ids)), ids
    cells: dict[tuple[int, int], int] = {}
    for panel in panels:
        grid = panel["gridPos"]
        assert all(isinstance(grid[k], int) for k in ("h", "w", "x", "y")), panel["title"]
        assert grid["h"] > 0 and grid["w"] > 0 and grid["x"] >= 0 and grid["y"] >= 0
        assert grid["x"] + grid["w"] <= GRID_COLUMNS, panel["title"]
        for row in range(grid["y"], grid["y"] + grid["h"]):
            for column in range(grid["x"], grid["x"] + grid["w"]):
                assert (row, column) not in cells, f"{panel['title']} overlaps panel {cells}"
                cells[(row, column)] = panel["id"]
        assert panel.get("title"), panel["id"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == DATASOURCE, panel["title"]
        targets = panel["targets"]
        assert targets, panel["title"]
        ref_ids = [target["refId"] for target in targets]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        for target in targets:
            assert target["datasource"] == DATASOURCE, panel["title"]
            assert isinstance(target["expr"], str) and target["expr"].strip(), panel["title"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_template_variables_query_the_platform_datasource(path: Path) -> None:
    dashboard = load(path)
    variables = dashboard["templating"]["list"]
    assert variables, "no variables: filter by venue, route or target"
    names = [variable["name"] for variable in variables]
    assert len(names) == len(set(names))
    for variable in variables:
        if variable["type"] == "query":
            assert variable["datasource"] == DATASOURCE, variable["name"]
        used = f"${variable['name']}"
        assert any(used in expr for expr in queries(dashboard["panels"])), f"{used} is unused"


def test_feed_dashboard_filters_by_venue() -> None:
    feeds = load(GRAFANA / "dashboards" / "feeds.json")
    assert "venue" in {variable["name"] for variable in feeds["templating"]["list"]}


def test_dashboard_uids_and_titles_are_unique() -> None:
    dashboards = [load(path) for path in DASHBOARDS]
    assert len({d["uid"] for d in dashboards}) == len(dashboards)
    assert len({d["title"] for d in dashboards}) == len(dashboards)


# -- (c) provisioning ----------------------------------------------------------------------------


def compose_mounts(service: str) -> dict[str, tuple[str, bool]]:
    """Container path -> (source, read-only) of a docker-compose.yml service's volumes."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = {}
    for volume in compose["services"][service].get("volumes", []):
        if isinstance(volume, dict):
            mounts[volume["target"]] = (volume["source"], bool(volume.get("read_only")))
        else:
            source, target, *mode = volume.split(":")
            mounts[target] = (source, mode == ["ro"])
    return mounts


def resolve(container_path: str, mounts: dict[str, tuple[str, bool]]) -> tuple[str, str]:
    """(source of the mount holding ``container_path``, the path below it)."""
    target = max(
        (
            t
            for t in mounts
            if container_path == t or container_path.startswith(t.rstrip("/") + "/")
        ),
        key=len,
        default=None,
    )
    assert target is not None, f"{container_path} is on no mounted volume"
    return mounts[target][0], container_path[len(target) :].lstrip("/")


def test_datasource_is_the_compose_prometheus_with_the_dashboards_uid() -> None:
    config = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    (datasource,) = config["datasources"]
    assert datasource["uid"] == DATASOURCE["uid"]
    assert datasource["type"] == DATASOURCE["type"]
    assert datasource["url"] == "http://prometheus:9090"
    # Ray's generated dashboards use the default Prometheus datasource.
    assert datasource["isDefault"] is True
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert "prometheus" in compose["services"]


def test_every_path_the_provisioning_references_exists() -> None:
    mounts = compose_mounts("grafana")
    provisioning_source, below = resolve("/etc/grafana/provisioning", mounts)
    assert (ROOT / provisioning_source / below).resolve() == PROVISIONING.resolve()

    config = yaml.safe_load((PROVISIONING / "dashboards" / "finone.yml").read_text())
    paths = {provider["name"]: provider["options"]["path"] for provider in config["providers"]}
    assert all(provider["type"] == "file" for provider in config["providers"])

    # The platform's dashboards: a folder of this repository, mounted into Grafana.
    source, below = resolve(paths["finone"], mounts)
    assert source.startswith("./"), source
    folder = ROOT / source / below
    assert folder.is_dir() and sorted(folder.glob("*.json")) == DASHBOARDS

    # Ray's generated dashboards: the head's /tmp/ray, shared as a named volume at the same path
    # (session_latest is an absolute symlink) and read-only here.
    session = ray_constants.SESSION_LATEST
    assert paths["ray"] == f"/tmp/ray/{session}/metrics/grafana/dashboards"
    volume, _ = resolve(paths["ray"], mounts)
    assert mounts["/tmp/ray"] == (volume, True)
    assert compose_mounts("ray-head")["/tmp/ray"] == (volume, False)


def test_prometheus_reads_rays_service_discovery_file_from_the_shared_volume() -> None:
    config = yaml.safe_load((ROOT / "dashboards" / "prometheus.yml").read_text())
    files = [
        f for job in config["scrape_configs"] for sd in job["file_sd_configs"] for f in sd["files"]
    ]
    assert files == [f"/tmp/ray/{ray_constants.PROMETHEUS_SERVICE_DISCOVERY_FILE}"]
    mounts = compose_mounts("prometheus")
    source, below = resolve("/etc/prometheus/prometheus.yml", mounts)
    assert (ROOT / source / below).resolve() == (ROOT / "dashboards" / "prometheus.yml").resolve()
    volume, _ = resolve(files[0], mounts)
    assert mounts["/tmp/ray"] == (volume, True)
    assert compose_mounts("ray-head")["/tmp/ray"] == (volume, False)


# -- (d) the checker catches what is wrong -------------------------------------------------------


def test_checker_flags_unknown_and_misnamed_metrics() -> None:
    defined = {
        "finone_feed_messages": "Counter",
        "finone_feed_live": "Gauge",
        "finone_feed_publish_seconds": "Histogram",
    }
    fine = (
        "sum by (venue) (rate(ray_finone_feed_messages_total[5m])) * max(ray_finone_feed_live)"
        " + histogram_quantile(0.99, sum by (le) "
        "(rate(ray_finone_feed_publish_seconds_bucket[5m])))"
        ' + sum(ray_serve_deployment_replica_healthy{application="finone"})'
    )
    assert check_expr(fine, defined) == []

    (unknown,) = check_expr("rate(ray_finone_feed_mesages_total[5m])", defined)
    assert "finone_feed_mesages" in unknown
    # A counter without `_total` and a gauge with it have no samples.
    assert len(check_expr("ray_finone_feed_messages + ray_finone_feed_live_total", defined)) == 2
    assert check_expr("ray_finone_feed_publish_seconds", defined)
    # Neither the platform's nor Ray's.
    assert check_expr("rate(ray_made_up_requests_total[5m])", defined)
    assert check_expr("up", defined) == [] and metric_tokens("up") == set()


def test_metric_definitions_are_found_without_importing(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text(
        "import collections\n"
        "from ray.util import metrics\n"
        "from ray.util.metrics import Counter, Histogram\n"
        "a = Counter('finone_a', 'A', ('venue',))\n"
        "b = metrics.Gauge('finone_b')\n"
        "c = Histogram(name='finone_c', boundaries=[1.0])\n"
        "d = collections.Counter()\n"
        "NAME = 'finone_e'\n"
        "e = Counter(NAME)\n"
        "raise SystemExit('never imported')\n"
    )
    assert defined_metrics([tmp_path]) == {
        "finone_a": "Counter",
        "finone_b": "Gauge",
        "finone_c": "Histogram",
    }
