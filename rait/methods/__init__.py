"""The method contract: one file per method, registered next to its function with :func:`register`.

A registration holds the method's name, one-line description, config class (inheriting
:class:`rait.methods._common.CommonConfig` for trained methods), the **artifacts it needs** (names of artifact
kinds: ``table``, ``rehearsed_table``, ``grads``; see :mod:`rait.run.providers`), the table columns it reads, its
display name and paper reference. ``rait run`` derives every stage from these declarations, so a method that
needs e.g. the rehearsed table or the gradient store is one file.

* A **trained** method (``trains=True``, the default) registers a pure ``build(table, cfg) -> (rows, Summary)``:
  TRL conversational training rows and a typed :class:`Summary` (one schema for every method). Needed artifacts
  reach it as table columns (``rehearsed_table`` merges ``correctness_rehearsed`` / ``certainty_rehearsed`` /
  ``flow``) or as the path in the config field the artifact kind names (``grads`` -> ``grads_dir``).
* A **training-free** method (``trains=False``) registers ``evaluate(ctx: EvalContext) -> None`` instead: it writes
  the method's eval directory for one test set (``items.jsonl`` + ``metrics.json``, as ``rait eval`` does), e.g.
  by evaluating M0 with a prompt (Init-Basic, Init-Refuse) or by deciding per test item from pool artifacts.

A method outside the package is one Python file that calls :func:`register`; name it under ``plugins:`` in a run
config (or ``rait build --plugin FILE``) and it is imported before the methods are resolved (docs/extending.md).

Example:
    >>> from rait.methods import available, get
    >>> "cor_rait" in available(), get("craft").needs, get("grait").display
    (True, ('table', 'rehearsed_table'), 'GRAIT')
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import pkgutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol

from rait.core.registry import Registry

#: the methods a run compares when its config names none (the demo's six)
DEFAULT_METHODS = ("init_basic", "init_refuse", "van", "cor_rait", "craft", "grait")

#: the THS reference method (M0, BASIC prompt): evaluated once, every other method's THS is relative to it
REFERENCE = "init_basic"

#: the methods every other one is compared with in the paired Δ tables of the report (when in the run)
DELTA_BASES = (REFERENCE, "van")

#: fields of :class:`Summary` shared by every method (the rest of a method's summary goes to ``details``)
SUMMARY_FIELDS = ("method", "kind", "seed", "as_released", "n_table", "n_rows", "n_unique_ids", "counts", "pools",
                  "quotas", "shortfall", "dropped", "sizing", "thresholds")


@dataclass
class Summary:
    """What a build did, one schema for every method (``summary.json``; ``decisions.jsonl`` holds ``decisions``).

    ``counts`` are rows per label, ``pools`` candidate rows per pool, ``quotas`` the rows asked for per label,
    ``shortfall`` quota minus rows available, ``dropped`` table rows not used per reason, ``decisions`` one record
    per table id; method-specific values go to ``details``. Mapping access (``summary["counts"]``) reads a field or
    else a ``details`` entry.
    """

    method: str
    kind: str = ""
    seed: int | None = None
    as_released: bool = False
    n_table: int = 0
    n_rows: int = 0
    n_unique_ids: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    pools: dict[str, int] = field(default_factory=dict)
    quotas: dict[str, int] = field(default_factory=dict)
    shortfall: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    sizing: dict[str, Any] = field(default_factory=dict)
    thresholds: dict[str, Any] = field(default_factory=dict)
    decisions: dict[str, dict[str, Any]] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Summary":
        """Shared keys become fields, ``decisions`` too, everything else goes to ``details``."""
        known = {k: d[k] for k in (*SUMMARY_FIELDS, "decisions") if k in d}
        details = {**dict(d.get("details") or {}), **{k: v for k, v in d.items()
                                                     if k not in known and k != "details"}}
        return cls(**known, details=details)

    def to_dict(self, decisions: bool = False) -> dict[str, Any]:
        """JSON-able dict (``summary.json`` layout); ``decisions`` only when asked."""
        out = dataclasses.asdict(self)
        if not decisions:
            out.pop("decisions")
        return out

    def __getitem__(self, key: str) -> Any:
        if key in SUMMARY_FIELDS or key in ("decisions", "details"):
            return getattr(self, key)
        return self.details[key]

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default


@dataclass
class EvalContext:
    """What a training-free method's ``evaluate`` hook gets for one test set."""

    method: str
    cfg: Any  # the method's config
    model: str  # M0 spec
    dtype: str
    test: str  # test-set name (``id`` / ``ood``)
    data: Path  # test items (JSONL)
    out: Path  # eval directory to write (items.jsonl, metrics.json, manifest.json)
    reference: Path | None  # eval directory of the reference method on this test (None for the reference itself)
    artifacts: dict[str, Path] = field(default_factory=dict)  # needed artifact kind -> path
    eval: Any = None  # the run's eval settings (rait.stages.evaluate.EvalConfig)


class Build(Protocol):
    def __call__(self, table: list[dict[str, Any]], cfg: Any) -> tuple[list[dict[str, Any]], Summary]: ...


@dataclass(frozen=True)
class Method:
    """A registered method (see the module docstring)."""

    name: str
    description: str
    config_cls: type
    build: Build | None = None  # trained methods
    needs: tuple[str, ...] = ("table",)  # artifact kinds (rait.run.providers)
    columns: tuple[str, ...] = ()  # table columns it reads beyond the base schema
    display: str = ""
    paper: str = ""
    trains: bool = True
    evaluate: Callable[[EvalContext], None] | None = None  # training-free methods
    random_draw: bool = False  # its label set is a random draw: with several seeds, one build per training seed


def _load_builtin() -> None:
    for m in pkgutil.iter_modules(__path__):
        if not m.name.startswith("_"):
            importlib.import_module(f"{__name__}.{m.name}")


REGISTRY: Registry[Method] = Registry("method", _load_builtin)


def register(name: str, description: str, config_cls: type, needs: tuple[str, ...] = ("table",),
             columns: tuple[str, ...] = (), display: str | None = None, paper: str = "",
             trains: bool = True, random_draw: bool = False) -> Callable[[Callable], Callable]:
    """Decorator registering a method's ``build`` (or, with ``trains=False``, its ``evaluate`` hook).

    Args:
        name: registry name (config key, directory name).
        description: one line for ``rait build --list``.
        config_cls: its config dataclass (trained methods: a subclass of ``CommonConfig``).
        needs: artifact kinds it reads (``rait.run.providers.KINDS``); trained methods need at least ``table``.
        columns: table columns it requires (checked by ``rait build`` with file and line).
        display: name in reports (default: ``name``).
        paper: reference (authors, year, arXiv id).
        trains: False for training-free methods (the decorated function is then ``evaluate(ctx)``).
        random_draw: the label set is a random draw (Van-Tuning, Cor-RAIT, R-Tuning): with several training
            seeds, ``rait run`` builds one label set per seed, drawn with that seed.
    """
    if trains:
        from rait.methods._common import CommonConfig

        if not (isinstance(config_cls, type) and issubclass(config_cls, CommonConfig)):
            raise TypeError(f"method {name!r}: config class must inherit rait.methods._common.CommonConfig")

    def deco(fn: Callable) -> Callable:
        REGISTRY.add(name, Method(name, description, config_cls, fn if trains else None, tuple(needs),
                                  tuple(columns), display or name, paper, trains, None if trains else fn,
                                  random_draw))
        return fn

    return deco


def available() -> dict[str, Method]:
    """All registered methods by name (imports every module of this package)."""
    return REGISTRY.items()


def get(name: str) -> Method:
    """The method registered as ``name``; a ConfigError with a did-you-mean otherwise."""
    return REGISTRY.get(name)


def display_name(name: str) -> str:
    """A method's display name (the name itself when it is not registered)."""
    return REGISTRY.get(name).display if name in REGISTRY else name


def paper_sizes(kind: str) -> dict[str, int]:
    """The papers' pool, total rows and seed for a task kind (``oeqa`` / ``mcqa``; see ``rait.methods._common``)."""
    from rait.methods._common import PAPER

    return dict(PAPER[kind])


def load_plugin(spec: str | Path) -> None:
    """Import a method file (``path/to/my_method.py``) or module (``pkg.mod``) so that its ``register`` runs.

    Raises:
        ConfigError: the file does not exist or the module cannot be imported.
    """
    from rait.core.config import ConfigError

    s = str(spec)
    if s.endswith(".py"):
        path = Path(s).resolve()
        if not path.is_file():
            raise ConfigError(f"plugin {s}: file not found")
        mod_name = f"rait_plugin_{path.stem}_{hashlib.sha256(str(path).encode()).hexdigest()[:12]}"
        loader = importlib.util.spec_from_file_location(mod_name, path)
        module = importlib.util.module_from_spec(loader)  # type: ignore[arg-type]
        sys.modules[mod_name] = module
        loader.loader.exec_module(module)  # type: ignore[union-attr]
        return
    try:
        importlib.import_module(s)
    except ModuleNotFoundError as e:
        raise ConfigError(f"plugin {s!r}: module not found ({e.name})") from None
