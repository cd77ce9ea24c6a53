"""`ragbot build-index`, `inspect` and `search`, run as a user would, with the real model.

The model loads once per session (the `real_embedder` fixture); the CLI's own `load_embedder` is
replaced by one that hands it out and records the settings it was asked to load with.
"""

from __future__ import annotations

import json
import re
import shutil
import textwrap
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pytest

from ragbot.cli import EXIT_ERROR, EXIT_INDEX, EXIT_OK, main
from ragbot.config import Settings
from ragbot.embeddings import Embedder
from ragbot.manifest import Manifest
from ragbot.records import Records

pytestmark = pytest.mark.model

SHIPPED = "what-are-the-effects-of-ketamine-on-the-brain.md"
DOC_ID = "what-are-the-effects-of-ketamine-on-the-brain"


@dataclass
class Env:
    """Where RAGBOT_CORPUS_DIR and RAGBOT_INDEX_DIR point; the settings the model loaded with."""

    corpus: Path
    index: Path
    loaded_with: list[Settings] = field(default_factory=list)


@pytest.fixture
def env(
    tmp_path: Path,
    shipped_corpus_dir: Path,
    real_embedder: Embedder,
    monkeypatch: pytest.MonkeyPatch,
) -> Env:
    """A private copy of the shipped corpus and an empty index folder, both in tmp_path."""
    env = Env(corpus=tmp_path / "corpus", index=tmp_path / "index")
    env.corpus.mkdir()
    shutil.copy(shipped_corpus_dir / SHIPPED, env.corpus / SHIPPED)
    monkeypatch.setenv("RAGBOT_CORPUS_DIR", str(env.corpus))
    monkeypatch.setenv("RAGBOT_INDEX_DIR", str(env.index))

    def load_embedder(settings: Settings, **_options: object) -> Embedder:
        env.loaded_with.append(settings)
        return real_embedder

    monkeypatch.setattr("ragbot.pipeline.load_embedder", load_embedder)
    return env


@pytest.fixture
def built_env(env: Env, real_index_dir: Path) -> Env:
    """`env` with the shipped corpus already built (a copy of the session's real index)."""
    shutil.copytree(real_index_dir, env.index, symlinks=True)
    return env


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _stale(corpus: Path) -> None:
    path = corpus / SHIPPED
    path.write_text(
        path.read_text(encoding="utf-8") + "\nA sentence added after the build.\n", encoding="utf-8"
    )


# ---------------------------------------------------------------------------------------------
# build-index


def test_build_index_prints_what_it_built_and_a_rebuild_reuses_every_vector(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "build-index")
    assert code == EXIT_OK, err
    assert [s.index_dir for s in env.loaded_with] == [env.index]
    built, counts, work = out.strip().splitlines()
    path = Path(built.removeprefix("built "))
    assert path.parent == env.index / "builds" and path.is_dir()
    numbers = dict(re.findall(r"(\w+) (\d+)", counts))
    assert numbers["documents"] == "1" and numbers["sections"] == "8"
    counts_built = Manifest.read(path).counts
    assert {k: int(v) for k, v in numbers.items()} == asdict(counts_built)
    total = counts_built.chunks + counts_built.sentences + counts_built.sections
    assert re.fullmatch(rf"\s*embedded {total}  reused 0  seconds \d+\.\d\d", work)
    assert "1 documents, 8 sections" in err  # progress goes to stderr, the summary to stdout

    code, out, _ = run(capsys, "build-index")
    assert code == EXIT_OK
    assert re.search(rf"embedded 0  reused {total}  seconds", out)


def test_build_index_over_an_empty_corpus_fails_with_exit_1(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    (env.corpus / SHIPPED).unlink()
    code, out, err = run(capsys, "build-index")
    assert code == EXIT_ERROR
    assert out == ""
    assert err.startswith("error: ") and "holds no article" in err


# ---------------------------------------------------------------------------------------------
# inspect


def test_inspect_shows_the_manifest_the_corpus_state_and_a_few_chunks(
    built_env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "inspect", "--chunks", "2")
    assert code == EXIT_OK, err
    assert "model      sentence-transformers/all-MiniLM-L6-v2  dim 384" in out
    assert "faiss      flat  metric inner_product  normalised True" in out
    assert '"budget_tokens": 128' in out
    assert "corpus     up to date" in out
    assert f"document   {DOC_ID}: What are the Effects of Ketamine on the Brain? ({SHIPPED})" in out
    assert len(re.findall(r"^chunk [0-9a-f]{16}  \[\d+:\d+\]  \d+ tokens  § ", out, re.M)) == 2


def test_inspect_json_prints_the_manifest(
    built_env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "inspect", "--json")
    assert code == EXIT_OK
    manifest = json.loads(out)
    on_disk = json.loads(
        (built_env.index / "current" / "manifest.json").read_text(encoding="utf-8")
    )
    assert manifest == on_disk


def test_inspect_reports_a_stale_corpus_but_still_shows_the_index(
    built_env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    _stale(built_env.corpus)
    code, out, _ = run(capsys, "inspect")
    assert code == EXIT_OK
    assert re.search(rf"corpus     STALE: .*changed: {SHIPPED}.*run `ragbot build-index`", out)


# ---------------------------------------------------------------------------------------------
# search


def test_search_ranks_the_section_that_answers_first_with_offsets_that_slice_the_document(
    built_env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "search", "how long does ketamine stay in the body", "-k", "3")
    assert code == EXIT_OK, err
    results = re.findall(
        rf"^(\d)\. rrf [\d.]+  cosine ([-\d.]+)  bm25 ([-\d.]+)  {DOC_ID}\[(\d+):(\d+)\]  § (.+)$",
        out,
        re.M,
    )
    assert [r[0] for r in results] == ["1", "2", "3"]
    assert results[0][5] == "How Long Does Ketamine Stay in the Body?"
    from ragbot.corpus import load_document

    text = load_document(built_env.corpus / SHIPPED).text
    for *_, start, end, _section in results:
        quote = textwrap.indent(textwrap.fill(text[int(start) : int(end)], 96), "   ")
        assert quote in out


@pytest.mark.parametrize(
    "command",
    [["inspect"], ["search", "ketamine"], ["serve", "--no-build"]],
    ids=["inspect", "search", "serve"],
)
def test_a_missing_index_exits_3_and_says_to_build_it(
    env: Env, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    code, out, err = run(capsys, *command)
    assert code == EXIT_INDEX
    assert out == ""
    assert err == f"error: no index in {env.index}: run `ragbot build-index`\n"


def test_search_over_a_stale_index_exits_3_naming_the_changed_file(
    built_env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    _stale(built_env.corpus)
    code, out, err = run(capsys, "search", "ketamine")
    assert code == EXIT_INDEX
    assert out == ""
    assert f"changed: {SHIPPED}" in err and "run `ragbot build-index`" in err


def test_an_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["rebuild-everything"])
    assert exit_.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_an_unwritable_index_folder_is_one_error_line_and_exit_1(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAGBOT_INDEX_DIR", "/dev/null/index")
    code, out, err = run(capsys, "build-index")
    assert code == 1 and out == ""
    assert err.startswith("error: cannot write the index folder /dev/null/index")
    assert len(err.strip().splitlines()) == 1


def test_a_setting_out_of_range_is_named_in_one_error_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAGBOT_MAX_SENTENCES", "9")
    code, _, err = run(capsys, "inspect")
    assert code == 1
    assert err == "error: RAGBOT_MAX_SENTENCES: Input should be less than or equal to 3\n"


# ---------------------------------------------------------------------------------------------
# ask


def test_ask_answers_and_keeps_a_record_with_channel_cli(
    built_env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "ask", "How long does ketamine stay in the body?", "--json")
    assert code == EXIT_OK, err
    reply = json.loads(out)
    assert reply["status"] == "answered"
    records = Records.open(Settings())  # the default store: records.sqlite3 in RAGBOT_INDEX_DIR
    try:
        kept = records.reply(reply["request_id"])
    finally:
        records.close()
    assert kept is not None
    assert (kept.channel, kept.status, kept.question) == ("cli", "answered", None)
    assert list(kept.sections) == list(dict.fromkeys(c["section"] for c in reply["citations"]))
    assert kept.build_id == Manifest.read(built_env.index / "current").build_id


def test_ask_still_answers_when_the_records_store_cannot_be_opened(
    built_env: Env,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RAGBOT_DATABASE_URL", "postgresql+psycopg://@127.0.0.1:1/x")
    code, out, err = run(capsys, "ask", "How long does ketamine stay in the body?")
    assert code == EXIT_OK, err
    assert "How Long Does Ketamine Stay in the Body?" in out
    assert any("reply record not written" in r.getMessage() for r in caplog.records)
