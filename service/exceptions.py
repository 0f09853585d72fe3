"""Every error the service raises on purpose, and the HTTP status of each: :data:`HTTP_STATUS`, the one table.

A class's status is the table's entry for the nearest class in its MRO (:func:`status_of`), so a
subclass answers as its parent unless the table names it. The errors of a bad input come from
:mod:`models.preprocess` (the model's preprocessing raises them too) and are re-exported here:

=====================================  ======  ================================================
class                                  status  raised for
=====================================  ======  ================================================
``InputError``                         422     an invalid request; ``field`` names the field
``ImageError`` (an ``InputError``)     422     an image that cannot be decoded
``InvalidFields`` (an ``InputError``)  422     fields of a body a route parses itself, listed
``TooLarge`` (an ``InputError``)       413     over a size limit (the message names it):
                                               ``ImageTooLarge`` (pixels, decoding memory),
                                               ``UploadTooLarge`` (bytes), ``BatchTooLarge``
``UnsupportedMediaType``               415     a content type the route does not take
``NotFound``                           404     an id that is not in the published index
``Busy``                               503     a full work queue (with ``Retry-After``)
=====================================  ======  ================================================

:mod:`service.errors` renders them (one body shape); :class:`StartupError` stops the server
before it serves anything. No module here imports FastAPI: the CLI raises the same errors.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from models.preprocess import ImageError, ImageTooLarge, InputError, TooLarge
from service.echo import field_errors, summary

__all__ = [
    "InputError", "ImageError", "TooLarge", "ImageTooLarge", "UploadTooLarge", "BatchTooLarge", "InvalidFields",
    "UnsupportedMediaType", "NotFound", "Busy", "StartupError", "HTTP_STATUS", "status_of",
]  # fmt: skip


class UploadTooLarge(TooLarge):
    """An upload over the byte limit."""


class BatchTooLarge(TooLarge):
    """More inputs in one request than the configured batch limit."""


class UnsupportedMediaType(InputError):
    """A request body of a content type the route does not take."""


class InvalidFields(InputError):
    """Fields of a body the route parses itself that fail validation, all of them listed.

    Parameters
    ----------
    errors : pydantic's ``ValidationError.errors()`` of the body's model.
    where : what the locations are relative to (``"body"``).
    """

    def __init__(self, errors: Iterable[Mapping[str, Any]], where: str = "body"):
        self.errors = field_errors(errors, (where,))
        super().__init__(summary(self.errors))


class NotFound(LookupError):
    """An id that is not in the published index (or whose file is gone), or a bundle file that is absent."""


class Busy(Exception):
    """Too many requests of one kind of work are already waiting."""

    def __init__(self, kind: str, retry_after_s: int):
        super().__init__(f"the service is busy with {kind} work; retry in {retry_after_s} s")
        self.kind, self.retry_after_s = kind, retry_after_s


class StartupError(RuntimeError):
    """The service cannot start: missing bundle or index, or versions that do not match."""


HTTP_STATUS: dict[type[Exception], int] = {
    InputError: 422,
    TooLarge: 413,
    UnsupportedMediaType: 415,
    NotFound: 404,
    Busy: 503,
}


def status_of(exc: Exception) -> int:
    """The HTTP status of ``exc``: :data:`HTTP_STATUS` of the nearest class in its MRO (500 if none)."""
    for cls in type(exc).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 500
