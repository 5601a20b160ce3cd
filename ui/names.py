"""Names people give (runs, datasets, class folders, files) shown as text, never as markup.

Streamlit renders Markdown in titles, captions, notices, labels and toasts, with directives of its own
(`:red[...]`, `:material/icon:`, `$...$` for LaTeX). A name is someone else's input on a shared server:
shown raw, `![x](http://host/x.png)` would fetch a remote image for every viewer and `[click](...)`
would be a live link. Every name passes through one of these helpers on its way to the screen:

- `md(name)`: for any place that renders Markdown: every Markdown and Streamlit directive character
  escaped, line breaks and bidirectional-override characters removed, long names shortened;
- `plain(name)`: for places that show plain text (select boxes, tables, chart legends, file names):
  the same cleaning and shortening, no escapes;
- `full(name)`: the whole name, cleaned;
- `tooltip(name)`: the whole name for a tooltip (`help=`, Markdown too) beside a shortened one;
- `file_name(name)`: the name as a file name for a download;
- `md_message(message)`: a tlcore sentence for a place that renders Markdown: the catalog's words as they
  are, every value it quotes (a run's name, a path, an exception's own words) escaped as `md` escapes.
"""

from __future__ import annotations

import re
import unicodedata

from tlcore.i18n import Message, literal

SHOWN_CHARACTERS = 60
"""Names longer than this are shortened in the middle (their start and end both tell runs apart)."""
QUOTED_CHARACTERS = 300
"""A value other than a name quoted in a sentence (a path, an exception's words) is shortened beyond this."""
NAME_PARAMETERS = frozenset({"name", "run_name"})
"""tlcore's sentences quote people's names under these parameters: shortened as any shown name is."""

# Characters that can start inline Markdown, HTML, a link or image, a table cell, a Streamlit directive
# (`:red[...]`, `:material/x:`, `:smile:`) or LaTeX (`$`), escaped with a backslash (CommonMark lets any
# ASCII punctuation be escaped; it shows the character).
_MARKDOWN = re.compile(r"([\\`*_\[\]()!<>&#|~:$@])")
# Escapes do not stop GitHub-flavoured Markdown's autolinks ("http\://host" is still a live link, and so
# are "www.host" and "a\@b.c"): a word joiner (U+2060, invisible) after the scheme or "www" and before "@"
# breaks them.
_AUTOLINK = re.compile(r"(?i)\b(https?|ftp|mailto|www)(?=\\:|\.)")
_JOINER = "\u2060"
# Line and paragraph breaks, and the characters that reorder text (a right-to-left override can make
# "gpj.exe" read as "exe.jpg").
_BREAKS = re.compile("[\r\n\t\v\f\u2028\u2029\u0085]+")
_BIDI = re.compile("[\u200e\u200f\u202a-\u202e\u2066-\u2069\u061c]")


def full(name: object) -> str:
    """The whole name as one line of plain text: breaks become spaces, control and reordering characters go."""
    text = _BIDI.sub("", _BREAKS.sub(" ", str(name)))
    text = "".join(char for char in text if unicodedata.category(char) != "Cc")
    return " ".join(text.split())


def plain(name: object, limit: int = SHOWN_CHARACTERS) -> str:
    """The name as plain text, at most `limit` characters (shortened in the middle with "…")."""
    text = full(name)
    if len(text) <= limit:
        return text
    keep = limit - 1
    return text[: keep - keep // 2] + "…" + text[len(text) - keep // 2 :]


def md(name: object, limit: int = SHOWN_CHARACTERS) -> str:
    """The name for a place that renders Markdown: shown exactly as `plain` shows it, nothing rendered."""
    escaped = _MARKDOWN.sub(r"\\\1", plain(name, limit)).replace("\\@", _JOINER + "\\@")
    return _AUTOLINK.sub(r"\1" + _JOINER, escaped)


def is_shortened(name: object, limit: int = SHOWN_CHARACTERS) -> bool:
    """Whether `plain` shortens the name (then show `full` in a tooltip)."""
    return len(full(name)) > limit


def tooltip(name: object) -> str | None:
    """The whole name for a `help=` tooltip beside a shortened one (tooltips render Markdown), else None."""
    return md(name, limit=len(full(name))) if is_shortened(name) else None


def file_name(name: object, fallback: str) -> str:
    """A name as a file name to download under: no folders, no characters file systems refuse."""
    text = re.sub(r'[\\/:*?"<>|]+', "-", full(name)).strip(" .-")
    return plain(text, 80).replace("…", "-") if text else fallback


class _Escaped(str):
    """A value escaped for Markdown that a template's `{name!r}` still shows as the quoted name."""

    def __repr__(self) -> str:
        return "'" + self + "'"


def md_message(message: Message) -> Message:
    """`message` with every text value in it escaped for Markdown (nested messages too): tlcore's sentences
    are the catalog's, the values they quote come from people and files."""
    if message.key is None:
        return literal(md(message.text or "", limit=1000))
    return Message(
        message.key,
        {
            name: md_message(value)
            if isinstance(value, Message)
            else _Escaped(md(value, SHOWN_CHARACTERS if name in NAME_PARAMETERS else QUOTED_CHARACTERS))
            if isinstance(value, str)
            else value
            for name, value in message.params.items()
        },
    )
