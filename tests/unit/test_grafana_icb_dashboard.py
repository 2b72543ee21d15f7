"""The ICB's Grafana dashboard (deploy/grafana/dashboards/fairshare-icb.json) shows the
monitor page's figures: its region is chosen by name from shared/regions.py, its
labels are the page's, and its queries, run by Prometheus's own rule tester on
series like the services export, give the numbers the page's formulas give."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from services.monitor.domain import COUNTED, SECTOR_LABELS, fill_rate
from shared.regions import ICB_CHOICES, ICBS

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "fairshare-icb.json"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"


def _dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def _panel(title: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [p for p in _dashboard()["panels"] if p["title"] == title]
    assert len(found) == 1, title
    return found[0]


def _expr(title: str, ref: str = "A") -> str:
    exprs = [str(t["expr"]) for t in _panel(title)["targets"] if t["refId"] == ref]
    assert len(exprs) == 1, (title, ref)
    return exprs[0]


def _custom_options(query: str) -> list[tuple[str, str]]:
    """A custom variable's options as Grafana reads them (its CustomVariable): split on
    commas not escaped as ``\\,``, then ``label : value`` where there is one."""
    options = []
    for raw in re.findall(r"(?:\\,|[^,])+", query):
        text = raw.replace("\\,", ",")
        pair = re.match(r"^\s*(.+)\s:\s(.+)$", text)
        if pair:
            options.append((pair.group(1).strip(), pair.group(2).strip()))
        else:
            options.append((text.strip(), text.strip()))
    return options


def _mappings(panel: dict[str, Any], field: str) -> dict[str, str]:
    """The value mappings a panel's override gives the column ``field``."""
    for override in panel["fieldConfig"]["overrides"]:
        if override["matcher"] == {"id": "byName", "options": field}:
            for prop in override["properties"]:
                if prop["id"] == "mappings":
                    return {
                        key: option["text"]
                        for mapping in prop["value"]
                        for key, option in mapping["options"].items()
                    }
    return {}


def test_the_region_is_chosen_by_name_and_any_code_still_works() -> None:
    variables = {v["name"]: v for v in _dashboard()["templating"]["list"]}
    region = variables["region"]
    assert region["type"] == "custom"
    assert _custom_options(region["query"]) == [(b.name, b.code) for b in ICB_CHOICES]
    # "All" means every region there is, listed or not; a code not listed is typed.
    assert (region["includeAll"], region["allValue"], region["allowCustomValue"]) == (
        True,
        ".*",
        True,
    )
    for panel in _dashboard()["panels"]:
        for target in panel["targets"]:
            assert 'region=~"$region"' in target["expr"], (panel["title"], target["expr"])


def test_tables_name_regions_sectors_and_alerts_as_the_page_does() -> None:
    alerts = _panel("Alerts firing")
    assert _mappings(alerts, "region") == {b.code: f"{b.name} ({b.code})" for b in ICBS.values()}
    assert _mappings(alerts, "sector") == {str(k): v for k, v in SECTOR_LABELS.items()}
    for title in ("By sector, all time", "In the chosen period, by sector"):
        assert _mappings(_panel(title), "sector") == {str(k): v for k, v in SECTOR_LABELS.items()}


def test_figures_and_alerts_named_are_ones_that_exist() -> None:
    """A figure renamed in the monitor, or an alert renamed in alerts.yml, would leave a
    panel silently empty."""
    exprs = [t["expr"] for p in _dashboard()["panels"] for t in p["targets"]]
    figures = {
        f for e in exprs for group in re.findall(r'figure=~?"([^"]+)"', e) for f in group.split("|")
    }
    assert figures
    assert figures <= set(COUNTED), sorted(figures - set(COUNTED))
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    business = {r["alert"] for g in groups if g["name"] == "fairshare-business" for r in g["rules"]}
    named = re.search(r'alertname=~"([^"]+)"', _expr("Alerts firing"))
    assert named
    shown = set(named[1].split("|"))
    assert shown == business
    assert set(_mappings(_panel("Alerts firing"), "alertname")) == business


FIGURES_SHOWN = ("posted", "filled", "cancelled", "late_cancelled", "late_given_up")
# (region, sector): the figures above at two hours. QE1's optometry counted a fill
# before its post (the streams race), which the page caps at 100%.
FIGURES = {
    ("QOP", "general_practice"): (10, 6, 2, 1, 2),
    ("QOP", "community_pharmacy"): (4, 0, 4, 0, 0),
    ("QOP", "dentistry"): (3, 0, 0, 0, 0),
    ("QE1", "general_practice"): (8, 8, 0, 0, 1),
    ("QE1", "optometry"): (2, 3, 0, 0, 0),
}


def _values(region: str, sector: str, figure: str, value: int) -> str:
    """A series over two hours, in promtool's notation. For the period table: QOP's
    general practice posted 8 in the first hour and 2 more in the second; its dentistry
    was first counted (every figure, as the monitor exports a row) in the second hour."""
    if (region, sector) == ("QOP", "dentistry"):
        return f"_x80 {value}+0x50"
    if (region, sector, figure) == ("QOP", "general_practice", "posted"):
        return "8+0x60 10+0x70"
    return f"{value}+0x130"


DRAINS = {("QOP", "dentistry"): 1.25, ("QOP", "optometry"): 0.5, ("QE1", "general_practice"): 1.5}


def _case(region: str) -> list[dict[str, Any]]:
    """Expected samples of the headline and by-sector queries, for ``$region``."""
    rows = {k: v for k, v in FIGURES.items() if re.fullmatch(region, k[0])}
    total = [sum(v[i] for v in rows.values()) for i in range(5)]
    whole = fill_rate(total[0], total[1], total[2])
    by_sector: dict[str, list[int]] = {}
    for (_, sector), v in rows.items():
        acc = by_sector.setdefault(sector, [0] * 5)
        for i in range(5):
            acc[i] += v[i]
    past = sum(share > 1 for (r, _), share in DRAINS.items() if re.fullmatch(region, r))
    # A region with nothing counted shows no data rather than a zero that could as well
    # mean the monitor is down; a sector's drain share exists only once it has moves,
    # so "no sector past its cap" is a zero.
    counted = bool(rows)
    cases: list[tuple[str, str, list[tuple[str, float]]]] = [
        ("Sessions posted", "A", [("{}", total[0])] if counted else []),
        ("Late cancellations", "A", [("{}", total[3] + total[4])] if counted else []),
        ("Sectors past their cap", "A", [("{}", past)]),
        ("Fill rate", "A", [("{}", whole)] if whole is not None else []),
        (
            "By sector, all time",
            "H",
            [
                (f'{{sector="{s}"}}', rate)
                for s, v in by_sector.items()
                if (rate := fill_rate(v[0], v[1], v[2])) is not None
            ],
        ),
    ]
    return [
        {
            "expr": _expr(title, ref).replace("$region", region),
            "eval_time": "2h",
            "exp_samples": [{"labels": labels, "value": value} for labels, value in samples],
        }
        for title, ref, samples in cases
    ]


def test_queries_give_the_figures_the_page_gives(tmp_path: Path) -> None:
    """Run by `promtool test rules` on series shaped as the monitor and matching export
    them: headline figures, fill rate (the page's fill_rate, capped at 100%), sectors
    past their cap, for one ICB, for all, and for one with no data."""
    series = [
        {
            "series": f'fairshare_sessions{{region="{r}", sector="{s}", figure="{figure}"}}',
            "values": _values(r, s, figure, value),
        }
        for (r, s), values in FIGURES.items()
        for figure, value in zip(FIGURES_SHOWN, values, strict=True)
    ]
    series += [
        {
            "series": f'fairshare_sector_drain_share{{region="{r}", sector="{s}"}}',
            "values": f"{share}+0x130",
        }
        for (r, s), share in DRAINS.items()
    ]
    period = (
        _expr("In the chosen period, by sector", "A")
        .replace("$region", "QOP")
        .replace("$__range", "1h")
    )
    tests = [
        {
            "interval": "1m",
            "input_series": series,
            "promql_expr_test": [
                *_case("QOP"),
                *_case(".*"),
                *_case("ZZZ"),
                {
                    "expr": period,
                    "eval_time": "2h",
                    "exp_samples": [
                        {"labels": '{sector="general_practice"}', "value": 2},
                        {"labels": '{sector="community_pharmacy"}', "value": 0},
                        {"labels": '{sector="dentistry"}', "value": 3},
                    ],
                },
            ],
        }
    ]
    (tmp_path / "panels_test.yml").write_text(yaml.safe_dump({"rule_files": [], "tests": tests}))
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: `make` installs Debian's prometheus package"
    done = subprocess.run(
        [promtool, "test", "rules", "panels_test.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
