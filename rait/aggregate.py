"""Aggregate evaluation runs across training seeds: seed-mean values, sd across seeds, paired bootstrap CIs.

The CI of a seed-averaged rate resamples *items* (the same resample for every seed, so seeds stay paired) and
averages the per-seed rates of each resample; the THS reference point stays fixed.

Example:
    >>> from rait.aggregate import aggregate_verdicts
    >>> m = aggregate_verdicts([["correct", "wrong"], ["correct", "correct"]], ref=(50.0, 50.0), n_boot=0)
    >>> m["P_c"]["value"], m["THS"]["value"]
    (75.0, 50.0)
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from rait.metrics import RATE_KEYS, VERDICTS, ths

if TYPE_CHECKING:
    from rait.pipeline import Plan

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
    from rait.artifacts import atomic_write_text, read_jsonl
    from rait.config import to_dict
    from rait.methods import REFERENCE, get

    c = plan.cfg
    results: dict[str, Any] = {}
    reference: dict[str, Any] = {}
    n_boot = c.stage("eval").n_boot
    for test in plan.tests():
        ref_m = json.loads((plan.eval_dir(REFERENCE, c.seeds[0], test) / "metrics.json").read_text())
        ref = reference_point(ref_m)
        reference[test] = {"P_c0": ref_m["P_c"]["value"], "P_w0": ref_m["P_w"]["value"]}
        if ref is None:
            reference[test]["THS_undefined"] = "P_w0 = 0: THS is undefined for this reference point"
        for m in c.methods:
            seeds = c.seeds if get(m).trains else [c.seeds[0]]
            dirs = [plan.eval_dir(m, s, test) for s in seeds]
            per_seed = [[r["verdict"] for r in read_jsonl(d / "items.jsonl")] for d in dirs]
            agg = aggregate_verdicts(per_seed, ref=ref, n_boot=n_boot)
            agg.update(mean_extras([json.loads((d / "metrics.json").read_text()) for d in dirs]))
            agg["seeds"] = seeds
            results.setdefault(m, {})[test] = agg
    atomic_write_text(plan.root / "results.json",
                      json.dumps({"results": results, "reference": reference}, indent=2, sort_keys=True) + "\n")
    tests = {k: str(v) for k, v in plan.tests().items()}
    atomic_write_text(plan.root / "run.json", json.dumps(
        {"name": c.name, "model": c.model, "methods": c.methods, "tests": tests, "seeds": c.seeds,
         "config": to_dict(c)}, indent=2) + "\n")


def summary_table(plan: "Plan") -> str:
    """Markdown table: methods x test sets with P_c, P_w, P_r, THS (95 % CI; ``-`` where THS is undefined)."""
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


def stage_times(plan: "Plan") -> dict[str, float]:
    """Seconds each stage took when it last ran (from the markers)."""
    out = {}
    for st in plan.stages.values():
        mk = plan._marker(st)
        if mk.exists():
            out[st.name] = json.loads(mk.read_text()).get("seconds", 0.0)
    return out
