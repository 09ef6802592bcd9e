"""Exceptions whose messages are shown to users as-is (no traceback): they name the file/line and what was expected.

Example:
    >>> from rait.errors import DataError
    >>> str(DataError("x.jsonl", 3, "missing field 'question'"))
    "x.jsonl:3: missing field 'question'"
"""

from __future__ import annotations


class RaitError(Exception):
    """Base class of user-facing errors (the CLI prints the message and exits 2)."""


class DataError(RaitError, ValueError):
    """Bad input data; the message is ``file:line: what is wrong``."""

    def __init__(self, path: object, line: int | None, message: str):
        self.path, self.line, self.message = str(path), line, message
        loc = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{loc}: {message}")


class ModelError(RaitError):
    """A model spec cannot be resolved or loaded."""
