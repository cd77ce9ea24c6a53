"""Settings: one object, every field documented in the README's table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import ragbot
from ragbot.config import Settings
from ragbot.corpus import load_corpus


def test_settings_are_documented(repo_root: Path) -> None:
    readme = (repo_root / "README.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `RAGBOT_([A-Z_]+)` \|", readme, re.MULTILINE))
    assert documented == {name.upper() for name in Settings.model_fields}


def readme_defaults(repo_root: Path) -> dict[str, str]:
    """Setting name -> the default column of the README's table, backticks removed."""
    readme = (repo_root / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `RAGBOT_([A-Z_]+)` \| ([^|]+) \|", readme, re.MULTILINE)
    return {name.lower(): cell.strip().strip("`") for name, cell in rows}


def test_the_readme_gives_each_number_flag_and_word_its_default_from_the_code(
    repo_root: Path,
) -> None:
    # Paths and unset secrets are described in words; every number, flag and string is checked.
    documented = readme_defaults(repo_root)
    checked = 0
    for name, field in Settings.model_fields.items():
        default = field.default
        if isinstance(default, bool):
            assert documented[name] == str(default).lower(), name
        elif isinstance(default, int | float):
            assert float(documented[name]) == float(default), name
        elif isinstance(default, str):
            assert documented[name] == default, name
        else:
            continue
        checked += 1
    assert checked >= 20


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


def test_the_default_corpus_is_the_article_shipped_inside_the_package() -> None:
    folder = Settings().corpus_dir
    assert folder.is_relative_to(Path(ragbot.__file__).parent)
    assert [doc.doc_id for doc in load_corpus(folder)] == [
        "what-are-the-effects-of-ketamine-on-the-brain"
    ]


def test_the_default_index_is_index_in_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert Settings().index_dir == tmp_path / "index"


def test_settings_override_the_corpus_and_index_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAGBOT_CORPUS_DIR", str(tmp_path / "articles"))
    monkeypatch.setenv("RAGBOT_INDEX_DIR", str(tmp_path / "built"))
    settings = Settings()
    assert (settings.corpus_dir, settings.index_dir) == (tmp_path / "articles", tmp_path / "built")
