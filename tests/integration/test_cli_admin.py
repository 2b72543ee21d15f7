"""The administration commands, run as a person would, against the real database."""

from __future__ import annotations

import json
import random

import pytest
from typer.testing import CliRunner

from fairshare.cli import app
from services.vacancies.secret_box import KEYS_SETTING
from tests.conftest import Infra
from tests.integration.vacancies_support import TEST_SECRET_KEYS

pytestmark = pytest.mark.integration


def test_organisation_administration_round_trip(infra: Infra, region: str) -> None:
    """Add (secret and key printed), set a callback, rotate, deactivate, list: each says
    what it did, and mistakes get a clear message and a non-zero exit."""
    runner = CliRunner()
    env = {"FAIRSHARE_DATABASE_URL": infra.dsn, KEYS_SETTING: TEST_SECRET_KEYS}

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, list(args), env=env)
        assert result.exit_code == code, result.output
        return result.output

    def invite_pharmacist(number: str, code: int = 0) -> str:
        return run(
            "clinician",
            "invite",
            "--name",
            "Ann",
            "--profession",
            "pharmacist",
            "--home-sector",
            "community_pharmacy",
            "--region",
            region,
            "--register",
            "GPhC",
            "--register-number",
            number,
            code=code,
        )

    run("migrate")
    ods = "F" + "".join(random.choices("ABCDEFGHJK", k=4))
    added = run(
        "org",
        "add",
        "--ods",
        ods,
        "--name",
        "Corner Pharmacy",
        "--sector",
        "community_pharmacy",
        "--region",
        region,
        "--lat",
        "53.47",
        "--lon",
        "-2.29",
    )
    assert "webhook secret: whsec_" in added
    assert "API key: fsk_" in added
    assert "already registered" in run(
        "org",
        "add",
        "--ods",
        ods,
        "--name",
        "Again",
        "--sector",
        "community_pharmacy",
        "--region",
        region,
        "--lat",
        "53.47",
        "--lon",
        "-2.29",
        code=1,
    )
    assert "must start with https://" in run("org", "set-callback", ods, "ftp://x", code=1)
    assert "callbacks go to" in run("org", "set-callback", ods, "https://rota.example/hooks")
    rotated = run("org", "rotate-secret", ods, "--grace-hours", "2")
    assert "webhook secret: whsec_" in rotated
    assert "2 more hours" in rotated
    assert "API key: fsk_" in run("org", "rotate-key", ods)
    assert "deactivated" in run("org", "deactivate", ods)
    assert "not registered" in run("org", "deactivate", "Z00000", code=1)
    assert json.loads(run("callbacks", "list", "--ods", ods, "--json")) == []
    assert "no callback with id" in run("callbacks", "replay", "999999999", code=1)
    assert json.loads(run("sessions", "list", "--ods", ods, "--json")) == []
    assert "is not a skill" in run(
        "clinician",
        "add",
        "--name",
        "Olu",
        "--profession",
        "optometrist",
        "--home-sector",
        "optometry",
        "--region",
        region,
        "--skill",
        "cervical_screening",
        code=1,
    )
    assert "7 digits starting with 2" in invite_pharmacist("999", code=1)
    assert "invite code: " in invite_pharmacist("2012345")
    assert "not valid" in run(
        "org",
        "add",
        "--ods",
        "bad",
        "--name",
        "X",
        "--sector",
        "dentistry",
        "--region",
        region,
        "--lat",
        "1",
        "--lon",
        "1",
        code=2,
    )
