"""Configuration comes from the documented environment names; bad values name the variable."""

from __future__ import annotations

import pytest

from starter.api.app import create_app
from starter.settings import ApiKeyHolder, Role, SettingsError, load_settings

ENV_NAMES = (
    "TEMPORAL_ADDRESS",
    "TEMPORAL_NAMESPACE",
    "NURTURE_TASK_QUEUE",
    "DATABASE_URL",
    "SMTP_HOST",
    "SMTP_PORT",
    "SMTP_USERNAME",
    "SMTP_PASSWORD",
    "SMTP_STARTTLS",
    "MAIL_FROM",
    "PUBLIC_BASE_URL",
    "NURTURE_SECRET_KEY",
    "NURTURE_API_KEYS",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)


def test_defaults_use_an_embedded_sqlite_file_and_the_nurture_task_queue() -> None:
    settings = load_settings()

    assert settings.temporal_address is None
    assert settings.temporal_namespace == "default"
    assert settings.task_queue == "nurture"
    assert settings.effective_database_url.startswith("sqlite:///")


def test_environment_names_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEMPORAL_ADDRESS", "temporal:7233")
    monkeypatch.setenv("NURTURE_TASK_QUEUE", "journeys")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@db/nurture")
    monkeypatch.setenv("SMTP_STARTTLS", "true")
    monkeypatch.setenv(
        "NURTURE_API_KEYS",
        "marketing:m-0123456789abcdef,admin:a-0123456789abcdef,sales:kim:k-0123456789abcdef",
    )

    settings = load_settings()

    assert settings.temporal_address == "temporal:7233"
    assert settings.task_queue == "journeys"
    assert settings.effective_database_url == "postgresql+psycopg://u:p@db/nurture"
    assert settings.smtp_starttls is True
    assert settings.api_keys == {
        "m-0123456789abcdef": ApiKeyHolder(role=Role.MARKETING),
        "a-0123456789abcdef": ApiKeyHolder(role=Role.ADMIN),
        "k-0123456789abcdef": ApiKeyHolder(role=Role.SALES, rep="kim"),
    }


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SMTP_PORT", "not-a-port"),
        ("SMTP_PORT", "70000"),
        ("NURTURE_API_KEYS", "boss:0123456789abcdef"),
        ("NURTURE_API_KEYS", "marketing"),
        ("NURTURE_API_KEYS", "sales:nobody:0123456789abcdef"),
        ("NURTURE_SECRET_KEY", "too-short"),
        ("DATABASE_URL", "mysql://db/nurture"),
        ("PUBLIC_BASE_URL", "ftp://example.com"),
        ("SMTP_STARTTLS", "perhaps"),
    ],
)
def test_a_wrong_value_fails_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)

    with pytest.raises(SettingsError, match=name):
        load_settings()


def test_the_api_refuses_to_start_without_api_keys() -> None:
    with pytest.raises(SettingsError, match="NURTURE_API_KEYS"):
        create_app(load_settings())


def test_a_missing_secret_key_is_named() -> None:
    with pytest.raises(SettingsError, match="NURTURE_SECRET_KEY"):
        load_settings().require_secret_key()
