"""Sealing web hook signing secrets: what the keys seal and open, rotation, the errors a
missing or wrong key gives, the service's refusal to start without one, and where
`fairshare dev` and the admin commands find the keys (issue 13)."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest

from fairshare import secret_keys
from services.vacancies import secret_box
from services.vacancies.admin import new_webhook_secret
from services.vacancies.app import create_app
from services.vacancies.secret_box import KEYS_SETTING, SecretBox, SecretKeyError
from services.vacancies.settings import VacanciesSettings


@pytest.fixture
def nothing_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A process in which no keys were installed (the tests' own put back afterwards)."""
    monkeypatch.setattr(secret_box, "_installed", None)


def test_a_sealed_secret_opens_and_shows_nothing_of_itself() -> None:
    box = SecretBox([secret_box.generate_key()])
    secret = new_webhook_secret()
    body = secret.removeprefix("whsec_")
    sealed = box.seal(secret)
    assert box.open(sealed) == secret
    assert secret not in sealed
    assert body not in sealed
    assert base64.b64decode(body).hex() not in sealed
    assert sealed.startswith("gAAAA")  # what migration 0005's check constraint expects
    assert box.seal(secret) != sealed  # a fresh IV each time: equal secrets look different


def test_the_first_key_seals_every_key_opens_and_reseal_moves_to_the_first() -> None:
    old, new = secret_box.generate_key(), secret_box.generate_key()
    secret = new_webhook_secret()
    sealed_with_old = SecretBox([old]).seal(secret)
    rotating = SecretBox([new, old])
    assert rotating.open(sealed_with_old) == secret
    assert SecretBox([new]).open(rotating.seal(secret)) == secret
    resealed = rotating.reseal(sealed_with_old)
    assert SecretBox([new]).open(resealed) == secret
    with pytest.raises(SecretKeyError):
        SecretBox([old]).open(resealed)


def test_a_wrong_key_says_the_key_is_missing_and_never_shows_a_key() -> None:
    right, wrong = secret_box.generate_key(), secret_box.generate_key()
    sealed = SecretBox([right]).seal(new_webhook_secret())
    for action in (SecretBox([wrong]).open, SecretBox([wrong]).reseal):
        with pytest.raises(
            SecretKeyError, match=f"can't be decrypted with any key in {KEYS_SETTING}"
        ):
            action(sealed)


@pytest.mark.parametrize("setting", [None, "", " ", " , ,"])
def test_no_key_is_refused_saying_what_to_set_and_how_to_make_one(setting: str | None) -> None:
    with pytest.raises(SecretKeyError) as refused:
        SecretBox.from_setting(setting)
    assert f"{KEYS_SETTING} is not set" in str(refused.value)
    assert "fairshare org new-secret-key" in str(refused.value)


def test_a_malformed_key_is_refused_by_position_without_echoing_it() -> None:
    good = secret_box.generate_key()
    bad = good[:-6] + "!!!!!="
    with pytest.raises(
        SecretKeyError, match=f"key 2 of 2 in {KEYS_SETTING} is not a Fernet key"
    ) as refused:
        SecretBox.from_setting(f"{good}, {bad}")
    assert bad not in str(refused.value)
    assert good not in str(refused.value)
    # Spaces around the commas are fine.
    assert SecretBox.from_setting(f" {good} ,").open(SecretBox([good]).seal("x")) == "x"


def _settings(keys: str) -> VacanciesSettings:
    return VacanciesSettings.model_validate({KEYS_SETTING: keys})


@pytest.mark.usefixtures("nothing_installed")
def test_the_service_refuses_to_start_without_keys() -> None:
    with pytest.raises(SecretKeyError, match=f"{KEYS_SETTING} is not set"):
        create_app(_settings(""))
    with pytest.raises(SecretKeyError, match="not a Fernet key"):
        create_app(_settings("not-a-key"))


@pytest.mark.usefixtures("nothing_installed")
def test_the_service_starts_with_the_keys_of_its_settings() -> None:
    new, old = secret_box.generate_key(), secret_box.generate_key()
    create_app(_settings(f"{new},{old}"))
    sealed = secret_box.installed().seal("whsec_x")
    assert SecretBox([new]).open(sealed) == "whsec_x"
    assert secret_box.installed().open(SecretBox([old]).seal("whsec_y")) == "whsec_y"


def test_dev_makes_its_key_once_readable_by_its_owner_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FAIRSHARE_DATABASE_URL", raising=False)
    monkeypatch.setenv(KEYS_SETTING, secret_box.generate_key())  # someone's shell: not dev's
    assert secret_keys.admin_keys(tmp_path) is None
    key = secret_keys.dev_keys(tmp_path)
    SecretBox.from_setting(key)  # a usable key
    path = tmp_path / secret_keys.KEYS_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert secret_keys.dev_keys(tmp_path) == key
    assert secret_keys.admin_keys(tmp_path) == key


def test_keys_from_the_environment_go_with_its_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine = secret_box.generate_key()
    dev = secret_keys.dev_keys(tmp_path)
    monkeypatch.setenv("FAIRSHARE_DATABASE_URL", "postgresql://db.example/fairshare")
    monkeypatch.setenv(KEYS_SETTING, mine)
    assert secret_keys.admin_keys(tmp_path) == mine
    assert secret_keys.dev_keys(tmp_path) == mine
    monkeypatch.delenv(KEYS_SETTING)
    assert secret_keys.admin_keys(tmp_path) == dev
