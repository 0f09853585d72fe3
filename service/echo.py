"""Quoting what a client sent in a message: at most a short prefix of it.

Error details name the input they are about (an id, a word, a content type), but a client can
send an id of 60,000 characters or a thousand odd words; the answer must not grow with them.
"""
from __future__ import annotations

from collections.abc import Iterable

ECHO_CHARS = 40  # characters of one client value a message quotes
ECHO_ITEMS = 5  # values of a list a message quotes


def echo(value: str, limit: int = ECHO_CHARS) -> str:
    """``repr`` of ``value``, or of its first ``limit`` characters followed by its length."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}... ({len(value)} characters)"


def echo_words(values: Iterable[str], limit: int = ECHO_ITEMS, chars: int = ECHO_CHARS) -> str:
    """The first ``limit`` values, comma-separated, each cut to ``chars``, then how many more."""
    values = list(values)
    shown = [v if len(v) <= chars else f"{v[:chars]}... ({len(v)} characters)" for v in values[:limit]]
    more = f" and {len(values) - limit} more" if len(values) > limit else ""
    return ", ".join(shown) + more


def cut(text: str, limit: int) -> str:
    """``text`` itself, or its first ``limit`` characters and a note that the rest was left out."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text) - limit} more characters)"
