"""One PostgreSQL role per service, owning its schema and nothing else.

``fairshare_<schema>`` owns the schema and every object in it; it may not create
schemas, roles or databases, has no privilege on another service's schema, and may
not create anything in ``public``. ``fairshare_admin``, the administrators' role, is a
member of every service role (the admin commands and ``fairshare check`` read and
write through those), and each admin transaction acts as the one service it
administers (:func:`act_as_schema_owner`).

The roles are made by :func:`bootstrap`, run by the database's owner before any
service starts, not by a migration: migrations run as the service's own role, which
must not be able to create roles, hand tables over or install extensions, and the
bootstrap needs exactly those powers. It is idempotent and runs at every start, so a
database from before the roles (tables made by the superuser) is handed over to them
on its first start after the upgrade.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

from shared.db.pool import check_schema
from shared.db.types import Conn

ROLE_PREFIX = "fairshare_"
ADMIN_ROLE = "fairshare_admin"
# Passwords go into URLs (compose's FAIRSHARE_DATABASE_URL): only characters a URL
# carries as they are, so the URL and the role can never disagree.
_URL_SAFE = r"^[A-Za-z0-9._~-]{16,}$"
SCRAM_ITERATIONS = 4096  # PostgreSQL's own default (scram_iterations)
_LOCK = zlib.crc32(b"fairshare-roles")
# $1 the schema, $2 its role, in the catalogue queries below.
_NAMESPACE = "(SELECT oid FROM pg_namespace WHERE nspname = $1)"
_ROLE = "(SELECT oid FROM pg_roles WHERE rolname = $2)"

# Relations handed over with their own ALTER; indexes, TOAST tables and a column's
# sequence follow their table.
_RELATION_KINDS = {
    "r": "TABLE",
    "p": "TABLE",
    "f": "FOREIGN TABLE",
    "v": "VIEW",
    "m": "MATERIALIZED VIEW",
    "S": "SEQUENCE",
}


def role_of(schema: str) -> str:
    """The role that owns ``schema``."""
    return ROLE_PREFIX + check_schema(schema)


def check_password(login: str, password: str) -> str:
    """``password`` if it is long enough and URL-safe; otherwise say which login's is not."""
    if not re.match(_URL_SAFE, password):
        msg = (
            f"the {login} database password must be at least 16 characters of letters,"
            " digits and . _ ~ - (it goes into a URL)"
        )
        raise ValueError(msg)
    return password


def scram_verifier(password: str, *, salt: bytes | None = None) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for ``password`` (RFC 5802/7677).

    Sent instead of the password, so the password itself never appears in a statement
    (which the server may log). ``check_password`` keeps to ASCII, where SASLprep
    changes nothing.
    """
    salt = salt or os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, SCRAM_ITERATIONS)
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.digest(salted, b"Server Key", "sha256")

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    return f"SCRAM-SHA-256${SCRAM_ITERATIONS}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def with_login(dsn: str, user: str, password: str) -> str:
    """``dsn`` with its user and password replaced (host, database and options kept)."""
    parts = urlsplit(dsn)
    host = parts.netloc.rpartition("@")[2]
    login = f"{quote(user, safe='')}:{quote(password, safe='')}"
    return urlunsplit(parts._replace(netloc=f"{login}@{host}"))


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class Bootstrapped:
    """What :func:`bootstrap` did: roles it created, and objects it handed over."""

    created: tuple[str, ...]
    handed_over: Mapping[str, int]


async def bootstrap(
    conn: Conn, *, schemas: Sequence[str], passwords: Mapping[str, str]
) -> Bootstrapped:
    """Make (or bring up to date) each schema's role and the admin role, as the owner.

    ``passwords`` maps each role (``role_of(schema)`` and ``ADMIN_ROLE``) to its
    password, set afresh each time (so changing it is running this again). Each schema
    is created if missing and it, and everything in it, is made its role's. One
    transaction, serialised with any other bootstrap.
    """
    roles = [role_of(schema) for schema in schemas]
    missing = [role for role in (*roles, ADMIN_ROLE) if role not in passwords]
    if missing:
        msg = f"no password for {', '.join(missing)}"
        raise ValueError(msg)
    for role in (*roles, ADMIN_ROLE):
        check_password(role, passwords[role])
    created: list[str] = []
    handed: dict[str, int] = {}
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
        # Services use btree_gist but may not install extensions.
        await conn.execute("CREATE EXTENSION IF NOT EXISTS btree_gist WITH SCHEMA public")
        # PostgreSQL 15 and later grant this to no one; databases older than that did.
        await conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        database = _ident(await conn.fetchval("SELECT current_database()"))
        for role in (*roles, ADMIN_ROLE):
            if not await conn.fetchval("SELECT true FROM pg_roles WHERE rolname = $1", role):
                await conn.execute(f"CREATE ROLE {_ident(role)}")
                created.append(role)
            inherit = "INHERIT" if role == ADMIN_ROLE else "NOINHERIT"
            await conn.execute(
                f"ALTER ROLE {_ident(role)} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE"
                f" NOREPLICATION NOBYPASSRLS {inherit}"
                f" PASSWORD '{scram_verifier(passwords[role])}'"
            )
            await conn.execute(f"GRANT CONNECT ON DATABASE {database} TO {_ident(role)}")
        for schema, role in zip(schemas, roles, strict=True):
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema} AUTHORIZATION {role}")
            await conn.execute(f"ALTER SCHEMA {schema} OWNER TO {role}")
            handed[schema] = await _hand_over(conn, schema, role)
            await conn.execute(f"GRANT {role} TO {ADMIN_ROLE}")
    return Bootstrapped(created=tuple(created), handed_over=handed)


async def _hand_over(conn: Conn, schema: str, role: str) -> int:
    """Make every object in ``schema`` that someone else owns ``role``'s; how many."""
    statements = [
        f"ALTER {_RELATION_KINDS[r['relkind']]} {r['name']} OWNER TO {role}"
        for r in await conn.fetch(
            "SELECT c.oid::regclass::text AS name, c.relkind::text FROM pg_class c"
            f" WHERE c.relnamespace = {_NAMESPACE} AND c.relowner <> {_ROLE}"
            f" AND c.relkind IN ({', '.join(repr(kind) for kind in _RELATION_KINDS)})"
            # a serial or identity column's sequence goes with its table
            " AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass"
            "  AND d.objid = c.oid AND d.refclassid = 'pg_class'::regclass"
            "  AND d.deptype IN ('a', 'i'))",
            schema,
            role,
        )
    ]
    statements += [
        f"ALTER ROUTINE {r['name']} OWNER TO {role}"
        for r in await conn.fetch(
            "SELECT p.oid::regprocedure::text AS name FROM pg_proc p"
            f" WHERE p.pronamespace = {_NAMESPACE} AND p.proowner <> {_ROLE}",
            schema,
            role,
        )
    ]
    # Enums, domains, ranges and free-standing composite types (a table's row type and
    # arrays go with what they belong to).
    statements += [
        f"ALTER {'DOMAIN' if r['typtype'] == 'd' else 'TYPE'} {r['name']} OWNER TO {role}"
        for r in await conn.fetch(
            "SELECT t.oid::regtype::text AS name, t.typtype::text FROM pg_type t"
            " LEFT JOIN pg_class c ON c.oid = t.typrelid"
            f" WHERE t.typnamespace = {_NAMESPACE} AND t.typowner <> {_ROLE}"
            " AND t.typtype IN ('e', 'd', 'r', 'c') AND (c.oid IS NULL OR c.relkind = 'c')",
            schema,
            role,
        )
    ]
    for statement in statements:
        await conn.execute(statement)
    return len(statements)


async def act_as_schema_owner(conn: Conn, schema: str, *, local: bool) -> str | None:
    """Act as ``schema``'s owner on ``conn`` (for the transaction if ``local``), so
    that what is done there has exactly the owning service's privileges and what is
    made there is the service's; the role taken, or None if the session already acts
    as the owner or the schema does not exist yet (whoever makes it owns it).

    For the admin role, and for the owner or superuser migrating a service's schema
    (the superuser's tests, whose schemas are their own, are left as they are).
    """
    owner: str | None = await conn.fetchval(
        "SELECT nspowner::regrole::text FROM pg_namespace"
        " WHERE nspname = $1"
        " AND nspowner <> (SELECT oid FROM pg_roles WHERE rolname = current_user)",
        schema,
    )
    if owner is not None:
        await conn.execute(f"SET {'LOCAL ' if local else ''}ROLE {owner}")
    return owner
