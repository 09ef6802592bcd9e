"""The recipe study: which training settings make a small model learn *where* to refuse.

Each point changes one or more settings of a base run config (``build.*`` or ``train.*`` keys, as ``--set`` takes
them), trains the named methods (default Cor-RAIT and CRaFT) under it, evaluates on the base run's in-domain and
out-of-domain test items and reports, per point × method: the training set's van / idk rows, training minutes,
THS with its 95 % interval, ΔTHS against Init-Basic with the paired 95 % interval (same items, seeds kept
together; :mod:`rait.core.paired`), and the refusal-alignment AUROC of the method's refusals against M0's greedy
verdict on the same items (:mod:`rait.run.diagnostics`). The abstention baselines of the base run are printed beside
them: the bar a tuned method has to clear.

The base run (``rait run CONFIG``) provides everything upstream — the knowledge table of the pool, the rehearsed
table (CRaFT), the test sets, Init-Basic's evaluation (the THS reference and M0's verdicts). Each point runs the
pipeline's own stage functions (``run_build``, ``train``, ``evaluate``) with the typed stage configs ``rait run``
would give them under the point's overrides; only the output directories differ (``OUT/POINT/METHOD/seedS``). A
finished unit is skipped on a rerun (its ``done.json`` holds the hash of its configs).

Usage::

    rait run configs/graded.yaml                          # the base run
    python bench/recipe.py configs/graded.yaml            # every point in POINTS, then the doc section
    python bench/recipe.py configs/graded.yaml --only rows_all rows_all+epochs_4 --jobs 2
    python bench/recipe.py configs/graded.yaml --only rows_all --seeds 0 1 2 --section recipe_seeds
    python bench/recipe.py configs/graded.yaml --units base:METHOD idk_80:METHOD --set out_root=/data/runs
    python bench/recipe.py configs/graded.yaml --units study --jobs 2   # the table in docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import cpu_line  # noqa: E402
from _doc import DOC, markers, write_section  # noqa: E402

#: point name -> ``--set`` overrides of the base run config. ``a+b`` on the command line combines points.
POINTS: dict[str, list[str]] = {
    "base": [],
    # the whole pool at its natural van:idk ratio (quota-free methods such as Probe-RAIT: every item)
    "rows_all": ["build.n_total=null", "build.n_van=1000000", "build.n_idk=1000000"],
    "idk_half": ["build.idk_share=0.5"],
    "idk_80": ["build.idk_share=0.8"],  # about the share of the graded pool the default model gets wrong
    # refusal rows at half weight: the tuned models refuse more often than their training labels do
    "idk_w0.5": ["build.idk_weight=0.5"],
    "idk_w0.25": ["build.idk_weight=0.25"],
    "epochs_4": ["train.epochs=4"],
    "lr_2e-3": ["train.lr=0.002"],
    "lr_1e-4": ["train.lr=0.0001"],
    "rank_32": ["train.lora_r=32", "train.lora_alpha=64"],
    "attn_only": ["train.lora_target=[q_proj,k_proj,v_proj,o_proj]"],
    "full_ft": ["train.method=full", "train.lr=0.00005"],
}
#: the units of the recipe table in docs/benchmarks.md (``--units study``)
STUDY: list[str] = [
    "base:cor_rait", "base:craft", "base:grait", "base:probe_rait", "idk_w0.5:cor_rait", "idk_w0.5:craft",
    "idk_w0.5:probe_rait", "idk_w0.25:craft", "idk_w0.25:probe_rait", "rows_all:cor_rait", "rows_all:craft",
    "rows_all:probe_rait", "rows_all+idk_w0.5:probe_rait", "idk_half:craft", "idk_80:cor_rait", "idk_80:craft",
    "epochs_4:cor_rait", "epochs_4:craft", "epochs_4+idk_w0.5:cor_rait", "epochs_4+idk_w0.5:craft",
    "epochs_4+idk_w0.5:probe_rait", "lr_2e-3:cor_rait", "lr_2e-3:craft", "lr_1e-4:craft", "rank_32:cor_rait",
    "rank_32:craft", "attn_only:craft", "full_ft:cor_rait", "full_ft:craft",
]
from rait.methods._claims import THS_ORDER  # noqa: E402

#: default methods: the papers' Cor-RAIT and CRaFT (the last two of the GRAIT paper's THS ordering)
METHODS = list(reversed(THS_ORDER[1:]))
#: ``--set`` overrides of the base run config itself (e.g. ``out_root=...``), applied before every point's
BASE_SET: list[str] = []
#: True (``--fresh``): recompute units the base run already has instead of reusing its stages
FRESH = False
TESTS = ("id", "ood")


def overrides_of(point: str) -> list[str]:
    """The ``--set`` overrides of a point name (``a+b``: both points' overrides, later ones win)."""
    out: list[str] = []
    for part in point.split("+"):
        if part not in POINTS:
            from rait.core.registry import unknown_message

            raise SystemExit(unknown_message("recipe point", part, list(POINTS)))
        out += POINTS[part]
    return out


def plan_for(config: str, point: str, seeds: list[int], method: str | None = None) -> Any:
    """The base run's plan under the point's overrides (paths of the upstream stages are the base run's); with
    ``method``, the plan of Init-Basic and that method only (which need not be in the config's list)."""
    from rait.core.config import load_yaml
    from rait.methods import REFERENCE
    from rait.run.pipeline import Plan, RunConfig

    only = [f"methods=[{REFERENCE},{method}]"] if method else []
    return Plan(load_yaml(RunConfig, config, [*BASE_SET, *overrides_of(point), f"seeds={json.dumps(seeds)}",
                                              *only]))


def unit_configs(plan: Any, method: str, seed: int, out: Path) -> dict[str, Any]:
    """The build / train / eval configs ``rait run`` would use for (method, seed), redirected under ``out``."""
    st = plan.stages
    bname = f"build:{method}:{seed}" if f"build:{method}:{seed}" in st else f"build:{method}"
    missing = [d for d in st[bname].deps + [plan._ref(t)[1] for t in plan.tests()]
               if not plan.done(st[d])]
    if missing:
        raise SystemExit(f"recipe: the base run lacks {missing}; run `rait run` on the config first (same data, "
                         "probe and rehearse settings)")
    build = {**st[bname].cfg, "out": out / "build"}
    train = replace(st[f"train:{method}:{seed}"].cfg, data=str(out / "build" / "train.jsonl"), out=str(out / "train"))
    evals = {t: replace(st[f"eval:{method}:{seed}:{t}"].cfg, model=str(out / "train"), out=str(out / "eval" / t))
             for t in plan.tests()}
    return {"build": build, "train": train, "eval": evals}


def run_unit(config: str, point: str, method: str, seed: int, out_root: Path) -> dict[str, Any]:
    """Build, train and evaluate one (point, method, seed); skipped when ``done.json`` matches its configs."""
    from rait.core.artifacts import atomic_write_text, sha256_json
    from rait.run.pipeline import spec
    from rait.stages.build import run_build
    from rait.stages.evaluate import evaluate
    from rait.stages.train import train

    out = out_root / point / method / f"seed{seed}"
    # as in a run with seeds [0, seed]: a method that draws at random draws its label set with the training seed
    plan = plan_for(config, point, [seed] if seed == 0 else [0, seed], method)
    cfgs = unit_configs(plan, method, seed, out)
    key = sha256_json(spec({"build": cfgs["build"], "train": cfgs["train"], "eval": cfgs["eval"]}))
    done = out / "done.json"
    if done.exists() and json.loads(done.read_text()).get("key") == key:
        return json.loads(done.read_text())
    reused = None if FRESH else from_base_run(plan, method, seed)
    if reused:  # the base run already trained and evaluated this (method, seed) with these very configs
        rec = {"key": key, "point": point, "method": method, "seed": seed, "overrides": overrides_of(point), **reused}
        atomic_write_text(done, json.dumps(rec, indent=1) + "\n")
        return rec
    b = cfgs["build"]
    t0 = time.time()
    run_build(method, b["table"], b["out"], b["config"], b["rehearsed_table"])
    t1 = time.time()
    train(cfgs["train"])
    t2 = time.time()
    for ecfg in cfgs["eval"].values():
        evaluate(ecfg, progress=False)
    rec = {"key": key, "point": point, "method": method, "seed": seed, "overrides": overrides_of(point),
           "seconds": {"build": round(t1 - t0, 2), "train": round(t2 - t1, 2), "eval": round(time.time() - t2, 2)}}
    atomic_write_text(done, json.dumps(rec, indent=1) + "\n")
    return rec


def from_base_run(plan: Any, method: str, seed: int) -> dict[str, Any] | None:
    """Directories and stage seconds of (method, seed) in the base run when its stages are done there (their keys
    hash the same configs a unit would use), else None."""
    st = plan.stages
    bname = f"build:{method}:{seed}" if f"build:{method}:{seed}" in st else f"build:{method}"
    names = {"build": bname, "train": f"train:{method}:{seed}"} | {
        f"eval:{t}": f"eval:{method}:{seed}:{t}" for t in plan.tests()}
    if not all(plan.done(st[n]) for n in names.values()):
        return None
    secs = {k: json.loads(plan._marker(st[n]).read_text()).get("seconds", 0.0) for k, n in names.items()}
    return {"from_base_run": str(plan.root),
            "dirs": {"build": str(st[bname].out), "eval": {t: str(st[f"eval:{method}:{seed}:{t}"].out)
                                                          for t in plan.tests()}},
            "seconds": {"build": secs["build"], "train": secs["train"],
                        "eval": round(sum(v for k, v in secs.items() if k.startswith("eval:")), 2)}}


def _dirs(out_root: Path, point: str, method: str, seed: int) -> tuple[Path, dict[str, Path]]:
    """Build directory and eval directories of a finished unit (its own, or the base run's it reused)."""
    base = out_root / point / method / f"seed{seed}"
    rec = json.loads((base / "done.json").read_text())
    d = rec.get("dirs")
    if d:
        return Path(d["build"]), {t: Path(p) for t, p in d["eval"].items()}
    return base / "build", {t: base / "eval" / t for t in TESTS}


def run_all(config: str, units: list[tuple[str, str, int]], out_root: Path, jobs: int) -> None:
    """Run the units, ``jobs`` at a time (each a subprocess with one torch thread when jobs > 1)."""
    if jobs <= 1:
        for u in units:
            print(f"[recipe] {u[0]} {u[1]} seed{u[2]}", flush=True)
            run_unit(config, *u, out_root)
        return
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    todo, running = list(units), []
    while todo or running:
        while todo and len(running) < jobs:
            p, m, s = todo.pop(0)
            print(f"[recipe] {p} {m} seed{s}", flush=True)
            cmd = [sys.executable, __file__, config, "--unit", p, m, str(s), "--out", str(out_root)] + \
                (["--set", *BASE_SET] if BASE_SET else []) + (["--fresh"] if FRESH else [])
            running.append(subprocess.Popen(cmd, env=env))
        time.sleep(2)
        for proc in [r for r in running if r.poll() is not None]:
            running.remove(proc)
            if proc.returncode:
                raise SystemExit(f"recipe: {' '.join(proc.args[-5:-2])} failed (exit {proc.returncode})")


# --------------------------------------------------------------------------------------------------- results
def _verdicts(eval_dir: Path) -> dict[str, str]:
    from rait.core.artifacts import read_jsonl

    return {r["id"]: r["verdict"] for r in read_jsonl(eval_dir / "items.jsonl")}


def score_point(config: str, point: str, method: str, seeds: list[int], out_root: Path) -> dict[str, Any]:
    """THS, ΔTHS vs Init-Basic (paired), refusal AUROC, rows and minutes of one point × method over seeds."""
    from rait.core.artifacts import read_jsonl
    from rait.core.paired import paired_deltas
    from rait.run.aggregate import aggregate_verdicts
    from rait.run.diagnostics import refusal_alignment

    plan = plan_for(config, point, seeds, method)
    recs = [json.loads((out_root / point / method / f"seed{s}" / "done.json").read_text()) for s in seeds]
    res: dict[str, Any] = {"point": point, "method": method, "seeds": seeds, "overrides": overrides_of(point),
                           "train_min": round(sum(r["seconds"]["train"] for r in recs) / len(recs) / 60, 2),
                           "unit_min": round(sum(sum(r["seconds"].values()) for r in recs) / 60, 2)}
    dirs = {s: _dirs(out_root, point, method, s) for s in seeds}
    rows = read_jsonl(dirs[seeds[0]][0] / "train.jsonl")
    res["rows"] = {"van": sum(r.get("label") == "van" for r in rows), "idk": sum(r.get("label") == "idk" for r in rows)}
    for test in plan.tests():
        ref_dir, _ = plan._ref(test)
        m0 = _verdicts(ref_dir)
        ids = list(m0)
        per_seed = [_verdicts(dirs[s][1][test]) for s in seeds]
        ref_metrics = json.loads((ref_dir / "metrics.json").read_text())
        ref = (ref_metrics["P_c"]["value"], ref_metrics["P_w"]["value"])
        agg = aggregate_verdicts([[v[i] for i in ids] for v in per_seed], ref=ref)
        pair = paired_deltas({"m": [[v[i] for i in ids] for v in per_seed], "ref": [[m0[i] for i in ids]]},
                             ref=ref, n_boot=1000, seed=0)["pairs"]["m"]["ref"]
        align = refusal_alignment({i: [float(v[i] == "refuse") for v in per_seed] for i in ids}, m0)
        res[test] = {"P_c": agg["P_c"], "P_w": agg["P_w"], "P_r": agg["P_r"], "THS": agg["THS"],
                     "dTHS": pair["THS"], "auroc": align["auroc"]}
    return res


def abstention_methods(plan: Any) -> list[str]:
    """The base run's training-free methods that decide from an artifact (the abstention baselines: the bar)."""
    from rait.methods import get

    return [m for m in plan.cfg.methods if not get(m).trains and get(m).needs]


def baselines(config: str) -> dict[str, Any]:
    """THS and refusal AUROC of the base run's training-free methods (from its results / diagnostics files)."""
    plan = plan_for(config, "base", [0])
    root = plan.root
    res = json.loads((root / "results.json").read_text()) if (root / "results.json").exists() else {}
    diag = json.loads((root / "diagnostics.json").read_text()) if (root / "diagnostics.json").exists() else {}
    out = {}
    for m in abstention_methods(plan):
        if m in res.get("results", {}):
            out[m] = {t: {"THS": res["results"][m][t]["THS"],
                          "auroc": diag.get("refusal_alignment", {}).get(t, {}).get(m, {}).get("auroc")}
                      for t in plan.tests()}
    return out


def unit_pairs(config: str, results: list[dict[str, Any]], out_root: Path) -> dict[str, Any]:
    """Paired ΔTHS between the units (seeds kept together), against the base run's abstention baselines and
    against its trained methods (``run · NAME``) where the run has all the units' seeds."""
    from rait.core.paired import paired_deltas
    from rait.methods import get

    plan = plan_for(config, "base", [0])
    seeds = sorted({s for r in results for s in r["seeds"]})
    out: dict[str, Any] = {}
    for test in plan.tests():
        ref_dir, _ = plan._ref(test)
        m0 = _verdicts(ref_dir)
        ids = list(m0)
        per: dict[str, list[list[str]]] = {}
        for r in results:
            dirs = [_dirs(out_root, r["point"], r["method"], s)[1][test] for s in r["seeds"]]
            per[f"{r['point']} · {get(r['method']).display}"] = [[v[i] for i in ids] for v in map(_verdicts, dirs)]
        for m in abstention_methods(plan):
            d = plan.eval_dir(m, 0, test)
            if (d / "items.jsonl").exists():
                per[get(m).display] = [[_verdicts(d)[i] for i in ids]]
        for m in plan.trained():  # the base run's own methods, where it has every seed the units have
            dirs = [plan.eval_dir(m, s, test) for s in seeds]
            if all((d / "items.jsonl").exists() for d in dirs):
                per[f"run · {get(m).display}"] = [[v[i] for i in ids] for v in map(_verdicts, dirs)]
        metrics = json.loads((ref_dir / "metrics.json").read_text())
        out[test] = paired_deltas(per, ref=(metrics["P_c"]["value"], metrics["P_w"]["value"]), n_boot=1000, seed=0)
    return out


def render_pairs(pairs: dict[str, Any], units: list[str]) -> list[str]:
    """Rows: the units; columns: ΔTHS (row − column, paired 95 % interval) per test set."""
    lines = []
    for test, p in pairs.items():
        cols = [c for c in p["methods"]]
        lines += ["", f"ΔTHS between the rows, {test} (row − column, paired 95 % interval, \\* = excludes 0):", "",
                  "| row − column | " + " | ".join(cols) + " |", "|" + " --- |" * (len(cols) + 1)]
        for u in units:
            cells = ["—" if c == u else _ci(p["pairs"][u][c]["THS"]) for c in cols]
            lines.append(f"| {u} | " + " | ".join(cells) + " |")
    return lines


# --------------------------------------------------------------------------------------------------- the doc
def _ci(m: dict[str, Any]) -> str:
    mark = " \\*" if m.get("significant") else ""
    return f"{m['value']:+.1f} [{m['lo']:+.1f}, {m['hi']:+.1f}]{mark}"


def _auroc(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def render(section: str, config: str, results: list[dict[str, Any]], bars: dict[str, Any], wall_s: float,
           pairs: dict[str, Any] | None = None) -> str:
    """The doc section: one row per point × method, then the abstention baselines' row (the bar)."""
    from rait.methods import get

    start, end = markers(section)
    seeds = sorted({", ".join(map(str, r["seeds"])) for r in results})
    total = sum(r.get("unit_min", 0.0) for r in results)
    head = ["| point | overrides | method | van / idk rows | train min | ID THS | ID ΔTHS vs Init-Basic | ID AUROC "
            "| OOD THS | OOD ΔTHS vs Init-Basic | OOD AUROC |", "|" + " --- |" * 11]
    lines = [start, "", f"Measured by `python bench/recipe.py {config}` (base run: `rait run {config}`; seeds "
             f"{' / '.join(seeds)}; {cpu_line()} in the invocation that rendered this; build + train + eval time of the "
             f"units, summed: {total:.0f} min; this invocation {wall_s / 60:.1f} min, finished units are skipped). "
             "THS with its 95 % item-bootstrap interval; ΔTHS against Init-Basic with the paired 95 % interval "
             "(\\* = excludes 0); AUROC = refusal alignment, the method's refusals as a detector of M0's wrong greedy "
             "answers on the same items (0.5 = refusals unrelated to what M0 knows).", "", *head]
    for r in results:
        ov = " ".join(f"`{o}`" for o in r["overrides"]) or "(base config)"
        cells = [r["point"], ov, get(r["method"]).display, f"{r['rows']['van']} / {r['rows']['idk']}",
                 f"{r['train_min']:.1f}"]
        for t in TESTS:
            if t in r:
                th = r[t]["THS"]
                cells += [f"{th['value']:+.1f} [{th['lo']:+.1f}, {th['hi']:+.1f}]", _ci(r[t]["dTHS"]),
                          _auroc(r[t]["auroc"])]
        lines.append("| " + " | ".join(cells) + " |")
    for m, per in bars.items():
        cells = ["(bar)", "training-free, fit on the pool", get(m).display, "-", "-"]
        for t in TESTS:
            if t in per:
                th = per[t]["THS"]
                cells += [f"{th['value']:+.1f} [{th['lo']:+.1f}, {th['hi']:+.1f}]", "-", _auroc(per[t]["auroc"])]
        lines.append("| " + " | ".join(cells) + " |")
    if pairs:
        lines += render_pairs(pairs, [f"{r['point']} · {get(r['method']).display}" for r in results])
    return "\n".join(lines + ["", end])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config", help="base run config (run it with `rait run` first)")
    ap.add_argument("--only", nargs="+", default=None, help="points to run (a+b combines points); default: all")
    ap.add_argument("--methods", nargs="+", default=METHODS)
    ap.add_argument("--units", nargs="+", default=None, metavar="POINT:METHOD",
                    help="explicit point:method pairs (instead of every --only point x every --methods method); "
                         "`study`: the units of the recipe table in docs/benchmarks.md")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--jobs", type=int, default=1, help="units at a time (subprocesses with one torch thread each)")
    ap.add_argument("--out", default=None, help="output root (default: OUT_ROOT/NAME-recipe of the base run)")
    ap.add_argument("--section", default="recipe", help="docs/benchmarks.md section to write")
    ap.add_argument("--doc", default=str(DOC))
    ap.add_argument("--json", default=None, help="also write the results here (default: OUT/recipe.json)")
    ap.add_argument("--set", nargs="+", default=[], help="overrides of the base run config (as rait run --set)")
    ap.add_argument("--pairs", action="store_true",
                    help="also the paired ΔTHS between the units and against the abstention baselines")
    ap.add_argument("--fresh", action="store_true",
                    help="recompute a (point, method, seed) even when the base run already has its stages")
    ap.add_argument("--unit", nargs=3, metavar=("POINT", "METHOD", "SEED"), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    BASE_SET[:] = a.set
    global FRESH
    FRESH = a.fresh
    base = plan_for(a.config, "base", [0])
    out_root = Path(a.out) if a.out else base.root.parent / f"{base.cfg.name}-recipe"
    if a.unit:
        import torch

        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
        run_unit(a.config, a.unit[0], a.unit[1], int(a.unit[2]), out_root)
        return 0
    if a.units == ["study"]:
        a.units = STUDY
    units = [tuple(u.split(":", 1)) for u in a.units] if a.units else \
        [(p, m) for p in (a.only or list(POINTS)) for m in a.methods]
    for p, m in units:
        overrides_of(p)  # unknown names fail before anything runs
        from rait.methods import get

        get(m)
    t0 = time.time()
    run_all(a.config, [(p, m, s) for p, m in units for s in a.seeds], out_root, a.jobs)
    results = [score_point(a.config, p, m, a.seeds, out_root) for p, m in units]
    Path(a.json or out_root / f"{a.section}.json").write_text(json.dumps(results, indent=1) + "\n")
    pairs = unit_pairs(a.config, results, out_root) if a.pairs else None
    if pairs:
        (out_root / f"{a.section}.pairs.json").write_text(json.dumps(pairs, indent=1) + "\n")
    block = render(a.section, a.config, results, baselines(a.config), time.time() - t0, pairs)
    write_section(a.section, block, Path(a.doc))
    print(block)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
