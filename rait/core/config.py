"""Typed stage configs: dataclasses with help text, YAML loading and dotted command-line overrides.

Every stage config is a dataclass whose fields are declared with :func:`option` (a default plus a one-line
help). A run config nests stage configs by section name. Values are validated in ``__post_init__``.

Example:
    >>> from dataclasses import dataclass
    >>> from rait.core.config import option, from_dict, apply_overrides
    >>> @dataclass
    ... class EvalCfg:
    ...     batch_size: int = option(16, "prompts per generation batch")
    ...     prompt: str = option("basic", "prompt style", choices=("basic", "refuse"))
    >>> cfg = from_dict(EvalCfg, {"batch_size": 8})
    >>> apply_overrides(cfg, ["prompt=refuse"]).prompt
    'refuse'
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

import yaml

from rait.errors import RaitError

T = TypeVar("T")


class ConfigError(RaitError, ValueError):
    """A config value or file is invalid; the message names the file/key."""


def option(default: Any, help: str, choices: Sequence[Any] | None = None, added: bool = False) -> Any:
    """Declare a config field with a default, one-line help and optional allowed values.

    ``added=True`` marks a field added after runs exist: it is left out of the config's ``repr`` (which stage
    keys hash), so existing runs keep their keys, and :func:`set_added` returns it where it differs from its
    default, for the key to include it then.
    """
    meta = {"help": help, "choices": tuple(choices) if choices else None, "added": added}
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda d=default: type(d)(d), metadata=meta, repr=not added)
    return dataclasses.field(default=default, metadata=meta, repr=not added)


def set_added(cfg: Any) -> dict[str, Any]:
    """The ``added`` fields of a config dataclass whose value differs from their default (see :func:`option`).

    Example:
        >>> from dataclasses import dataclass
        >>> @dataclass
        ... class C:
        ...     a: int = option(1, "old field")
        ...     b: float = option(1.0, "new field", added=True)
        >>> repr(C(b=0.5)), set_added(C()), set_added(C(b=0.5))
        ('C(a=1)', {}, {'b': 0.5})
    """
    return {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)
            if f.metadata.get("added") and getattr(cfg, f.name) != f.default}


def check_choices(cfg: Any) -> None:
    """Raise ConfigError if any field with ``choices`` holds another value; call from ``__post_init__``."""
    for f in dataclasses.fields(cfg):
        ch = f.metadata.get("choices")
        if ch and getattr(cfg, f.name) not in ch:
            raise ConfigError(f"{type(cfg).__name__}.{f.name}={getattr(cfg, f.name)!r}: expected one of {list(ch)}")


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Coerce a YAML/CLI value to a field's annotated type."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return _coerce_union(value, tp, where)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping for section {tp.__name__}, got {value!r}")
        return from_dict(tp, value, where=where)
    if origin in (list, tuple, Sequence) or tp in (list, tuple):
        return _coerce_list(value, tp, where)
    if origin is dict or tp is dict:
        if isinstance(value, str):
            value = yaml.safe_load(value)
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is Any:
        return value
    for scalar, coerce in _SCALARS:
        if tp is scalar:
            return coerce(value, where)
    return value


def _coerce_union(value: Any, tp: Any, where: str) -> Any:
    """``X | None`` and other unions: null spellings, then each member type in turn."""
    args = typing.get_args(tp)
    if value is None and type(None) in args:
        return None
    if isinstance(value, str) and value.lower() in ("none", "null") and type(None) in args:
        return None
    for a in args:
        if a is type(None):
            continue
        try:
            return _coerce(value, a, where)
        except (ConfigError, ValueError, TypeError):
            continue
    kinds = [a for a in args if a is not type(None)]
    if kinds and all(a in (int, float) for a in kinds):
        raise ConfigError(f"{where}: expected a number{' or null' if type(None) in args else ''}, got {value!r}")
    raise ConfigError(f"{where}: cannot read {value!r} as {tp}")


def _coerce_list(value: Any, tp: Any, where: str) -> Any:
    """A list (or tuple) from a YAML list, a ``[...]`` string or a comma-separated string."""
    if isinstance(value, str):
        value = yaml.safe_load(value) if value.startswith("[") else [v.strip() for v in value.split(",")
                                                                       if v.strip()]
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{where}: expected a list, got {value!r}")
    args = typing.get_args(tp)
    inner = args[0] if args else Any
    out = [_coerce(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
    return tuple(out) if typing.get_origin(tp) is tuple else out


def _coerce_bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
        return True
    if isinstance(value, str) and value.lower() in ("false", "0", "no", "off"):
        return False
    raise ConfigError(f"{where}: expected true/false, got {value!r}")


def _coerce_int(value: Any, where: str) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: expected an integer, got {value!r}") from None
    if f != int(f):
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    return int(f)


def _coerce_float(value: Any, where: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: expected a number, got {value!r}") from None


def _coerce_str(value: Any, where: str) -> str:
    if isinstance(value, (dict, list)):
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return str(value)


_SCALARS: tuple[tuple[type, Callable[[Any, str], Any]], ...] = (
    (bool, _coerce_bool), (int, _coerce_int), (float, _coerce_float), (str, _coerce_str))


def from_dict(cls: type[T], data: dict[str, Any] | None, where: str | None = None) -> T:
    """Build a config dataclass from a mapping; unknown keys are an error naming ``where``."""
    data = dict(data or {})
    where = where or cls.__name__
    hints = _hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names, key=str)
    if unknown:
        from rait.core.registry import did_you_mean

        hints = "; ".join(f"unknown key {k!r}{did_you_mean(k, names)}" for k in unknown)
        raise ConfigError(f"{where}: {hints}; known: {', '.join(sorted(names))}")
    for f in dataclasses.fields(cls):  # a nested section given in part keeps the field's own defaults
        if isinstance(data.get(f.name), dict) and dataclasses.is_dataclass(hints[f.name]) \
                and f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            data[f.name] = {**to_dict(f.default_factory()), **data[f.name]}  # type: ignore[misc]
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain dict of a config (nested dataclasses become dicts)."""
    return dataclasses.asdict(cfg)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The top-level mapping of a YAML file; ConfigError naming the file (and line) otherwise."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{line}: invalid YAML ({getattr(e, 'problem', e)})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def load_yaml(cls: type[T], path: str | Path, overrides: Sequence[str] = ()) -> T:
    """Load a config dataclass from a YAML file, then apply ``key.sub=value`` overrides."""
    cfg = from_dict(cls, read_yaml(path), where=str(path))
    return apply_overrides(cfg, overrides)


def apply_overrides(cfg: T, overrides: Sequence[str], where: str = "--set") -> T:
    """Return a copy of ``cfg`` with dotted ``a.b=value`` overrides applied (values parsed as YAML scalars).

    A key must name a field (nested sections by ``section.field``); inside a free-form mapping field (``dict``,
    such as a run config's ``probe:`` settings) any key may be set, even one the file does not mention; the
    config's own validation then checks it. Unknown keys get a did-you-mean.
    """
    data = to_dict(cfg)
    for ov in overrides:
        if "=" not in ov:
            raise ConfigError(f"override {ov!r}: expected key=value")
        key, raw = ov.split("=", 1)
        key = key.strip().lstrip("-")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        _set_path(type(cfg), data, key.split("."), value, ov)
    return from_dict(type(cfg), data, where=where)


def _set_path(cls: Any, node: dict[str, Any], parts: list[str], value: Any, ov: str) -> None:
    """Set ``node[parts...] = value``, checking each part against the fields of ``cls`` (None: free-form)."""
    from rait.core.registry import did_you_mean

    head, rest = parts[0], parts[1:]
    if cls is not None:
        hints = _hints(cls)
        if head not in hints:
            key = ".".join(p for p in ov.split("=", 1)[0].strip().lstrip("-").split("."))
            raise ConfigError(f"override {ov!r}: unknown key {key!r}{did_you_mean(head, hints)}")
        tp = hints[head]
        sub = tp if dataclasses.is_dataclass(tp) else None
        free = tp is dict or typing.get_origin(tp) is dict
    else:
        sub, free = None, True
    if not rest:
        node[head] = value
        return
    if sub is None and not free:
        raise ConfigError(f"override {ov!r}: {head!r} is not a config section")
    if not isinstance(node.get(head), dict):
        if sub is not None or node.get(head) is not None:
            raise ConfigError(f"override {ov!r}: {head!r} is not a config section")
        node[head] = {}
    _set_path(sub, node[head], rest, value, ov)


def help_lines(cls: type, prefix: str = "") -> list[str]:
    """``key (type, default): help`` lines for every field, recursing into nested sections."""
    out = []
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            out.extend(help_lines(tp, prefix + f.name + "."))
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        ch = f.metadata.get("choices")
        extra = f" one of {list(ch)}" if ch else ""
        out.append(f"{prefix}{f.name} (default {default!r}){extra}: {f.metadata.get('help', '')}")
    return out


def add_config_arguments(parser: Any, cls: type, aliases: dict[str, Sequence[str]] | None = None,
                         config_flag: bool = True) -> None:
    """Add ``--config YAML``, ``--set key=value`` and one flag per field of ``cls`` (nested: ``--section.field``).

    Args:
        parser: an argparse parser.
        cls: the stage's config dataclass.
        aliases: extra flag names per field, e.g. ``{"lr": ["learning_rate"]}`` (transformers' names).
        config_flag: add ``--config`` (off where the subcommand takes its YAML as a positional argument).
    """
    if config_flag:
        parser.add_argument("--config", help="YAML file with this stage's settings (flags below override it)")
    parser.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="dotted overrides applied last, e.g. --set batch_size=8")
    _add_field_flags(parser, cls, "", aliases or {})


def _add_field_flags(parser: Any, cls: type, prefix: str, aliases: dict[str, Sequence[str]]) -> None:
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            _add_field_flags(parser, tp, f"{prefix}{f.name}.", aliases)
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        ch = f.metadata.get("choices")
        extra = f" {{{','.join(map(str, ch))}}}" if ch else ""
        names = [f"--{prefix}{f.name.replace('_', '-')}", f"--{prefix}{f.name}"]
        names += [f"--{prefix}{a}" for a in aliases.get(prefix + f.name, ())]
        kw: dict[str, Any] = {"nargs": "?", "const": "true"} if tp is bool else {}
        parser.add_argument(*dict.fromkeys(names), dest="cfg__" + (prefix + f.name).replace(".", "__"),
                            default=argparse.SUPPRESS, metavar="V", **kw,
                            help=f"{f.metadata.get('help', '')}{extra} (default: {default!r})".replace("%", "%%"))


def config_from_args(cls: type[T], args: Any) -> T:
    """Build ``cls`` from parsed args: YAML (``--config``) < ``--field`` flags < ``--set`` overrides."""
    data: dict[str, Any] = {}
    where = cls.__name__
    if getattr(args, "config", None):
        data = read_yaml(args.config)
        where = str(args.config)
    for k, v in vars(args).items():
        if k.startswith("cfg__"):
            *sections, name = k[5:].split("__")
            node = data
            for sec in sections:
                node = node.setdefault(sec, {}) if isinstance(node.get(sec, {}), dict) else node
            node[name] = v  # raw text: from_dict coerces it to the field's type
    cfg = from_dict(cls, data, where=where)
    return apply_overrides(cfg, getattr(args, "set", []) or [])
