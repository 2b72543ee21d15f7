"""One PostgreSQL role per service: it owns its schema and reaches nothing else; the
admin commands act as the service they administer; a database from before the roles
is handed over to them; ``fairshare dev``'s passwords stay private and are required.

Each test has a database of its own in the session's server (roles are the server's,
so they are dropped after each test)."""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import signal
import string
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import psutil
import pytest
import yaml
from typer.testing import CliRunner

from fairshare.cli import app as cli
from fairshare.db_cli import password_variable
from fairshare.infra import PASSWORDS_FILE, dev_passwords, write_private
from fairshare.services import (
    LOGINS,
    SERVICES,
    bootstrap_roles,
    migrate_all,
    migrations_of,
    role_of,
    schema_of,
)
from shared.db.roles import ADMIN_ROLE, act_as_schema_owner, check_password, with_login
from shared.db.types import Conn
from shared.runtime import migrate
from shared.settings import ServiceSettings
from tests.conftest import Infra
from tests.e2e.system import ports_below_ephemeral
from tests.integration.helpers import settings_for

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Database:
    """A database of the test's own: its superuser URL and the roles' passwords."""

    url: str
    name: str
    passwords: Mapping[str, str]

    def as_login(self, login: str, password: str | None = None) -> str:
        """This database's URL as ``login``'s role (with its password unless given)."""
        return with_login(self.url, role_of(login), password or self.passwords[login])


def _other_database(dsn: str, name: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{name}"))


async def _execute(dsn: str, *statements: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture
def database(infra: Infra) -> Iterator[Database]:
    """A fresh database, as a PostgreSQL 14 one was: anyone could create in ``public``."""
    name = "roles_" + "".join(random.choices(string.ascii_lowercase, k=8))
    url = _other_database(infra.dsn, name)
    asyncio.run(_execute(infra.dsn, f"CREATE DATABASE {name}"))
    asyncio.run(_execute(url, "GRANT CREATE ON SCHEMA public TO PUBLIC"))
    passwords = {login: uuid.uuid4().hex for login in LOGINS}
    try:
        yield Database(url=url, name=name, passwords=passwords)
    finally:
        roles = ", ".join(role_of(login) for login in LOGINS)
        asyncio.run(
            _execute(
                infra.dsn, f"DROP DATABASE {name} WITH (FORCE)", f"DROP ROLE IF EXISTS {roles}"
            )
        )


async def _fetchval(dsn: str, query: str) -> object:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(query)
    finally:
        await conn.close()


async def _foreign_owners(db: Database) -> list[str]:
    """Every object in a service's schema that its role does not own (and the schema)."""
    conn = await asyncpg.connect(db.url)
    try:
        rows = await conn.fetch(
            "SELECT n.nspname AS schema, x.what, x.owner::regrole::text AS owner"
            " FROM pg_namespace n CROSS JOIN LATERAL ("
            "  SELECT n.nspname, n.nspowner UNION ALL"
            "  SELECT c.relname, c.relowner FROM pg_class c WHERE c.relnamespace = n.oid"
            "  UNION ALL SELECT p.proname, p.proowner FROM pg_proc p WHERE p.pronamespace = n.oid"
            "  UNION ALL SELECT t.typname, t.typowner FROM pg_type t WHERE t.typnamespace = n.oid"
            " ) AS x(what, owner) WHERE n.nspname = ANY($1::text[])",
            [schema_of(service) for service in SERVICES],
        )
    finally:
        await conn.close()
    owners = {schema_of(service): role_of(service) for service in SERVICES}
    return [
        f"{r['schema']}.{r['what']}: {r['owner']}"
        for r in rows
        if r["owner"] != owners[r["schema"]]
    ]


def test_db_bootstrap_hands_a_database_from_before_the_roles_over_to_them(
    infra: Infra, database: Database
) -> None:
    """The upgrade as compose runs it: schemas the superuser migrated (as every start did
    before the roles) are handed over by `fairshare db bootstrap`, everything in them;
    each service then migrates as its own role, as at its start. The command names what
    is missing or unfit, never printing a password, and a second run changes nothing."""
    assert asyncio.run(migrate_all(database.url))  # the superuser owns everything
    assert asyncio.run(_foreign_owners(database))
    env = {password_variable(login): database.passwords[login] for login in LOGINS}
    runner = CliRunner()

    result = runner.invoke(cli, ["db", "bootstrap"], env={**env, "FAIRSHARE_DATABASE_URL": ""})
    assert result.exit_code == 2
    assert "FAIRSHARE_DATABASE_URL" in result.output
    env["FAIRSHARE_DATABASE_URL"] = database.url
    result = runner.invoke(cli, ["db", "bootstrap"], env={**env, password_variable("bank"): ""})
    assert result.exit_code == 2
    assert password_variable("bank") in result.output
    weak = {**env, password_variable("bank"): "short:pass/word"}
    result = runner.invoke(cli, ["db", "bootstrap"], env=weak)
    assert result.exit_code == 2
    assert "bank database password" in result.output
    assert "pass/word" not in result.output

    result = runner.invoke(cli, ["db", "bootstrap"], env=env)
    assert result.exit_code == 0, result.output
    assert "handed over" in result.output
    assert asyncio.run(_foreign_owners(database)) == []
    for service in SERVICES:
        at = Infra(dsn=database.as_login(service), bootstrap=infra.bootstrap)
        settings = settings_for(ServiceSettings, at, "")
        done = asyncio.run(
            migrate(settings, schema=schema_of(service), migrations_dir=migrations_of(service))
        )
        assert done == [], service
    again = asyncio.run(bootstrap_roles(database.url, database.passwords)).done
    assert (again.created, sum(again.handed_over.values())) == ((), 0)


async def _refused(dsn: str, statements: list[str]) -> list[str]:
    """Those of ``statements`` that were NOT refused for want of privilege."""
    conn = await asyncpg.connect(dsn)
    allowed = []
    try:
        for statement in statements:
            try:
                await conn.execute(statement)
            except asyncpg.InsufficientPrivilegeError:
                continue
            except asyncpg.PostgresError as exc:  # let in, then stopped by something else
                allowed.append(f"{statement} ({type(exc).__name__})")
                continue
            allowed.append(statement)
    finally:
        await conn.close()
    return allowed


async def test_a_service_role_reaches_nothing_outside_its_own_schema(database: Database) -> None:
    """As `fairshare dev` makes them (roles first, then the superuser migrates each schema
    as its role): each role works in its schema, and is refused reading or writing any
    table of another's, creating anything there, in `public` or a schema of its own
    making, and becoming another role; it can create no role or database."""
    roles = await bootstrap_roles(database.url, database.passwords)
    await migrate_all(database.url)
    assert await _foreign_owners(database) == []
    conn = await asyncpg.connect(database.url)
    tables = {
        service: [
            r["name"]
            for r in await conn.fetch(
                "SELECT c.oid::regclass::text AS name FROM pg_class c"
                " WHERE c.relnamespace = $1::text::regnamespace AND c.relkind IN ('r', 'v')",
                schema_of(service),
            )
        ]
        for service in SERVICES
    }
    await conn.close()
    for service in SERVICES:
        own = schema_of(service)
        assert tables[service]
        conn = await asyncpg.connect(roles.urls[service])
        try:
            work = conn.transaction()
            await work.start()
            for table in tables[service]:
                await conn.fetch(f"SELECT * FROM {table} LIMIT 1")
            await conn.execute(f"CREATE TABLE {own}.probe (x int)")
            await conn.execute(f"INSERT INTO {own}.schema_migrations (name) VALUES ('p')")
            await work.rollback()
            attrs = await conn.fetchrow(
                "SELECT rolsuper, rolcreaterole, rolcreatedb, rolbypassrls"
                " FROM pg_roles WHERE rolname = current_user"
            )
            assert attrs is not None
            assert not any(attrs.values())
        finally:
            await conn.close()
        probes = ["CREATE TABLE public.intruder (x int)", "CREATE SCHEMA intruder"]
        probes += ["CREATE ROLE intruder", f"CREATE DATABASE intruder_{service}"]
        for other in SERVICES:
            if other == service:
                continue
            theirs = schema_of(other)
            probes += [f"SELECT * FROM {table} LIMIT 1" for table in tables[other]]
            probes += [
                f"INSERT INTO {theirs}.schema_migrations (name) VALUES ('x')",
                f"UPDATE {theirs}.schema_migrations SET name = name",
                f"DELETE FROM {theirs}.schema_migrations",
                f"CREATE TABLE {theirs}.intruder (x int)",
                f"CREATE VIEW {theirs}.intruder AS SELECT 1",
                f"SET ROLE {role_of(other)}",
            ]
        assert await _refused(roles.urls[service], probes) == [], service


def test_the_admin_commands_act_as_the_service_they_administer(
    database: Database, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The admin role is no superuser and can create nothing of its own; each admin
    command's transaction acts as the one service it administers (so it cannot reach
    another's schema, and what it makes is the service's); outside one it reads every
    schema, so `fairshare check` works, and `fairshare migrate` migrates each schema as
    its owner."""
    # Not at the top: admin_cli is imported through fairshare.cli, never first.
    from fairshare.admin_cli import run_in_schema  # noqa: PLC0415

    roles = asyncio.run(bootstrap_roles(database.url, database.passwords))
    asyncio.run(migrate_all(database.url))
    admin = roles.urls["admin"]
    monkeypatch.setenv("FAIRSHARE_DATABASE_URL", admin)

    async def inside(conn: Conn) -> tuple[str, str]:
        await conn.execute("CREATE TABLE made_by_admin (x int)")
        owner = await conn.fetchval(
            "SELECT relowner::regrole::text FROM pg_class"
            " WHERE oid = 'vacancies.made_by_admin'::regclass"
        )
        try:
            async with conn.transaction():
                await conn.fetch("SELECT * FROM bank.schema_migrations")
        except asyncpg.InsufficientPrivilegeError:
            return await conn.fetchval("SELECT current_user"), owner
        return "reached bank", owner

    acting, owner = run_in_schema(tmp_path, "vacancies", inside)
    assert (acting, owner) == (role_of("vacancies"), role_of("vacancies"))

    runner = CliRunner()
    invited = runner.invoke(cli, ["icb", "invite", "--national", "--name", "Roles test"])
    assert invited.exit_code == 0, invited.output
    assert "invite code:" in invited.output
    migrated = runner.invoke(cli, ["migrate"])  # each schema as its role: nothing to do
    assert migrated.exit_code == 0, migrated.output
    assert "up to date" in migrated.output
    checked = runner.invoke(cli, ["check", "--wait", "0"])
    assert (checked.exit_code, checked.output.splitlines()[0]) == (0, "consistent"), checked.output

    async def as_admin() -> list[str]:
        conn = await asyncpg.connect(admin)
        try:
            assert not await conn.fetchval(
                "SELECT rolsuper OR rolcreaterole OR rolcreatedb FROM pg_roles"
                " WHERE rolname = current_user"
            )
            async with conn.transaction():
                assert await act_as_schema_owner(conn, "bank", local=True) == role_of("bank")
            assert await conn.fetchval("SELECT current_user") == ADMIN_ROLE
        finally:
            await conn.close()
        return await _refused(
            admin,
            ["CREATE TABLE public.intruder (x int)", "CREATE SCHEMA intruder", "CREATE ROLE x"],
        )

    assert asyncio.run(as_admin()) == []


def test_dev_passwords_are_private_kept_and_required(database: Database, tmp_path: Path) -> None:
    """`fairshare dev` makes one password per login on a data directory's first start,
    readable by its owner only, and keeps them; the server refuses a role that gives a
    wrong one (as production does), whereas the superuser keeps its socket login."""
    first = dev_passwords(tmp_path, LOGINS)
    path = tmp_path / PASSWORDS_FILE
    assert path.stat().st_mode & 0o777 == 0o600
    assert set(first) == set(LOGINS)
    assert all(check_password(login, p) for login, p in first.items())
    path.chmod(0o644)
    assert dev_passwords(tmp_path, LOGINS) == first
    assert path.stat().st_mode & 0o777 == 0o600
    runtime = tmp_path / "runtime.json"
    runtime.write_text("{}")
    runtime.chmod(0o644)
    write_private(runtime, '{"database_url": "..."}')
    assert runtime.stat().st_mode & 0o777 == 0o600

    db = Database(url=database.url, name=database.name, passwords=first)
    asyncio.run(bootstrap_roles(db.url, first))

    async def logins() -> None:
        conn = await asyncpg.connect(db.as_login("bank"))
        await conn.close()
        with pytest.raises(asyncpg.InvalidPasswordError):
            await asyncpg.connect(db.as_login("bank", password="not-" + first["bank"]))
        with pytest.raises(asyncpg.InvalidPasswordError):
            await asyncpg.connect(
                urlunsplit(urlsplit(db.as_login("bank"))._replace(netloc="fairshare_bank@"))
            )

    asyncio.run(logins())


def test_fairshare_dev_runs_each_service_as_its_role_and_the_commands_as_admin(
    infra: Infra, database: Database, tmp_path: Path
) -> None:
    """`fairshare dev` (here on the session's server, named in the environment as its
    superuser, with schemas from before the roles) hands the schemas over and starts
    each service as its own role, never the superuser, to be healthy; it leaves the
    admin role's URL, for the commands, in a runtime.json only its owner can read."""
    asyncio.run(migrate_all(database.url))  # a database from before the roles
    data = tmp_path / "data"
    log = tmp_path / "dev.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAIRSHARE_")}
    env |= {"FAIRSHARE_DATABASE_URL": database.url, "FAIRSHARE_KAFKA_BOOTSTRAP": infra.bootstrap}
    argv = [sys.executable, "-m", "fairshare", "dev", "--data-dir", str(data)]
    argv += ["--base-port", str(ports_below_ephemeral(len(SERVICES)))]
    with log.open("wb") as out:
        dev = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 60
        while "Fairshare is up" not in log.read_text(errors="replace"):
            assert dev.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.1)
        urls = {
            child.cmdline()[-1]: child.environ()["FAIRSHARE_DATABASE_URL"]
            for child in psutil.Process(dev.pid).children()
            if "serve" in child.cmdline()
        }
        assert {s: urlsplit(url).username for s, url in urls.items()} == {
            service: role_of(service) for service in SERVICES
        }
        for name in ("runtime.json", PASSWORDS_FILE):
            assert (data / name).stat().st_mode & 0o777 == 0o600, name
        admin = json.loads((data / "runtime.json").read_text())["database_url"]
        assert urlsplit(admin).username == ADMIN_ROLE
        assert asyncio.run(_fetchval(admin, "SELECT current_user")) == ADMIN_ROLE
        assert asyncio.run(_foreign_owners(database)) == []
    finally:
        dev.send_signal(signal.SIGINT)
        assert dev.wait(30) == 0


def test_compose_gives_each_service_its_own_role_and_the_owner_to_no_service() -> None:
    """In docker-compose.yml each service connects as its own role; only PostgreSQL and
    the one-shot bootstrap see the owner's password, the services start after it, and
    .env.example names every password."""
    # ${NAME:?message} becomes <NAME>, as compose would put NAME's value there.
    text = re.sub(r"\$\{(\w+)[^}]*\}", r"<\1>", (ROOT / "docker-compose.yml").read_text())
    compose = yaml.safe_load(text)["services"]
    for service in SERVICES:
        env = compose[service]["environment"]
        url = urlsplit(env["FAIRSHARE_DATABASE_URL"])
        assert (url.username, url.password) == (
            role_of(service),
            f"<{password_variable(service)}>",
        )
        assert "POSTGRES_PASSWORD" not in str(env)
        assert compose[service]["depends_on"]["db-roles"] == {
            "condition": "service_completed_successfully"
        }
    roles = compose["db-roles"]
    assert roles["command"] == ["db", "bootstrap"]
    assert roles.get("restart") == "no"
    for login in LOGINS:
        assert password_variable(login) in roles["environment"]
    admin = urlsplit(compose["admin"]["environment"]["FAIRSHARE_DATABASE_URL"])
    assert (admin.username, admin.password) == (ADMIN_ROLE, f"<{password_variable('admin')}>")
    seen = [n for n, s in compose.items() if "POSTGRES_PASSWORD" in str(s.get("environment"))]
    assert sorted(seen) == ["db-roles", "postgres"]
    example = (ROOT / ".env.example").read_text()
    for login in LOGINS:
        assert f"{password_variable(login)}=" in example
