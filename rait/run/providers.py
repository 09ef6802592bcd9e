"""Artifact providers: for each artifact kind a method can need, the stage of ``rait run`` that writes it.

A method declares ``needs=("table", "rehearsed_table")`` (see :mod:`rait.methods`); the plan takes the closure
of those kinds over :data:`KINDS` and adds each provider's stage once, shared by every method that needs it.
A provider names its kind, its stage, the kinds its stage reads, where the artifact lives under the run root,
how the stage is made from the run's typed settings, and how the artifact reaches a method's build:

* ``table`` is the knowledge table itself; ``rehearsed_table`` is merged into it by ``rait build`` (columns
  ``correctness_rehearsed``, ``certainty_rehearsed``, ``flow``);
* other kinds are handed over as a path in the method-config field ``build_field`` (``grads`` -> ``grads_dir``).

Adding a kind (e.g. ``hidden_states``: M0's hidden states of the pool items) is one :func:`provide` call with a
stage maker; docs/extending.md shows one.

Example:
    >>> from rait.run.providers import KINDS, closure
    >>> closure(["grads"])
    ['table', 'rehearsed_model', 'grads']
    >>> KINDS.get("rehearsed_table").stage
    'probe_mr'
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

from rait.core.registry import Registry

if TYPE_CHECKING:
    from rait.run.pipeline import Plan, Stage


@dataclass(frozen=True)
class Provider:
    """How one artifact kind is produced in a run (module docstring)."""

    kind: str
    stage: str  # stage name in the plan
    needs: tuple[str, ...]  # artifact kinds the stage reads
    path: Callable[[Path], Path]  # the artifact under the run root
    out: Callable[[Path], Path]  # the stage's directory under the run root
    make: Callable[["Plan"], "Stage"]  # the stage, from the plan (its typed settings and paths)
    build_field: str | None = None  # method-config field that receives the path (None: table / merged by build)


KINDS: Registry[Provider] = Registry("artifact kind")


def provide(p: Provider) -> Provider:
    """Register an artifact provider (replaces one of the same kind)."""
    return KINDS.add(p.kind, p)


def closure(kinds: Iterable[str]) -> list[str]:
    """The kinds needed to make ``kinds``, dependencies first (in registration order)."""
    want: set[str] = set()

    def visit(k: str) -> None:
        if k not in want:
            want.add(k)
            for d in KINDS.get(k).needs:
                visit(d)

    for k in kinds:
        visit(k)
    return [k for k in KINDS._items if k in want]  # registration order is a topological order


def deps_of(kinds: Iterable[str]) -> list[str]:
    """Stage names writing ``kinds``."""
    return [KINDS.get(k).stage for k in kinds]


# --------------------------------------------------------------------------------------------------- stages
def _stage(plan: "Plan", p: Provider, cfg: object, fn: Callable[[object], object]) -> "Stage":
    from rait.run.pipeline import Stage

    deps = ["data", *deps_of(p.needs)]
    return Stage(p.stage, p.out(plan.root), cfg, lambda: fn(cfg), deps=deps)


def _probe(plan: "Plan", model: str, out: Path) -> object:
    c = plan.cfg
    return replace(c.stage("probe"), model=model, dtype=c.dtype, data=f"jsonl:{plan.pool}", out=str(out))


def _make_table(plan: "Plan") -> "Stage":
    from rait.stages.probe import probe

    p = KINDS.get("table")
    return _stage(plan, p, _probe(plan, plan.cfg.model, p.out(plan.root)), probe)


def _make_rehearse(plan: "Plan") -> "Stage":
    from rait.stages.rehearse import rehearse

    p = KINDS.get("rehearsed_model")
    cfg = replace(plan.cfg.stage("rehearse"), table=str(KINDS.get("table").path(plan.root)), model=plan.cfg.model,
                  out=str(p.out(plan.root)), save_optimizer=True)
    return _stage(plan, p, cfg, rehearse)


def _make_rehearsed_table(plan: "Plan") -> "Stage":
    from rait.stages.probe import probe

    p = KINDS.get("rehearsed_table")
    model = KINDS.get("rehearsed_model").path(plan.root)
    return _stage(plan, p, _probe(plan, str(model), p.out(plan.root)), probe)


def _make_grads(plan: "Plan") -> "Stage":
    from rait.gradients.cli import grads

    p = KINDS.get("grads")
    model = KINDS.get("rehearsed_model").path(plan.root)
    cfg = replace(plan.cfg.stage("grads"), table=str(KINDS.get("table").path(plan.root)), model=plan.cfg.model,
                  adapter=str(model / "adapter"), optimizer_state=str(model / "optimizer.safetensors"),
                  out=str(p.out(plan.root)))
    return _stage(plan, p, cfg, grads)


provide(Provider("table", "probe_m0", (), lambda r: r / "probe" / "m0" / "table.jsonl", lambda r: r / "probe" / "m0",
                 _make_table))
provide(Provider("rehearsed_model", "rehearse", ("table",), lambda r: r / "rehearse" / "model",
                 lambda r: r / "rehearse", _make_rehearse))
provide(Provider("rehearsed_table", "probe_mr", ("rehearsed_model",), lambda r: r / "probe" / "mr" / "table.jsonl",
                 lambda r: r / "probe" / "mr", _make_rehearsed_table))
provide(Provider("grads", "grads", ("table", "rehearsed_model"), lambda r: r / "grads", lambda r: r / "grads",
                 _make_grads, build_field="grads_dir"))
