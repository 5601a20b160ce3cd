"""Messages in the reader's language: every sentence tlcore shows people is a key and named parameters.

The words live in gettext catalogs that translators edit without reading Python
(`tlcore/locales/<lang>/LC_MESSAGES/tlcore.po` and `cli.po`; the app has its own, `ui/locales`). A message id is a
key such as `"dataset.only_one_class"`; its text in each language is a `str.format` template with named
fields, `"{name!r} has only one class ({only!r}, {images}); ..."`. A field may itself hold a
`Message` (rendered in the same language), which is how counts get their plural: `msg("count.images",
n=3)` is a catalog entry with plural forms ("3 images"; in Japanese, which has none, "3 枚").

A `Message` is plain data: errors carry one (`tlcore.errors.TLCoreError.message`), run statuses store
them as JSON (`{"key": ..., "params": ...}`), and whoever shows it renders it in the reader's
language: the app in the session's, the command line in `--lang`, `TLCORE_LANG` or the locale's.
Text that comes from outside (an exception's own words, a file name) is a parameter, or a
`literal`, and is shown as it is.

Catalogs are read with Babel (`babel.messages.pofile.read_po`); `docs/translating.md` gives the
commands that extract new keys and update the catalogs, and `tests/test_i18n.py` checks them.
"""

from __future__ import annotations

import functools
import gettext
import locale
import os
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LANGUAGES = {"en": "English", "ja": "日本語"}
"""The languages every message is written in, by code, each named in its own language."""
DEFAULT_LANGUAGE = "en"
LOCALES = Path(__file__).parent / "locales"
DOMAINS = ("tlcore", "cli")
"""tlcore's catalogs: the core's sentences, and the command line's."""


@dataclass(frozen=True)
class Message:
    """A sentence to show someone, in whatever language they read.

    key: the catalog key, or None for a literal: text from outside that is shown as it is (`text`).
    params: the template's named fields; a value may be another `Message`.
    """

    key: str | None
    params: Mapping[str, Any] = field(default_factory=dict)
    text: str | None = None

    def render(self, lang: str | None = None, catalog: Catalog | None = None) -> str:
        """The message in `lang` (default: the environment's, see `language_from_environment`)."""
        if self.key is None:
            return self.text or ""
        return (catalog or core_catalog()).render(self.key, self.params, lang or language_from_environment())

    def __str__(self) -> str:
        return self.render(DEFAULT_LANGUAGE)

    def to_json(self) -> dict[str, Any]:
        """`{"key": ..., "params": {...}}` (a literal: `{"text": ...}`), nested messages included."""
        if self.key is None:
            return {"text": self.text or ""}
        return {"key": self.key, "params": {name: _param_to_json(value) for name, value in self.params.items()}}

    @classmethod
    def from_json(cls, data: Any) -> Message | None:
        """Read what `to_json` wrote; a plain string (as run folders of format 1 hold) is a literal.

        Anything else reads as None (unknown), never as an error: a damaged file must not break a page.
        """
        if isinstance(data, str):
            return literal(data)
        if not isinstance(data, dict):
            return None
        if isinstance(data.get("text"), str) and "key" not in data:
            return literal(data["text"])
        key, params = data.get("key"), data.get("params", {})
        if not isinstance(key, str) or not isinstance(params, dict):
            return None
        return cls(key, {str(name): _param_from_json(value) for name, value in params.items()})


def msg(key: str, **params: Any) -> Message:
    """The message `key` with `params`."""
    return Message(key, params)


def literal(text: str) -> Message:
    """Text that is shown as it is, in every language (an exception's own words, a name)."""
    return Message(None, {}, text)


def readable(message: Message | None) -> Message | None:
    """`message` if it renders in every language, else None: a file read back (a run's status, a dataset's
    manifest) may be damaged, or hold a key this version's catalog does not have, and must not break a page."""
    if message is None:
        return None
    try:
        for lang in LANGUAGES:
            message.render(lang)
    except (KeyError, ValueError, TypeError, IndexError, AttributeError):
        return None
    return message


def _param_to_json(value: Any) -> Any:
    if isinstance(value, Message):
        return {"message": value.to_json()}
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _param_from_json(value: Any) -> Any:
    if isinstance(value, dict) and "message" in value:
        return Message.from_json(value["message"]) or literal("")
    return value


class Catalog:
    """The message templates of some domains in every language, read once from their PO files.

    folder: holds `<lang>/LC_MESSAGES/<domain>.po` for each of `LANGUAGES` and each of `domains`.
    """

    def __init__(self, folder: Path, *domains: str) -> None:
        from babel.messages.pofile import read_po

        self.folder = folder
        self.domain = "+".join(domains)
        self.templates: dict[str, dict[str, str | tuple[str, ...]]] = {lang: {} for lang in LANGUAGES}
        self._plural: dict[str, Any] = {}
        for lang in LANGUAGES:
            for domain in domains:
                with open(folder / lang / "LC_MESSAGES" / f"{domain}.po", "rb") as handle:
                    catalog = read_po(handle, locale=lang)
                self.templates[lang].update(
                    {
                        (entry.id[0] if isinstance(entry.id, tuple) else entry.id): entry.string
                        for entry in catalog
                        if entry.id and entry.string and (not isinstance(entry.string, tuple) or all(entry.string))
                    }
                )
                self._plural[lang] = gettext.c2py(catalog.plural_expr)

    def keys(self, lang: str) -> set[str]:
        return set(self.templates[lang])

    def template(self, key: str, lang: str, n: Any = None) -> str:
        """The template of `key` in `lang` (English when `lang` lacks it); plural forms are chosen by `n`."""
        found = self.templates.get(lang, {}).get(key)
        if found is None:
            lang = DEFAULT_LANGUAGE
            found = self.templates[lang].get(key)
        if found is None:
            raise KeyError(f"No message {key!r} in the {self.domain!r} catalog.")
        if isinstance(found, tuple):
            index = self._plural[lang](int(n)) if isinstance(n, (int, float)) else 0
            return found[min(index, len(found) - 1)]
        return found

    def render(self, key: str, params: Mapping[str, Any], lang: str) -> str:
        """`key` in `lang` with `params` filled in (nested messages rendered in the same language)."""
        values = {
            name: value.render(lang, self if value.key is None or value.key in self.templates[lang] else None)
            if isinstance(value, Message)
            else value
            for name, value in params.items()
        }
        return _Formatter().format(self.template(key, lang, params.get("n")), **values)


class _Formatter(string.Formatter):
    """`str.format` that leaves a field the caller did not give visible as `{name}` instead of failing,
    so a message missing a parameter still says the rest (tests check that none is missing)."""

    def get_value(self, key: Any, args: Any, kwargs: Mapping[str, Any]) -> Any:
        if isinstance(key, str) and key not in kwargs:
            return _Missing(key)
        return super().get_value(key, args, kwargs)


class _Missing:
    def __init__(self, name: str) -> None:
        self.name = name

    def __format__(self, spec: str) -> str:
        return "{" + self.name + "}"

    def __repr__(self) -> str:
        return "{" + self.name + "}"


@functools.cache
def core_catalog() -> Catalog:
    """tlcore's own catalogs, as one."""
    return Catalog(LOCALES, *DOMAINS)


def normalize_language(text: str | None) -> str | None:
    """`"ja"`, `"ja_JP.UTF-8"`, `"JA"` -> `"ja"`; None for a language not in `LANGUAGES`."""
    if not text:
        return None
    code = text.strip().replace("-", "_").split("_")[0].split(".")[0].lower()
    return code if code in LANGUAGES else None


def language_from_environment() -> str:
    """`TLCORE_LANG` if set, else the locale's language (`LC_ALL`, `LC_MESSAGES`, `LANG`), else English."""
    from tlcore.settings import language

    chosen = language()
    if chosen is not None:
        return chosen
    for variable in ("LC_ALL", "LC_MESSAGES", "LANG"):
        found = normalize_language(os.environ.get(variable))
        if found is not None:
            return found
    return normalize_language(locale.getlocale()[0]) or DEFAULT_LANGUAGE
