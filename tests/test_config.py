"""Settings: one object, every field documented in the README's table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ragbot.config import Settings


def test_settings_are_documented(repo_root: Path) -> None:
    readme = (repo_root / "README.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `RAGBOT_([A-Z_]+)` \|", readme, re.MULTILINE))
    assert documented == {name.upper() for name in Settings.model_fields}


def test_every_setting_has_a_description() -> None:
    assert all(field.description for field in Settings.model_fields.values())


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAGBOT_MAX_SENTENCES", "2")
    monkeypatch.setenv("RAGBOT_CORS_ORIGINS", '["https://clinic.example"]')
    settings = Settings()
    assert settings.max_sentences == 2
    assert settings.cors_origins == ["https://clinic.example"]


def test_out_of_range_settings_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAGBOT_MAX_SENTENCES", "4")
    with pytest.raises(ValueError, match="max_sentences"):
        Settings()


def test_slack_is_on_only_with_both_secrets() -> None:
    assert not Settings(slack_bot_token="xoxb-1").slack_enabled
    assert not Settings(slack_signing_secret="s").slack_enabled
    assert Settings(slack_bot_token="xoxb-1", slack_signing_secret="s").slack_enabled
