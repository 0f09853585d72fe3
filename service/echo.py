"""Quoting what a client sent in a message: at most a short prefix of it.

Error details name the input they are about (an id, a word, a content type), but a client can
send an id of 60,000 characters or a thousand odd words; the answer must not grow with them. A
field error (:func:`field_errors`) quotes its location and message the same way.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

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


MAX_DETAIL_CHARS = 500  # an error detail longer than this is cut (every message quotes its input short already)
MAX_LOC_CHARS = ECHO_CHARS  # a location part (a field name or a client's dict key) longer than this is cut


def field_errors(errors: Iterable[Mapping[str, Any]], prefix: tuple = ()) -> list[dict]:
    """``[{loc, msg, type}]`` of pydantic or FastAPI errors, each ``loc`` after ``prefix``: never
    the input itself (it may be huge or binary), and a location part (a dict key the client chose)
    cut to ``MAX_LOC_CHARS``."""
    return [{"loc": [cut(str(p), MAX_LOC_CHARS) if not isinstance(p, int) else p for p in (*prefix, *e.get("loc", ()))],
             "msg": cut(str(e.get("msg", "")), MAX_DETAIL_CHARS), "type": str(e.get("type", ""))} for e in errors]  # fmt: skip


def summary(errors: list[dict]) -> str:
    """One line for a list of :func:`field_errors`: the first one, located, and how many more."""
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(p) for p in first["loc"])
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first['msg']}{more}" if where else f"{first['msg']}{more}"
