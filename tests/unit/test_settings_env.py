"""Settings come from the environment; a bad one names its variable."""

from __future__ import annotations

import pytest

from invite.kernel.settings import SettingsError, load_settings


def test_defaults_need_no_environment() -> None:
    settings = load_settings({})
    assert settings.embedded_database
    assert settings.api_prefix == "/api/v1/invite"
    assert settings.daily_quota == 40
    assert settings.daily_quota_with_link == 10
    assert settings.min_pause_seconds == 15.0


def test_values_are_parsed_from_strings() -> None:
    settings = load_settings({"PORT": "9000", "LOG_JSON": "false", "MIN_PAUSE_SECONDS": "20.5"})
    assert (settings.port, settings.log_json, settings.min_pause_seconds) == (9000, False, 20.5)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PORT", "eighty"),
        ("PORT", "70000"),
        ("MAX_ACTIVE_TASKS_PER_TENANT", "0"),
        ("TELEGRAM_DRIVER", "proxy"),
        ("API_PREFIX", "no-leading-slash"),
        ("PHONE_DEFAULT_REGION", "russia"),
    ],
)
def test_a_bad_value_names_its_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({variable: value})
    message = str(caught.value)
    assert message.startswith(f"{variable}: ")
    assert "\n" not in message


def test_empty_values_mean_unset() -> None:
    assert load_settings({"DATABASE_URL": ""}).database_url is None
