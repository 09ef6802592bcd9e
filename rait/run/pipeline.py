"""``rait run CONFIG.yaml``: the whole experiment — data → the artifacts the methods need (probe, rehearse → probe,
grads) → build → train → eval → report — for a list of methods, sharing stages between methods.

The stages come from the methods' registrations (:mod:`rait.methods`): each method names the artifact kinds it
needs, and :mod:`rait.run.providers` says which stage writes each kind. Trained methods then get build → train (per
seed) → eval (per test set); training-free methods get their own eval hook (the untrained baselines). The YAML
is checked at load time against every stage's typed config (unknown keys are an error with a did-you-mean, in
``--dry-run`` too), and each stage calls its stage function with its typed config, in a fresh worker process of its
own (``isolate``, :mod:`rait.run.isolate`) or, with ``isolate: false``, in this one; with ``jobs: 2`` two stages
whose inputs are ready run at once (:mod:`rait.run.schedule`).

Every stage writes under ``runs/<name>/<stage>/`` and the pipeline records a ``.stage.json`` marker holding the
stage's *key*: a hash of its typed config and the keys of the stages it reads from (a Merkle chain). A rerun
skips every stage whose marker matches, so changing one method's settings reruns only that method's stages. A
killed stage resumes inside itself (probe chunks, training checkpoints, gradient shards); a stage whose key
changed starts from a clean directory. ``--dry-run`` prints the plan.

Example::

    rait run configs/demo.yaml              # the demo: 6 methods × 2 test sets
    rait run configs/demo.yaml --dry-run    # what would run
    rait run configs/demo.yaml --set seeds=[0,1,2] build.n_total=200 probe.batch_size=8
    rait run configs/demo.yaml --set method_config.METHOD.n_total=200   # one method's setting
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import rait
from rait.core.artifacts import sha256_json, write_jsonl
from rait.core.config import (
    ConfigError,
    add_config_arguments,
    apply_overrides,
    config_from_args,
    from_dict,
    load_yaml,
    option,
    set_added,
)
from rait.core.registry import unknown_message
from rait.errors import RaitError
from rait.methods import DEFAULT_METHODS, REFERENCE, EvalContext, get, load_plugin
from rait.run.aggregate import stage_times, summary_table, write_results
from rait.run.diagnostics import write_diagnostics
from rait.run.providers import KINDS, closure, deps_of
from rait.run.schedule import execute


@dataclass
class DataSection:
    """Which items form the training pool and the test sets."""

    pool: str | None = option(None, "training-pool spec; null = drawn from the in-domain spec, disjoint from its "
                                    "test items")
    id: str = option("builtin:facts/id", "in-domain spec (test items; also the pool when pool is null)")
    ood: str | None = option("builtin:facts/ood", "out-of-domain test spec (null: none)")
    n_pool: int = option(400, "training-pool size (after a seeded shuffle)")
    n_id: int = option(200, "in-domain test size")
    n_ood: int = option(200, "out-of-domain test size")
    seed: int = option(0, "shuffle seed of the draws")


#: run-config section -> (module, stage config class, fields that rait run sets itself)
SECTIONS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "probe": ("rait.stages.probe", "ProbeConfig", ("model", "data", "out", "dtype")),
    "rehearse": ("rait.stages.rehearse", "RehearseConfig", ("table", "model", "out")),
    "grads": ("rait.gradients.cli", "GradsConfig", ("table", "model", "adapter", "optimizer_state", "out")),
    "train": ("rait.stages.train", "TrainConfig", ("data", "model", "out", "seed")),
    "eval": ("rait.stages.evaluate", "EvalConfig", ("model", "data", "out", "prompt", "reference", "dtype")),
}


def section_class(name: str) -> type:
    """The typed config class of a run-config section (``probe`` -> ``ProbeConfig``)."""
    import importlib

    mod, cls, _ = SECTIONS[name]
    return getattr(importlib.import_module(mod), cls)


@dataclass
class RunConfig:
    """A whole experiment. Every stage section is checked against its stage's typed config when loaded."""

    name: str = option("demo", "run name: artifacts go to OUT_ROOT/NAME")
    out_root: str = option("runs", "root directory of runs")
    model: str = option("default", "initial model M0 (spec)")
    dtype: str = option("auto", "inference dtype", choices=("auto", "float32", "bfloat16"))
    methods: list[str] = option(list(DEFAULT_METHODS), "methods to compare, in report order")
    plugins: list[str] = option([], "method files (.py) or modules imported first (docs/extending.md)")
    seeds: list[int] = option([0], "training seeds (every trained method is trained and evaluated once per seed)")
    data: DataSection = field(default_factory=DataSection, metadata={"help": "data", "choices": None})
    probe: dict = option({}, "rait probe settings (ProbeConfig fields: k, temperature, max_new_tokens, ...)")
    rehearse: dict = option({}, "rait rehearse settings (RehearseConfig fields: n, fallback, train.* ...)")
    grads: dict = option({}, "rait grads settings (GradsConfig fields: dim, batch_size, ...)")
    build: dict = option({}, "settings for every trained method's build (CommonConfig fields: n_total, ...)")
    method_config: dict = option({}, "per-method settings: {method: {key: value}}")
    train: dict = option({}, "rait train settings (TrainConfig fields: epochs, lr, batch_size, ...)")
    eval: dict = option({}, "rait eval settings (EvalConfig fields: max_new_tokens, batch_size, n_boot, ...)")
    report: bool = option(True, "write report.md / report.html at the end")
    isolate: bool = option(True, "run each stage in a fresh worker process, so that no stage inherits the memory "
                                 "state of the ones before it (rait.run.isolate); false: all in this process")
    jobs: int = option(1, "stages run at once, each in its own worker with torch's threads divided between them "
                          "(rait.run.schedule; needs isolate); on a CPU, 2 finish sooner than 1")

    def __post_init__(self) -> None:
        for p in self.plugins:
            load_plugin(p)
        from rait.methods import available

        known = available()
        bad = [m for m in self.methods if m not in known]
        if bad:
            raise ConfigError("methods: " + "; ".join(unknown_message("method", m, known) for m in bad))
        if not self.seeds:
            raise ConfigError("seeds: give at least one training seed")
        if self.jobs < 1:
            raise ConfigError(f"jobs: {self.jobs} — give 1 or more (stages run at once)")
        if self.jobs > 1 and not self.isolate:
            raise ConfigError(f"jobs: {self.jobs} needs isolate: true (each stage in a worker of its own); with "
                              "isolate: false, also set jobs: 1 (--jobs 1)")
        if REFERENCE not in self.methods:
            self.methods = [REFERENCE, *self.methods]  # the THS reference is always evaluated
        self._stages = {name: self._section(name) for name in SECTIONS}
        for m in self.method_config:
            if m not in known:
                raise ConfigError("method_config: " + unknown_message("method", m, known))
        self._methods = {m: self._method_cfg(m) for m in self.methods}

    def _section(self, name: str) -> Any:
        data = getattr(self, name)
        if not isinstance(data, dict):
            raise ConfigError(f"{name}: expected a mapping of settings, got {data!r}")
        managed = sorted(set(data) & set(SECTIONS[name][2]))
        if managed:
            raise ConfigError(f"{name}: {managed} are set by rait run itself (model, dtype and paths come from the "
                              "top level of the run config); remove them from this section")
        return from_dict(section_class(name), data, where=name)

    def _method_cfg(self, m: str) -> Any:
        meth = get(m)
        own = self.method_config.get(m) or {}
        if not isinstance(own, dict):
            raise ConfigError(f"method_config.{m}: expected a mapping, got {own!r}")
        data = {**(self.build if meth.trains else {}), **own}
        fields = {f.name for f in dataclasses.fields(meth.config_cls)}
        for kind in meth.needs if meth.trains else ():  # the build receives the paths; eval hooks get ctx
            target = KINDS.get(kind).build_field
            if target and target not in fields:
                raise ConfigError(f"method {m!r} needs {kind!r}, which reaches it in the config field {target!r}; "
                                  f"add that field to {meth.config_cls.__name__}")
        return from_dict(meth.config_cls, data, where=f"method_config.{m}" if own else f"build (for {m})")

    def stage(self, name: str) -> Any:
        """The typed config of a stage section (``probe``, ``rehearse``, ``grads``, ``train``, ``eval``)."""
        return self._stages[name]

    def method(self, name: str) -> Any:
        """The typed config of one method (``build`` settings, then its ``method_config`` entry)."""
        return self._methods[name]


@dataclass
class Stage:
    """One step of the plan: ``fn()`` writes ``out``; ``cfg`` (its typed config) is hashed into ``key``."""

    name: str
    out: Path
    cfg: Any
    fn: Callable[[], Any]
    deps: list[str] = field(default_factory=list)
    key: str = ""


def spec(obj: Any) -> Any:
    """A JSON-able form of a stage's config (dataclasses as dicts, paths as strings)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = dataclasses.asdict(obj)
    return json.loads(json.dumps(obj, default=str, sort_keys=True))


class Plan:
    """The stages of a run, in execution order, with their keys (derived from the methods' declarations)."""

    def __init__(self, cfg: RunConfig):
        self.cfg = cfg
        self.root = Path(cfg.out_root) / cfg.name
        self.pool = self.root / "data" / "pool.jsonl"
        self.stages: dict[str, Stage] = {}
        self._make()

    def add(self, st: Stage) -> None:
        st.key = sha256_json({"config": spec(st.cfg), "deps": [self.stages[d].key for d in st.deps],
                              "version": rait.__version__, "name": st.name})
        self.stages[st.name] = st

    # ---------------------------------------------------------------------------------------------- layout
    def tests(self) -> dict[str, Path]:
        t = {"id": self.root / "data" / "id.jsonl"}
        if self.cfg.data.ood:
            t["ood"] = self.root / "data" / "ood.jsonl"
        return t

    def eval_dir(self, method: str, seed: int, test: str) -> Path:
        return self.root / "eval" / method / f"seed{seed}" / test

    def trained(self) -> list[str]:
        """Methods of the run that build and train (the others are training-free)."""
        return [m for m in self.cfg.methods if get(m).trains]

    def _make(self) -> None:
        c, r = self.cfg, self.root
        self.add(Stage("data", r / "data", c.data, lambda: make_data(c.data, r / "data")))
        # Cheapest first: the reference, then methods in order of how many artifact kinds they need (ties: config
        # order); an artifact's stage comes right before the first method that needs it. So the methods that need
        # only the knowledge table have results before the rehearsal and the gradients run (the order changes no
        # stage key).
        for m in sorted(c.methods, key=lambda m: (m != REFERENCE, len(closure(get(m).needs)))):
            for kind in closure(get(m).needs):
                if KINDS.get(kind).stage not in self.stages:
                    self.add(KINDS.get(kind).make(self))
            if get(m).trains:
                self._trained(m)
            else:
                for test, path in self.tests().items():
                    self._eval_free(m, test, path)
        evals = [n for n in self.stages if n.startswith("eval:")]
        self.add(Stage("aggregate", r, {"methods": c.methods, "seeds": c.seeds, "n_boot": c.stage("eval").n_boot},
                       lambda: (write_results(self), write_diagnostics(self)), deps=evals))

    def _ref(self, test: str) -> tuple[Path, str]:
        s0 = self.cfg.seeds[0]
        return self.eval_dir(REFERENCE, s0, test), f"eval:{REFERENCE}:{s0}:{test}"

    def _eval_free(self, m: str, test: str, path: Path) -> None:
        c, meth = self.cfg, get(m)
        out = self.eval_dir(m, c.seeds[0], test)
        ref_dir, ref_stage = self._ref(test)
        ctx = EvalContext(method=m, cfg=c.method(m), model=c.model, dtype=c.dtype, test=test, data=path, out=out,
                          reference=None if m == REFERENCE else ref_dir,
                          artifacts={k: KINDS.get(k).path(self.root) for k in meth.needs}, eval=c.stage("eval"))
        deps = ["data", *deps_of(meth.needs)] + ([] if m == REFERENCE else [ref_stage])
        self.add(Stage(f"eval:{m}:{c.seeds[0]}:{test}", out, ctx, lambda: meth.evaluate(ctx), deps=deps))

    def _trained(self, m: str) -> None:
        from rait.stages.build import run_build
        from rait.stages.evaluate import evaluate
        from rait.stages.train import train

        c, r, meth = self.cfg, self.root, get(m)
        bdir = r / "build" / m
        mcfg = replace(c.method(m), **{KINDS.get(k).build_field: str(KINDS.get(k).path(r))
                                        for k in meth.needs if KINDS.get(k).build_field})
        reh = KINDS.get("rehearsed_table").path(r) if "rehearsed_table" in meth.needs else None
        bspec = {"method": m, "table": str(KINDS.get("table").path(r)), "rehearsed_table": reh, "out": bdir,
                 "config": mcfg}
        per_seed = meth.random_draw and len(c.seeds) > 1  # one label set per seed, drawn with that seed
        builds = {}
        for s in (c.seeds if per_seed else [None]):
            name, out = (f"build:{m}:{s}", bdir / f"seed{s}") if per_seed else (f"build:{m}", bdir)
            cfg = replace(mcfg, seed=s) if per_seed else mcfg
            spec_ = {**bspec, "out": out, "config": cfg, **({"added": added} if (added := set_added(cfg)) else {})}
            self.add(Stage(name, out, spec_, lambda out=out, cfg=cfg: run_build(m, bspec["table"], out, cfg, reh),
                           deps=deps_of(meth.needs)))
            builds[s] = (name, out)
        for s in c.seeds:
            bname, bd = builds[s if per_seed else None]
            tdir = r / "train" / m / f"seed{s}"
            tcfg = replace(c.stage("train"), data=str(bd / "train.jsonl"), model=c.model, out=str(tdir), seed=s)
            self.add(Stage(f"train:{m}:{s}", tdir, tcfg, lambda tcfg=tcfg: train(tcfg), deps=[bname]))
            for test, path in self.tests().items():
                ref_dir, ref_stage = self._ref(test)
                ecfg = replace(c.stage("eval"), model=str(tdir), dtype=c.dtype, data=f"jsonl:{path}",
                               out=str(self.eval_dir(m, s, test)), prompt="refuse", reference=str(ref_dir))
                self.add(Stage(f"eval:{m}:{s}:{test}", Path(ecfg.out), ecfg, lambda ecfg=ecfg: evaluate(ecfg),
                               deps=[f"train:{m}:{s}", ref_stage]))

    # ---------------------------------------------------------------------------------------------- status
    def _marker(self, st: Stage) -> Path:
        return st.out / ".stage.json" if st.name != "aggregate" else self.root / ".aggregate.json"

    def done(self, st: Stage) -> bool:
        marker = self._marker(st)
        return marker.exists() and json.loads(marker.read_text()).get("key") == st.key


def make_data(d: DataSection, out: Path) -> None:
    """Draw the pool and test sets (seeded shuffles; the pool is disjoint from the in-domain test)."""
    from rait.data import load

    rng = random.Random(d.seed)
    id_items = load(d.id)
    rng.shuffle(id_items)
    id_test = id_items[: d.n_id]
    if d.pool:
        pool = load(d.pool)
        random.Random(d.seed + 1).shuffle(pool)
        test_q = {it.question.strip().lower() for it in id_test}
        pool = [it for it in pool if it.question.strip().lower() not in test_q][: d.n_pool]
    else:
        pool = id_items[d.n_id: d.n_id + d.n_pool]
    if len(pool) < d.n_pool or len(id_test) < d.n_id:
        raise RaitError(f"data: asked for {d.n_pool} pool + {d.n_id} in-domain test items, "
                        f"only {len(pool)} + {len(id_test)} available in {d.pool or d.id}")
    write_jsonl(out / "pool.jsonl", [it.to_dict() for it in pool])
    write_jsonl(out / "id.jsonl", [it.to_dict() for it in id_test])
    if d.ood:
        ood = load(d.ood)
        random.Random(d.seed + 2).shuffle(ood)
        write_jsonl(out / "ood.jsonl", [it.to_dict() for it in ood[: d.n_ood]])


def run(config: str | Path | RunConfig, overrides: list[str] = (), dry_run: bool = False) -> Plan:
    """Load a run config (a YAML path, or a ready RunConfig), execute the plan, aggregate and (optionally) report."""
    cfg = config if isinstance(config, RunConfig) else load_yaml(RunConfig, config, overrides)
    plan = Plan(cfg)
    t0 = time.time()
    execute(plan, dry_run=dry_run)
    if dry_run:
        return plan
    if cfg.report:
        from rait.report import make_report

        md, html = make_report(plan.root)
        print(f"report: {md} and {html}")
    print(summary_table(plan))
    print(f"total {time.time() - t0:.1f} s; stage times: {json.dumps(stage_times(plan))}")
    return plan


def add_parser(sub: Any) -> None:
    """Register ``rait run``: the YAML, then one flag per RunConfig field, then ``--set`` overrides."""
    p = sub.add_parser("run", help="run a whole experiment config", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", help="run config YAML (see configs/)")
    p.add_argument("--dry-run", action="store_true", help="print the plan (which stages would run) and exit")
    add_config_arguments(p, RunConfig, config_flag=False)
    p.set_defaults(func=lambda a: (run(config_from_args(RunConfig, a), dry_run=a.dry_run), 0)[1])


__all__ = ["RunConfig", "Plan", "Stage", "execute", "run", "apply_overrides", "summary_table", "stage_times"]
