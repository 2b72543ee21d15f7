"""`fairshare bench intake` against the whole running system: it prints the promised
JSON and what it posted is really stored. Its speed is checked by running it, not here."""

from __future__ import annotations

import json

import pytest

from tests.e2e.system import DevSystem

pytestmark = pytest.mark.e2e

RATE, SECONDS, BATCHES, BATCH_SIZE, ORGS = 20, 2, 2, 50, 4


def test_bench_intake_reports_every_figure_and_stores_every_session(system: DevSystem) -> None:
    out = system.cli(
        "bench",
        "intake",
        "--json",
        "--single-rate",
        str(RATE),
        "--single-seconds",
        str(SECONDS),
        "--batches",
        str(BATCHES),
        "--batch-size",
        str(BATCH_SIZE),
        "--orgs",
        str(ORGS),
    )
    result = json.loads(out)

    assert set(result) >= {"single", "batch", "targets", "met", "setup"}
    figures = {"sessions_per_s", "p50_ms", "p99_ms", "errors", "requests"}
    assert figures | {"target_rate"} <= set(result["single"])
    assert figures | {"batch_size"} <= set(result["batch"])
    assert set(result["met"]) == {"single", "batch"}
    assert result["setup"]["url"] == system.url("vacancies")

    single, batch = result["single"], result["batch"]
    assert single["errors"] == 0, single
    assert single["requests"] == RATE * SECONDS
    assert single["target_rate"] == RATE
    assert single["sessions_per_s"] > 0
    assert 0 < single["p50_ms"] <= single["p99_ms"]
    assert batch["errors"] == 0, batch
    assert batch["rejected_sessions"] == 0
    assert batch["requests"] == BATCHES
    assert batch["batch_size"] == BATCH_SIZE
    assert batch["sessions_per_s"] > 0
    assert 0 < batch["p50_ms"] <= batch["p99_ms"]
    # At 20 posts/s the single-post target is not exercised, so it is never "met".
    assert result["met"]["single"] is False

    organisations = result["setup"]["organisations"]
    assert len(organisations) == ORGS
    stored = {
        ods: json.loads(system.cli("sessions", "list", "--json", "--ods", ods))
        for ods in organisations
    }
    warm_up = ORGS  # one unmeasured post per organisation, before timing
    total = sum(len(rows) for rows in stored.values())
    assert total == warm_up + RATE * SECONDS + BATCHES * BATCH_SIZE
    for ods, rows in stored.items():
        assert rows, f"nothing stored for {ods}"
        assert all(r["organisation"] == ods and r["status"] == "open" for r in rows)
    external_ids = [r["external_id"] for rows in stored.values() for r in rows]
    assert len(set(external_ids)) == len(external_ids)
