"""Every string of the app exists in English and Japanese, and every key the code asks for exists."""

import re
import string
from pathlib import Path

import pytest

from tlcore.models import POOLINGS, Strategy
from tlcore.runs import ACTIVE_STATUSES, FINISHED_STATUSES
from ui import i18n

ROOT = Path(__file__).resolve().parents[1]
APP_SOURCES = [ROOT / "app.py", *sorted((ROOT / "app_pages").glob("*.py")), *sorted((ROOT / "ui").glob("*.py"))]
# `t("key")`, or a key in a table of them (`{"zip": "data.source_zip"}`) that is passed to `t` later.
KEY_CALL = re.compile(r"""(?:\bt\(\s*|:\s*)(["'])([a-z_]+\.[a-z0-9_.]+)\1""")


def keys_used() -> set[str]:
    return {match.group(2) for path in APP_SOURCES for match in KEY_CALL.finditer(path.read_text("utf-8"))}


def placeholders(text: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(text) if field}


EN = i18n.catalog().templates["en"]
JA = i18n.catalog().templates["ja"]


def test_both_languages_have_exactly_the_same_keys():
    assert len(EN) > 200 and set(EN) == set(JA)


def test_every_key_the_app_uses_exists():
    used = keys_used()
    assert len(used) > 100  # the scan found the app's calls
    assert used - set(EN) == set()


def test_every_string_is_used_somewhere():
    assert set(EN) - keys_used() == set()


def test_translations_fill_in_the_same_values():
    mismatched = {key for key in EN if placeholders(EN[key]) != placeholders(JA[key])}
    assert mismatched == set()


def test_japanese_strings_are_translated():
    # Identical strings are fine for names ("ImageNet", "#") and pure templates, not for words.
    def has_words(text: str) -> bool:
        return re.search(r"[A-Za-z]{3,}", re.sub(r"\{[^}]*\}", "", text)) is not None

    same = {key for key in EN if EN[key] == JA[key] and has_words(EN[key])}
    assert same == {"sidebar.language", "weights.imagenet", "evaluate.tensorboard_title"}


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_every_status_strategy_and_head_has_a_label(lang, monkeypatch):
    monkeypatch.setattr(i18n, "language", lambda: lang)
    for status in (*ACTIVE_STATUSES, *FINISHED_STATUSES, "damaged"):
        assert i18n.status_label(status)
        assert i18n.status_badge(status).endswith(f"[{i18n.status_label(status)}]")
    for strategy in Strategy:
        assert i18n.strategy_label(strategy) and i18n.strategy_hint(strategy)
    for pooling in POOLINGS:
        assert i18n.pooling_label(pooling)


def test_durations_read_naturally_in_both_languages(monkeypatch):
    monkeypatch.setattr(i18n, "language", lambda: "en")
    assert [i18n.duration(s) for s in (5, 65, 3725)] == ["5s", "1m 05s", "1h 02m"]
    monkeypatch.setattr(i18n, "language", lambda: "ja")
    assert [i18n.duration(s) for s in (5, 65, 3725)] == ["5秒", "1分05秒", "1時間02分"]
