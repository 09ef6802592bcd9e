"""``rait run CONFIG.yaml``: the whole experiment — data → probe → (rehearse → probe) → (grads) → build → train →
eval → report — for a list of methods, sharing stages between methods.

Each stage is one ``rait`` subcommand run in-process with explicit arguments; it writes its artifacts under
``runs/<name>/<stage>/`` and the pipeline records a ``.stage.json`` marker holding the stage's *key*: a hash of
its arguments and the keys of the stages it reads from (a Merkle chain). A rerun skips every stage whose marker
matches, so changing one method's settings reruns only that method's stages. A killed stage resumes inside
itself (probe chunks, training checkpoints, gradient shards); a stage whose key changed starts from a clean
directory. ``--dry-run`` prints the plan.

Methods: ``init_basic`` and ``init_refuse`` (the initial model with the BASIC / REFUSE prompt, no training) and
every method of the registry (``rait build --list``).

Example::

    rait run configs/demo.yaml              # the demo: 6 methods × 2 test sets
    rait run configs/demo.yaml --dry-run    # what would run
    rait run configs/demo.yaml --set seeds=[0,1,2] methods.grait.n_total=200
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import rait
from rait.artifacts import atomic_write_text, read_jsonl, sha256_json, write_jsonl
from rait.config import ConfigError, apply_overrides, load_yaml, option
from rait.errors import RaitError

BASELINES = ("init_basic", "init_refuse")


@dataclass
class DataSection:
    """Which items form the training pool and the test sets."""

    pool: str | None = option(None, "training-pool spec; null = drawn from the in-domain spec, disjoint from its test items")
    id: str = option("builtin:facts/id", "in-domain spec (test items; also the pool when pool is null)")
    ood: str | None = option("builtin:facts/ood", "out-of-domain test spec (null: none)")
    n_pool: int = option(400, "training-pool size (after a seeded shuffle)")
    n_id: int = option(200, "in-domain test size")
    n_ood: int = option(200, "out-of-domain test size")
    seed: int = option(0, "shuffle seed of the draws")


@dataclass
class RunConfig:
    """A whole experiment; the stage sections are passed to the stages as ``--set key=value`` overrides."""

    name: str = option("demo", "run name: artifacts go to OUT_ROOT/NAME")
    out_root: str = option("runs", "root directory of runs")
    model: str = option("default", "initial model M0 (spec)")
    dtype: str = option("auto", "inference dtype", choices=("auto", "float32", "bfloat16"))
    methods: list[str] = option(["init_basic", "init_refuse", "van", "cor_rait", "craft", "grait"],
                                "methods to compare, in report order")
    seeds: list[int] = option([0], "training seeds (every trained method is trained and evaluated once per seed)")
    data: DataSection = field(default_factory=DataSection, metadata={"help": "data", "choices": None})
    probe: dict = option({}, "rait probe settings (k, max_new_tokens, fewshot, certainty, batch_size, ...)")
    rehearse: dict = option({}, "rait rehearse settings (n, thresholds, fallback, train.* ...)")
    grads: dict = option({}, "rait grads flags (dim, batch_size, ...)")
    build: dict = option({}, "settings for every method's build (n_total, fraction, ...)")
    method_config: dict = option({}, "per-method build settings: {method: {key: value}}")
    train: dict = option({}, "rait train settings (epochs, lr, batch_size, ...)")
    eval: dict = option({}, "rait eval settings (max_new_tokens, batch_size, refusal, n_boot, ...)")
    report: bool = option(True, "write report.md / report.html at the end")

    def __post_init__(self) -> None:
        from rait.methods import available

        known = set(BASELINES) | set(available())
        bad = [m for m in self.methods if m not in known]
        if bad:
            raise ConfigError(f"unknown method(s) {bad}; known: {sorted(known)}")
        if not self.seeds:
            raise ConfigError("seeds: give at least one training seed")
        if "init_basic" not in self.methods:
            self.methods = ["init_basic", *self.methods]  # the THS reference is always evaluated


@dataclass
class Stage:
    """One step of the plan."""

    name: str
    out: Path
    argv: list[str]
    deps: list[str] = field(default_factory=list)
    run: Callable[[], None] | None = None  # in-process callable instead of argv
    key: str = ""


def _sets(d: dict[str, Any], prefix: str = "") -> list[str]:
    """Flatten a settings dict into ``key=value`` overrides (nested dicts become dotted keys)."""
    out = []
    for k, v in sorted(d.items()):
        if isinstance(v, dict):
            out.extend(_sets(v, f"{prefix}{k}."))
        else:
            out.append(f"{prefix}{k}={json.dumps(v)}")
    return out


def _with_sets(argv: list[str], d: dict[str, Any]) -> list[str]:
    out = list(argv)
    for kv in _sets(d):
        out += ["--set", kv]
    return out


class Plan:
    """The stages of a run, in execution order, with their keys."""

    def __init__(self, cfg: RunConfig):
        self.cfg = cfg
        self.root = Path(cfg.out_root) / cfg.name
        self.stages: dict[str, Stage] = {}
        self._make()

    def add(self, st: Stage) -> None:
        st.key = sha256_json({"argv": st.argv, "deps": [self.stages[d].key for d in st.deps],
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

    def _make(self) -> None:
        c, r = self.cfg, self.root
        trained = [m for m in c.methods if m not in BASELINES]
        need_rehearse = any(m in ("craft", "grait") for m in trained)
        self.add(Stage("data", r / "data", ["data", json.dumps(dataclasses.asdict(c.data), sort_keys=True)],
                       run=lambda: make_data(c.data, r / "data")))
        pool = f"jsonl:{r / 'data' / 'pool.jsonl'}"
        common = ["--model", c.model, "--dtype", c.dtype]
        if trained:
            self.add(Stage("probe_m0", r / "probe" / "m0", _with_sets(
                ["probe", "--data", pool, "--out", str(r / "probe" / "m0"), *common], c.probe), deps=["data"]))
        if need_rehearse:
            self.add(Stage("rehearse", r / "rehearse", _with_sets(
                ["rehearse", "--table", str(r / "probe" / "m0" / "table.jsonl"), "--model", c.model,
                 "--out", str(r / "rehearse"), "--set", "save_optimizer=true"], c.rehearse), deps=["probe_m0"]))
        if "craft" in trained:
            self.add(Stage("probe_mr", r / "probe" / "mr", _with_sets(
                ["probe", "--data", pool, "--out", str(r / "probe" / "mr"), "--model", str(r / "rehearse" / "model"),
                 "--dtype", c.dtype], c.probe), deps=["rehearse", "data"]))
        if "grait" in trained:
            argv = ["grads", "--table", str(r / "probe" / "m0" / "table.jsonl"), "--model", c.model,
                    "--adapter", str(r / "rehearse" / "model" / "adapter"),
                    "--optimizer-state", str(r / "rehearse" / "model" / "optimizer.safetensors"),
                    "--out", str(r / "grads")]
            for k, v in sorted(c.grads.items()):
                argv += [f"--{k.replace('_', '-')}"] + ([] if v is True else [str(v)])
            self.add(Stage("grads", r / "grads", argv, deps=["probe_m0", "rehearse"]))
        tests = self.tests()
        for test, path in tests.items():
            for m in BASELINES:
                if m not in c.methods:
                    continue
                out = self.eval_dir(m, c.seeds[0], test)
                argv = ["eval", "--model", c.model, "--dtype", c.dtype, "--data", f"jsonl:{path}", "--out", str(out),
                        "--prompt", "basic" if m == "init_basic" else "refuse"]
                deps = ["data"]
                if m == "init_refuse":
                    argv += ["--reference", str(self.eval_dir("init_basic", c.seeds[0], test))]
                    deps.append(f"eval:init_basic:{c.seeds[0]}:{test}")
                self.add(Stage(f"eval:{m}:{c.seeds[0]}:{test}", out, _with_sets(argv, c.eval), deps=deps))
        for m in trained:
            bdir = r / "build" / m
            argv = ["build", "--method", m, "--table", str(r / "probe" / "m0" / "table.jsonl"), "--out", str(bdir)]
            deps = ["probe_m0"]
            settings = {**c.build, **c.method_config.get(m, {})}
            if m == "craft":
                argv += ["--rehearsed-table", str(r / "probe" / "mr" / "table.jsonl")]
                deps.append("probe_mr")
            if m == "grait":
                settings["grads_dir"] = str(r / "grads")
                deps.append("grads")
            self.add(Stage(f"build:{m}", bdir, _with_sets(argv, settings), deps=deps))
            for s in c.seeds:
                tdir = r / "train" / m / f"seed{s}"
                self.add(Stage(f"train:{m}:{s}", tdir, _with_sets(
                    ["train", "--data", str(bdir / "train.jsonl"), "--model", c.model, "--out", str(tdir),
                     "--set", f"seed={s}"], c.train), deps=[f"build:{m}"]))
                for test, path in tests.items():
                    out = self.eval_dir(m, s, test)
                    argv = ["eval", "--model", str(tdir), "--dtype", c.dtype, "--data", f"jsonl:{path}",
                            "--out", str(out), "--prompt", "refuse",
                            "--reference", str(self.eval_dir("init_basic", c.seeds[0], test))]
                    self.add(Stage(f"eval:{m}:{s}:{test}", out, _with_sets(argv, c.eval),
                                   deps=[f"train:{m}:{s}", f"eval:init_basic:{c.seeds[0]}:{test}"]))
        evals = [n for n in self.stages if n.startswith("eval:")]
        self.add(Stage("aggregate", r, ["aggregate", *c.methods], deps=evals, run=lambda: aggregate(self)))

    # ---------------------------------------------------------------------------------------------- status
    def done(self, st: Stage) -> bool:
        marker = st.out / ".stage.json" if st.name != "aggregate" else self.root / ".aggregate.json"
        return marker.exists() and json.loads(marker.read_text()).get("key") == st.key

    def _marker(self, st: Stage) -> Path:
        return st.out / ".stage.json" if st.name != "aggregate" else self.root / ".aggregate.json"


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


def aggregate(plan: Plan) -> None:
    """Write ``results.json`` (seed-aggregated metrics per method × test set) and ``run.json``."""
    from rait.aggregate import aggregate_verdicts, mean_extras

    c = plan.cfg
    results: dict[str, Any] = {}
    reference: dict[str, Any] = {}
    n_boot = int(c.eval.get("n_boot", 1000))
    for test in plan.tests():
        ref_m = json.loads((plan.eval_dir("init_basic", c.seeds[0], test) / "metrics.json").read_text())
        ref = (ref_m["P_c"]["value"], ref_m["P_w"]["value"])
        reference[test] = {"P_c0": ref[0], "P_w0": ref[1]}
        for m in c.methods:
            seeds = [c.seeds[0]] if m in BASELINES else c.seeds
            dirs = [plan.eval_dir(m, s, test) for s in seeds]
            per_seed = [[r["verdict"] for r in read_jsonl(d / "items.jsonl")] for d in dirs]
            agg = aggregate_verdicts(per_seed, ref=ref if ref[1] > 0 else None, n_boot=n_boot)
            agg.update(mean_extras([json.loads((d / "metrics.json").read_text()) for d in dirs]))
            agg["seeds"] = seeds
            results.setdefault(m, {})[test] = agg
    atomic_write_text(plan.root / "results.json",
                      json.dumps({"results": results, "reference": reference}, indent=2, sort_keys=True) + "\n")
    tests = {k: str(v) for k, v in plan.tests().items()}
    atomic_write_text(plan.root / "run.json", json.dumps(
        {"name": c.name, "model": c.model, "methods": c.methods, "tests": tests, "seeds": c.seeds,
         "config": dataclasses.asdict(c)}, indent=2) + "\n")


def execute(plan: Plan, dry_run: bool = False, log: Callable[[str], None] = print) -> dict[str, float]:
    """Run every stage that is not done; returns seconds per executed stage."""
    from rait.cli import main as cli_main

    from rait import safety

    safety.confined(plan.cfg.out_root, plan.cfg.name)
    if not dry_run:
        safety.acquire(plan.root)  # one process per run directory; released at exit
    from rait.progress import StageClock

    clock = StageClock(sum(not plan.done(st) for st in plan.stages.values()))
    timings: dict[str, float] = {}
    for st in plan.stages.values():
        if plan.done(st):
            log(f"[skip] {st.name}")
            continue
        if dry_run:
            log(f"[run ] {st.name}: rait {' '.join(st.argv) if not st.run else '(in-process)'}")
            continue
        started = st.out / ".stage-started.json"
        if st.name != "aggregate" and st.out.exists() and (
                not started.exists() or json.loads(started.read_text()).get("key") != st.key):
            # outputs of other settings: start clean, deleting only what rait wrote (same key: resume inside)
            safety.clear_stage_dir(st.out, *safety.stage_record(st.out), f"settings of stage {st.name} changed", log=log)
        if st.name != "aggregate":
            safety.clean_stale_temps(st.out, log)
            atomic_write_text(started, json.dumps({"key": st.key}) + "\n")
        log(clock.start(st.name))
        t0 = time.time()
        if st.run is not None:
            st.run()
        else:
            rc = cli_main(st.argv)
            if rc:
                raise RaitError(f"stage {st.name} failed (exit {rc}): rait {' '.join(st.argv)}")
        timings[st.name] = round(time.time() - t0, 2)
        atomic_write_text(plan._marker(st), json.dumps({"key": st.key, "seconds": timings[st.name], "argv": st.argv,
                                                       "files": safety.list_files(st.out) if st.name != "aggregate" else None}) + "\n")
    if not dry_run:
        safety.release(plan.root)
    return timings


def summary_table(plan: Plan) -> str:
    """Markdown table: methods × test sets with P_c, P_w, P_r, THS (95 % CI)."""
    from rait.evaluate import fmt_ci

    res = json.loads((plan.root / "results.json").read_text())["results"]
    tests = list(plan.tests())
    head = "| method | " + " | ".join(f"{t} P_c | {t} P_w | {t} P_r | {t} THS" for t in tests) + " |"
    lines = [head, "| --- " * (1 + 4 * len(tests)) + "|"]
    for m in plan.cfg.methods:
        cells = []
        for t in tests:
            r = res[m][t]
            cells += [fmt_ci(r["P_c"]), fmt_ci(r["P_w"]), fmt_ci(r["P_r"]), fmt_ci(r.get("THS"))]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def stage_times(plan: Plan) -> dict[str, float]:
    """Seconds each stage took when it last ran (from the markers)."""
    out = {}
    for st in plan.stages.values():
        mk = plan._marker(st)
        if mk.exists():
            out[st.name] = json.loads(mk.read_text()).get("seconds", 0.0)
    return out


def run(config: str | Path, overrides: list[str] = (), dry_run: bool = False) -> Plan:
    """Load a run config, execute the plan, aggregate and (optionally) report."""
    cfg = load_yaml(RunConfig, config, overrides)
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
    """Register ``rait run``."""
    p = sub.add_parser("run", help="run a whole experiment config", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", help="run config YAML (see configs/)")
    p.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="dotted overrides, e.g. seeds=[0,1]")
    p.add_argument("--dry-run", action="store_true", help="print the plan (which stages would run) and exit")
    p.set_defaults(func=lambda a: (run(a.config, a.set, a.dry_run), 0)[1])


__all__ = ["RunConfig", "Plan", "execute", "run", "apply_overrides"]
