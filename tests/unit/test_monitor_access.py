"""The monitor's access rules and sign-in secrets, without a database."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fairshare.cli import app as cli
from services.monitor import signin
from services.monitor.access import (
    CODE_ALPHABET,
    Viewer,
    code_hash,
    hash_secret,
    may_see,
    new_code,
    new_token,
    normalise_code,
    same_origin,
    scope,
)

REGIONAL = Viewer(uuid.uuid4(), "Greater Manchester team", "QOP", national=False)
NATIONAL = Viewer(uuid.uuid4(), "NHS England", None, national=True)


def test_a_regional_viewer_sees_only_their_region_and_a_national_one_every_region() -> None:
    """may_see and scope: one region for an ICB viewer, all for a national viewer (whose
    home region, if any, does not narrow what they see)."""
    assert may_see(REGIONAL, "QOP")
    assert not may_see(REGIONAL, "QE1")
    assert (scope(REGIONAL), scope(NATIONAL)) == ("QOP", None)
    assert may_see(NATIONAL, "QE1")
    assert may_see(NATIONAL, "QOP")
    with_home = Viewer(uuid.uuid4(), "Deputy", "QOP", national=True)
    assert scope(with_home) is None
    assert may_see(with_home, "QE1")


def test_a_viewer_who_is_not_national_must_have_a_region() -> None:
    """No viewer may be left seeing 'nothing in particular', which a filter of None
    would read as everything."""
    with pytest.raises(ValueError, match="needs a region"):
        Viewer(uuid.uuid4(), "Nobody", None, national=False)


def test_codes_are_random_typeable_and_hashed_however_typed() -> None:
    """A code is 12 characters of the unambiguous alphabet in groups of four; typed in
    lower case, with spaces or without dashes it hashes the same; two codes differ."""
    code = new_code()
    assert re.fullmatch(r"[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}", code)
    assert set(code.replace("-", "")) <= set(CODE_ALPHABET)
    assert not set("01IO") & set(CODE_ALPHABET)
    typed = f"  {code.lower().replace('-', ' ')} "
    assert normalise_code(typed) == code.replace("-", "")
    assert code_hash(typed) == code_hash(code)
    assert code_hash(code) != code_hash(new_code())
    assert len({new_code() for _ in range(200)}) == 200


def test_only_hashes_are_kept() -> None:
    """The stored form of a secret is its SHA-256 in hex, never the secret."""
    token = new_token()
    assert len(token) >= 43  # 32 random bytes in base64
    stored = hash_secret(token)
    assert re.fullmatch(r"[0-9a-f]{64}", stored)
    assert token not in stored
    assert hash_secret(token) == stored


@pytest.mark.parametrize(
    ("origin", "host", "allowed"),
    [
        (None, "127.0.0.1:8004", True),
        ("http://127.0.0.1:8004", "127.0.0.1:8004", True),
        ("https://Monitor.example.nhs.uk", "monitor.example.nhs.uk", True),
        ("http://127.0.0.1:8002", "127.0.0.1:8004", False),
        ("https://evil.example", "127.0.0.1:8004", False),
        ("null", "127.0.0.1:8004", False),
        ("http://127.0.0.1:8004", None, False),
    ],
)
def test_a_sign_in_posted_from_another_site_is_refused(
    origin: str | None, host: str | None, *, allowed: bool
) -> None:
    """same_origin: the form's Origin must name this host and port (a sandboxed page
    sends "null"); a client that sends no Origin is let through."""
    assert same_origin(origin, host) is allowed


def test_the_sign_in_page_is_plain_labelled_and_self_contained() -> None:
    """The form posts to /signin, its field has a label and a hint, nothing is fetched
    from elsewhere, and an error is escaped and announced."""
    page = (Path(signin.__file__).with_name("static") / "signin.html").read_text()
    assert '<html lang="en">' in page
    assert '<form method="post" action="/signin">' in page
    assert '<label for="code">' in page
    assert 'id="code"' in page
    assert 'aria-describedby="code-hint"' in page
    assert "<script" not in page
    assert not re.search(r"""(src|href|action)\s*=\s*["']?(https?:)?//""", page)
    answer = signin._page(401, "<b>bad</b>")
    body = bytes(answer.body).decode()
    assert answer.status_code == 401
    assert '<div class="error" role="alert"><p>&lt;b&gt;bad&lt;/b&gt;</p></div>' in body
    assert "<title>Error: Sign in" in body
    assert answer.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--name", "Someone"], "Give --region"),
        (["--region", "qop"], "is not valid"),
        (["--viewer", str(uuid.uuid4()), "--region", "QOP"], "give nothing else"),
        (["--viewer", "not-an-id"], "is not valid"),
    ],
)
def test_icb_invite_refuses_what_it_cannot_mean(args: list[str], says: str) -> None:
    """`fairshare icb invite` says what is wrong, and exits 2, before touching a database."""
    result = CliRunner().invoke(
        cli, ["icb", "invite", *args], env={"FAIRSHARE_DATABASE_URL": "postgresql://nowhere/"}
    )
    assert result.exit_code == 2, result.output
    assert says in result.output
