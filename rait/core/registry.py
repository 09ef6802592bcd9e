"""One registry helper for everything rait looks up by name: methods, generation backends, data formats,
artifact kinds.

A :class:`Registry` maps names to objects; an unknown name is a :class:`~rait.core.config.ConfigError` that lists the
known names and suggests the closest one. A registry may be given a ``load`` callable that imports the modules
which register into it (so ``rait --help`` stays fast and the registry is complete when first asked).

Example:
    >>> from rait.core.registry import Registry
    >>> colours = Registry("colour")
    >>> _ = colours.add("red", 1), colours.add("green", 2)
    >>> colours.get("green")
    2
    >>> colours.get("gren")
    Traceback (most recent call last):
    ...
    rait.core.config.ConfigError: unknown colour 'gren' (did you mean 'green'?); known: green, red
"""

from __future__ import annotations

import difflib
from typing import Callable, Generic, Iterable, Iterator, TypeVar

T = TypeVar("T")


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``known`` to ``name``, or ``''`` when none is close.

    >>> did_you_mean("temprature", ["temperature", "top_p"])
    " (did you mean 'temperature'?)"
    >>> did_you_mean("zzz", ["temperature"])
    ''
    """
    close = difflib.get_close_matches(str(name), [str(k) for k in known], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def unknown_message(what: str, name: str, known: Iterable[str]) -> str:
    """``unknown WHAT 'name' (did you mean ...?); known: a, b, c`` (the one wording used everywhere)."""
    known = sorted(str(k) for k in known)
    return f"unknown {what} {name!r}{did_you_mean(name, known)}; known: {', '.join(known)}"


class Registry(Generic[T]):
    """Named objects of one kind, with did-you-mean errors.

    Args:
        what: what the names name, for messages (``method``, ``backend``, ``data format``).
        load: optional callable importing the modules that register into this registry; run once, lazily.
    """

    def __init__(self, what: str, load: Callable[[], None] | None = None):
        self.what = what
        self._items: dict[str, T] = {}
        self._load = load
        self._loaded = load is None

    def add(self, name: str, obj: T) -> T:
        """Register ``obj`` as ``name`` (a later registration of the same name replaces the earlier one)."""
        self._items[name] = obj
        return obj

    def _ensure(self) -> None:
        if not self._loaded:
            self._loaded = True  # set first: the loader's imports register into this registry
            assert self._load is not None
            self._load()

    def get(self, name: str) -> T:
        """The object registered as ``name``; a ConfigError with a did-you-mean otherwise."""
        self._ensure()
        if name not in self._items:
            from rait.core.config import ConfigError

            raise ConfigError(unknown_message(self.what, name, self._items))
        return self._items[name]

    def names(self) -> list[str]:
        """Registered names, sorted."""
        self._ensure()
        return sorted(self._items)

    def items(self) -> dict[str, T]:
        """``{name: object}``, sorted by name."""
        self._ensure()
        return {k: self._items[k] for k in sorted(self._items)}

    def __contains__(self, name: object) -> bool:
        self._ensure()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
