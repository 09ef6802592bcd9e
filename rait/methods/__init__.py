"""Registry of RAIT data-construction methods: one file per method, each a pure ``build``.

A method module calls :func:`register` at import time. ``build(table, cfg)`` takes the knowledge-table rows
(dicts, schema in docs/artifacts.md; rehearsed columns merged in when given) and the method's config
dataclass, and returns ``(rows, summary)``: TRL conversational training rows and a JSON-able summary.

Example:
    >>> from rait.methods import available
    >>> "cor_rait" in available()
    True
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import Any, Callable, Protocol


class Build(Protocol):
    def __call__(self, table: list[dict[str, Any]], cfg: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]: ...


@dataclass(frozen=True)
class Method:
    """A registered method: its name, one-line description, config class and build function."""

    name: str
    description: str
    config_cls: type
    build: Build
    needs: tuple[str, ...] = ()  # table columns the method requires beyond the base schema


_REGISTRY: dict[str, Method] = {}


def register(name: str, description: str, config_cls: type, needs: tuple[str, ...] = ()) -> Callable[[Build], Build]:
    """Decorator registering ``build`` under ``name``."""

    def deco(fn: Build) -> Build:
        _REGISTRY[name] = Method(name, description, config_cls, fn, needs)
        return fn

    return deco


def _load_all() -> None:
    for m in pkgutil.iter_modules(__path__):
        if not m.name.startswith("_"):
            importlib.import_module(f"{__name__}.{m.name}")


def available() -> dict[str, Method]:
    """All registered methods by name (imports every module in this package)."""
    _load_all()
    return dict(sorted(_REGISTRY.items()))


def get(name: str) -> Method:
    """The method registered as ``name``; a clear error listing the known names otherwise."""
    methods = available()
    if name not in methods:
        raise KeyError(f"unknown method {name!r}; available: {', '.join(methods)}")
    return methods[name]
