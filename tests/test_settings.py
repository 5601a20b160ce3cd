"""The `TLCORE_*` settings: read in one place, understood as people write them, refused when they are not."""

import re
from pathlib import Path

import pytest

from tlcore import settings
from tlcore.backbones import is_offline
from tlcore.errors import SettingError
from tlcore.features import Budget
from tlcore.pipeline import streams_from_disk

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "text, expected",
    [("2G", 2 * 2**30), ("512M", 512 * 2**20), ("1.5GiB", 3 * 2**29), ("1000", 1000), ("64 kb", 64 * 1024)],
)
def test_sizes_are_read_as_people_write_them(text, expected):
    assert settings.parse_size(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [("1", True), ("TRUE", True), ("on", True), ("0", False), ("false", False), ("No", False), ("off", False)],
)
def test_switches_are_read_as_people_write_them(text, expected):
    assert settings.parse_bool(text) is expected


def test_offline_false_means_online(monkeypatch):
    monkeypatch.setenv("TLCORE_OFFLINE", "false")
    assert settings.offline() is False
    monkeypatch.setenv("TLCORE_OFFLINE", "yes")
    assert settings.offline() is True and is_offline()


def test_the_pipeline_memory_takes_a_unit(monkeypatch, dataset):
    monkeypatch.setenv("TLCORE_PIPELINE_MEMORY", "4G")
    assert settings.pipeline_memory() == 4 * 2**30
    assert not streams_from_disk(dataset, 32)
    monkeypatch.setenv("TLCORE_PIPELINE_MEMORY", "1K")
    assert streams_from_disk(dataset, 32)


@pytest.mark.parametrize(
    "name, value, read",
    [
        ("TLCORE_FEATURES_MEMORY_BUDGET", "lots", Budget.from_env),
        ("TLCORE_PIPELINE_MEMORY", "4 gigs", settings.pipeline_memory),
        ("TLCORE_OFFLINE", "maybe", settings.offline),
        ("TLCORE_FAST_PATH", "2", settings.fast_path),
        ("TLCORE_MAX_CONCURRENT", "0", settings.max_concurrent),
        ("TLCORE_MAX_CONCURRENT", "two", settings.max_concurrent),
        ("TLCORE_TRAINER_NICE", "20", settings.trainer_niceness),
        ("TLCORE_TRAINER_NICE", "-5", settings.trainer_niceness),
    ],
)
def test_a_value_that_cannot_be_understood_is_refused_naming_the_setting_and_the_value(monkeypatch, name, value, read):
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingError, match=f"{name}.*{re.escape(repr(value))}"):
        read()


def test_unset_or_blank_settings_take_their_defaults(monkeypatch):
    for setting in settings.SETTINGS:
        monkeypatch.setenv(setting.name, " ")
    assert (settings.offline(), settings.fast_path(), settings.max_concurrent()) == (False, True, 1)
    assert Budget.from_env() == Budget()
    assert settings.data_dirs() == []
    assert settings.trainer_niceness() == 19


def test_the_readme_lists_every_setting():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [setting.name for setting in settings.SETTINGS if f"`{setting.name}`" not in readme]
    assert not missing, f"README.md does not list {missing}"
