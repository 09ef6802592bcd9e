"""Aggregate evaluation runs across training seeds: seed-mean values, sd across seeds, paired bootstrap CIs.

The CI of a seed-averaged rate resamples *items* (the same resample for every seed, so seeds stay paired) and
averages the per-seed rates of each resample; the THS reference point stays fixed.

Example:
    >>> from rait.run.aggregate import aggregate_verdicts
    >>> m = aggregate_verdicts([["correct", "wrong"], ["correct", "correct"]], ref=(50.0, 50.0), n_boot=0)
    >>> m["P_c"]["value"], m["THS"]["value"]
    (75.0, 50.0)
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

from rait.core.metrics import RATE_KEYS, VERDICTS, macro_rates, rates, ths

if TYPE_CHECKING:
    from rait.run.pipeline import Plan

EXTRA_KEYS = ("AUROC", "AP", "over_conservativeness", "prudence", "honesty")


def aggregate_verdicts(per_seed: Sequence[Sequence[str]], ref: tuple[float, float] | None = None,
                       n_boot: int = 1000, seed: int = 0, alpha: float = 0.05) -> dict[str, Any]:
    """Seed-averaged rates (and THS) with sd across seeds and paired item-bootstrap CIs.

    Args:
        per_seed: verdicts per seed, each over the same items in the same order.
        ref: (P_c0, P_w0) THS reference in %, or None.
        n_boot: bootstrap resamples (0: CI = value).
        seed: bootstrap seed.
        alpha: 1 − confidence level.
    """
    lens = {len(v) for v in per_seed}
    if len(lens) != 1 or 0 in lens:
        raise ValueError(f"every seed needs verdicts for the same non-empty item list, got lengths {sorted(lens)}")
    codes = np.array([[VERDICTS.index(v) for v in vs] for vs in per_seed])  # (S, N)
    s, n = codes.shape

    def stat(idx: np.ndarray) -> np.ndarray:  # (B, N) item indices -> (B, K)
        sampled = codes[:, idx]  # (S, B, N)
        r = np.stack([(sampled == k).mean(axis=2) for k in range(len(VERDICTS))], axis=2) * 100.0  # (S, B, 4)
        if ref is not None:
            r = np.concatenate([r, ths(r[..., :1], r[..., 1:2], ref[0], ref[1])], axis=2)
        return r.mean(axis=0)

    full = stat(np.arange(n)[None])[0]
    seed_vals = []
    for i in range(s):
        r = np.array([(codes[i] == k).mean() * 100.0 for k in range(len(VERDICTS))])
        if ref is not None:
            r = np.append(r, ths(r[0], r[1], ref[0], ref[1]))
        seed_vals.append(r)
    seed_vals = np.array(seed_vals)
    if n_boot > 0:
        rng = np.random.default_rng(seed)
        boots = np.concatenate([stat(rng.integers(0, n, size=(min(200, n_boot - b), n)))
                                for b in range(0, n_boot, 200)])
        lo = np.percentile(boots, 100 * alpha / 2, axis=0)
        hi = np.percentile(boots, 100 * (1 - alpha / 2), axis=0)
    else:
        lo = hi = full
    keys = list(RATE_KEYS) + (["THS"] if ref is not None else [])
    out: dict[str, Any] = {"n": n, "n_seeds": s}
    for i, k in enumerate(keys):
        sd = float(seed_vals[:, i].std(ddof=1)) if s > 1 else None
        out[k] = {"value": float(full[i]), "lo": float(lo[i]), "hi": float(hi[i]), "sd": sd}
    if ref is not None:
        out["ref"] = {"P_c0": float(ref[0]), "P_w0": float(ref[1])}
    return out


def mean_extras(metric_dicts: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Seed means of the scalar honesty/ranking metrics present in per-seed metrics.json files."""
    out = {}
    for k in EXTRA_KEYS:
        vals = [float(m[k]) for m in metric_dicts if isinstance(m.get(k), (int, float)) and not math.isnan(m[k])]
        if vals:
            out[k] = float(np.mean(vals))
    return out


def macro_over_seeds(per_seed: Sequence[Sequence[str]], topics: Sequence[Any],
                     ref: tuple[float, float] | None) -> dict[str, Any]:
    """Seed means (and sd across seeds) of the macro-averaged rates and THS (:func:`rait.core.metrics.macro_rates`).

    THS is linear in (P_c, P_w) for a fixed reference, so the mean of per-seed THS is the THS of the mean rates.

    >>> m = macro_over_seeds([["correct", "wrong", "correct"], ["wrong", "wrong", "correct"]], ["a", "a", "b"],
    ...                      ref=(50.0, 50.0))
    >>> m["P_c"]["value"], m["P_c"]["sd"], m["THS"]["value"], m["n_groups"]
    (62.5, 17.67766952966369, 25.0, 2)
    """
    per = [macro_rates(v, topics, ref=ref) for v in per_seed]
    keys = list(RATE_KEYS) + (["THS"] if "THS" in per[0] else [])
    out: dict[str, Any] = {"n": per[0]["n"], "n_groups": per[0]["n_groups"]}
    for k in keys:
        a = np.array([p[k] for p in per])
        out[k] = {"value": float(a.mean()), "sd": float(a.std(ddof=1)) if a.size > 1 else None}
    return out


def _point(verdicts: Sequence[str]) -> tuple[float, float] | None:
    r = rates(verdicts)
    return (r["P_c"], r["P_w"]) if r["P_w"] > 0 else None


def _views(per_seed_recs: Sequence[Sequence[dict[str, Any]]], ref_recs: Sequence[dict[str, Any]],
           n_boot: int) -> dict[str, Any]:
    """``macro`` (2+ topics) and ``echo_safe`` + ``n_echo`` (open-ended items scored both ways) of one method on one
    test set; each against Init-Basic's point under the same view."""
    out: dict[str, Any] = {}
    topics = [r.get("topic") for r in per_seed_recs[0]]
    if all(t is not None for t in topics) and len(set(topics)) > 1:
        ref_macro = macro_rates([r["verdict"] for r in ref_recs], [r.get("topic") for r in ref_recs])
        ref = (ref_macro["P_c"], ref_macro["P_w"]) if ref_macro["P_w"] > 0 else None
        out["macro"] = macro_over_seeds([[r["verdict"] for r in rs] for rs in per_seed_recs], topics, ref)
    if all("verdicts" in r for rs in per_seed_recs for r in rs) and all("verdicts" in r for r in ref_recs):
        out["n_echo"] = sum(bool(r.get("echo")) for r in per_seed_recs[0])
        ref = _point([r["verdicts"]["echo_safe"] for r in ref_recs])
        out["echo_safe"] = aggregate_verdicts([[r["verdicts"]["echo_safe"] for r in rs] for rs in per_seed_recs],
                                              ref=ref, n_boot=n_boot)
    return out


def aggregate_run(eval_dir: Callable[[str, int, str], Path], methods: Sequence[str], tests: Sequence[str],
                  seeds: Sequence[int], baselines: Sequence[str] = ("init_basic", "init_refuse"),
                  n_boot: int = 1000, ref_method: str = "init_basic") -> dict[str, Any]:
    """The content of a run's ``results.json`` from its per-item evaluations.

    For every method × test set: seed-averaged pooled rates and THS (:func:`aggregate_verdicts`), the seed means
    of AUROC/AP/honesty, the macro average over topics (MMLU subjects) when the test set has 2+ topics, and the
    echo-safe scoring (``echo_safe``, with ``n_echo``) when the items were scored both ways. THS is always
    against Init-Basic (first seed) under the same view. ``paired`` holds the paired Δ statistics
    (:func:`rait.core.paired.paired_deltas`).

    Args:
        eval_dir: ``(method, seed, test) -> directory`` holding ``items.jsonl`` and ``metrics.json``.
        methods: methods in report order (must include ``init_basic``).
        tests: test-set names.
        seeds: training seeds; baselines use the first only.
        baselines: untrained methods (evaluated once).
        n_boot: bootstrap resamples.
        ref_method: the THS reference method (Init-Basic).

    Returns:
        ``{"results": {method: {test: metrics}}, "reference": {test: {"P_c0", "P_w0"}}, "paired": {test: ...}}``.
    """
    from rait.core.artifacts import read_jsonl
    from rait.core.paired import paired_deltas

    results: dict[str, Any] = {}
    reference: dict[str, Any] = {}
    paired: dict[str, Any] = {}
    for test in tests:
        ref_dir = eval_dir(ref_method, seeds[0], test)
        ref_m = json.loads((ref_dir / "metrics.json").read_text())
        ref = (ref_m["P_c"]["value"], ref_m["P_w"]["value"])
        reference[test] = {"P_c0": ref[0], "P_w0": ref[1]}
        ref_recs = read_jsonl(ref_dir / "items.jsonl")
        per_method: dict[str, list[list[str]]] = {}
        for m in methods:
            sds = [seeds[0]] if m in baselines else list(seeds)
            dirs = [eval_dir(m, s, test) for s in sds]
            recs = [read_jsonl(d / "items.jsonl") for d in dirs]
            per_method[m] = [[r["verdict"] for r in rs] for rs in recs]
            agg = aggregate_verdicts(per_method[m], ref=ref if ref[1] > 0 else None, n_boot=n_boot)
            agg.update(mean_extras([json.loads((d / "metrics.json").read_text()) for d in dirs]))
            agg.update(_views(recs, ref_recs, n_boot))
            agg["seeds"] = sds
            results.setdefault(m, {})[test] = agg
        paired[test] = paired_deltas(per_method, ref=ref if ref[1] > 0 else None, n_boot=n_boot)
    return {"results": results, "reference": reference, "paired": paired}


# ------------------------------------------------------------------------------------------------ a whole run
def reference_point(metrics: Mapping[str, Any]) -> tuple[float, float] | None:
    """(P_c0, P_w0) of the reference's metrics, or None when THS is undefined there (P_w0 = 0).

    P_c0 = 0 leaves THS defined (``THS = P_c``: every answer counts, the reference knew nothing).

    >>> reference_point({"P_c": {"value": 40.0}, "P_w": {"value": 0.0}}) is None
    True
    >>> reference_point({"P_c": {"value": 0.0}, "P_w": {"value": 60.0}})
    (0.0, 60.0)
    """
    ref = (float(metrics["P_c"]["value"]), float(metrics["P_w"]["value"]))
    return ref if ref[1] > 0 else None


def write_results(plan: "Plan") -> None:
    """Write ``results.json`` (seed-aggregated metrics per method x test set) and ``run.json``.

    Training-free methods are evaluated once (first seed). Where the reference has P_w0 = 0, THS is
    undefined: the test set's ``reference`` entry says so (``THS_undefined``) and no method gets a THS there.
    """
    from rait.core.artifacts import atomic_write_text
    from rait.core.config import to_dict
    from rait.methods import REFERENCE, get

    c = plan.cfg
    free = [m for m in c.methods if not get(m).trains]
    res = aggregate_run(plan.eval_dir, c.methods, list(plan.tests()), c.seeds, baselines=free,
                        n_boot=c.stage("eval").n_boot, ref_method=REFERENCE)
    for ref in res["reference"].values():
        if reference_point({"P_c": {"value": ref["P_c0"]}, "P_w": {"value": ref["P_w0"]}}) is None:
            ref["THS_undefined"] = "P_w0 = 0: THS is undefined for this reference point"
    atomic_write_text(plan.root / "results.json", json.dumps(res, indent=2, sort_keys=True) + "\n")
    tests = {k: str(v) for k, v in plan.tests().items()}
    atomic_write_text(plan.root / "run.json", json.dumps(
        {"name": c.name, "model": c.model, "methods": c.methods, "tests": tests, "seeds": c.seeds,
         "config": to_dict(c)}, indent=2) + "\n")


def summary_table(plan: "Plan") -> str:
    """Markdown table: methods x test sets with P_c, P_w, P_r, THS (95 % CI; ``-`` where THS is undefined)."""
    from rait.stages.evaluate import fmt_ci

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


def stage_times(plan: "Plan") -> dict[str, float]:
    """Seconds each stage took when it last ran (from the markers)."""
    out = {}
    for st in plan.stages.values():
        mk = plan._marker(st)
        if mk.exists():
            out[st.name] = json.loads(mk.read_text()).get("seconds", 0.0)
    return out
