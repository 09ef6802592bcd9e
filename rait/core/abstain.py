"""Training-free abstention: refuse when a score of the model's own knowledge falls below a threshold.

What a practitioner would do instead of fine-tuning, and so the bar a refusal-aware method has to clear. Both
baselines keep the initial model M0 and its greedy answer (Init-Basic's), and refuse the questions whose score
is below a threshold ``tau``:

* ``abstain_consistency``: the score is the probe's certainty (do k sampled answers agree?);
* ``abstain_probe``: the score is a logistic-regression probe's p(correct) on M0's hidden state of the question.

``tau`` is fit on the training pool only: among the pool's scores, the threshold that maximises THS on the pool
when the reference is "answer everything" (M0's own greedy verdicts). Nothing of a test set is used to fit it.

THS of refusing below ``tau`` (method-spec §F): with ``c_i`` / ``w_i`` = 1 when M0's greedy answer to item i is
correct / wrong, the reference point is ``P_c0 = mean(c)``, ``P_w0 = mean(w)``; answering only items with
``s_i >= tau`` gives ``P_c(tau) = mean(c·[s >= tau])`` and ``P_w(tau)`` alike, and
``THS(tau) = P_c(tau) − P_w(tau)·P_c0/P_w0`` (in %). Ties go to the lowest threshold (refuse least).

Example:
    >>> from rait.core.abstain import fit_threshold
    >>> fit = fit_threshold([0.9, 0.8, 0.3, 0.2], ["correct", "correct", "wrong", "wrong"])
    >>> fit["tau"], fit["ths"], fit["refused"]
    (0.8, 50.0, 0.5)
    >>> fit_threshold([0.5, 0.5], ["correct", "wrong"])["tau"] is None   # no threshold beats answering all
    True
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from rait.errors import RaitError


def _pool_arrays(scores: Sequence[float], verdicts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=float)
    v = list(verdicts)
    if len(s) != len(v):
        raise RaitError(f"abstain: {len(s)} scores for {len(v)} verdicts")
    if len(s) == 0:
        raise RaitError("abstain: the training pool is empty; nothing to fit a threshold on")
    if np.isnan(s).any():
        raise RaitError(f"abstain: {int(np.isnan(s).sum())} pool score(s) are NaN; check the probe's certainty")
    c = np.array([x == "correct" for x in v], dtype=float)
    w = np.array([x == "wrong" for x in v], dtype=float)
    return s, c, w


def fit_threshold(scores: Sequence[float], verdicts: Sequence[str]) -> dict[str, Any]:
    """The refusal threshold that maximises THS on the pool (reference: answer everything).

    Args:
        scores: one knowledge score per pool item (higher = more likely known).
        verdicts: M0's greedy verdict per pool item: "correct", "wrong" or "refuse".

    Returns:
        ``{"tau", "ths", "refused", "p_c", "p_w", "p_c0", "p_w0", "n"}``; ``tau`` is None when refusing nothing
        is best (every candidate threshold has THS ≤ 0), and then ``ths`` is 0.
    """
    s, c, w = _pool_arrays(scores, verdicts)
    n = len(s)
    p_c0, p_w0 = 100 * c.mean(), 100 * w.mean()
    best = {"tau": None, "ths": 0.0, "refused": 0.0, "p_c": p_c0, "p_w": p_w0}
    if p_w0 == 0:
        return {**best, "p_c0": p_c0, "p_w0": p_w0, "n": n}
    order = np.argsort(-s, kind="stable")
    cs, ws = np.cumsum(c[order]), np.cumsum(w[order])
    for j in range(n - 1, -1, -1):  # answer items order[:j+1]: threshold = s[order[j]], lowest first
        if j + 1 < n and s[order[j + 1]] == s[order[j]]:
            continue  # a threshold answers every item of its score: only the last of a tie is a candidate
        p_c, p_w = 100 * cs[j] / n, 100 * ws[j] / n
        t = p_c - p_w * p_c0 / p_w0
        if t > best["ths"] + 1e-12:
            best = {"tau": float(s[order[j]]), "ths": float(t), "refused": float(1 - (j + 1) / n),
                    "p_c": float(p_c), "p_w": float(p_w)}
    if best["tau"] is not None:
        best["refused"] = float((s < best["tau"]).mean())
    return {**best, "ths": round(best["ths"], 10), "p_c0": float(p_c0), "p_w0": float(p_w0), "n": n}


def apply_threshold(tau: float | None, scores: Sequence[float], base_verdicts: Sequence[str]) -> list[str]:
    """Test verdicts: "refuse" where the score is below ``tau``, else the base model's own verdict.

    >>> apply_threshold(0.5, [0.9, 0.1, 0.5], ["wrong", "wrong", "correct"])
    ['wrong', 'refuse', 'correct']
    """
    if tau is None:
        return list(base_verdicts)
    return ["refuse" if s < tau else v for s, v in zip(scores, base_verdicts)]


def pool_verdicts(table: Sequence[dict[str, Any]]) -> tuple[list[str], str]:
    """M0's verdict per pool item and where it came from.

    The probe's greedy answer (``greedy_correct``, when the probe ran with ``greedy: true``) is the answer the
    baselines keep; without it, the majority of the k samples stands in (``correctness >= 0.5``).
    """
    if table and all("greedy_correct" in r for r in table):
        return ["correct" if r["greedy_correct"] else "wrong" for r in table], "greedy_correct"
    if table and all("correctness" in r for r in table):
        return ["correct" if r["correctness"] >= 0.5 else "wrong" for r in table], "correctness >= 0.5"
    raise RaitError("abstain: the knowledge table has neither greedy_correct nor correctness; "
                    "probe the pool with rait probe (greedy: true)")


# ------------------------------------------------------------------------------------------- pipeline pieces
def write_decisions(ctx: Any, scores: dict[str, float], fit: dict[str, Any], extra: dict[str, Any]) -> None:
    """Write a training-free method's eval directory for one test set from a threshold on per-item scores.

    Every test item keeps Init-Basic's greedy answer and verdict (``ctx.reference``) unless its score is below
    ``fit["tau"]``, in which case the verdict is "refuse" (the refusal text replaces the output; M0's answer stays
    in ``m0_output``). ``metrics.json`` is computed by :func:`rait.stages.evaluate.compute_metrics` against the same
    reference, so the method sits in every table beside the trained ones.
    """
    import json
    from dataclasses import replace
    from pathlib import Path

    from rait.core.artifacts import atomic_write_text, read_jsonl, write_jsonl, write_manifest
    from rait.stages.evaluate import EvalConfig, compute_metrics, load_reference

    if ctx.reference is None:
        raise RaitError(f"{ctx.method}: needs the Init-Basic evaluation of the same test set as its reference")
    base = read_jsonl(Path(ctx.reference) / "items.jsonl")
    missing = [r["id"] for r in base if r["id"] not in scores]
    if missing:
        raise RaitError(f"{ctx.method}: no score for {len(missing)} test item(s) of {ctx.test}, e.g. {missing[0]!r}")
    verdicts = apply_threshold(fit["tau"], [scores[r["id"]] for r in base], [r["verdict"] for r in base])
    recs = []
    for r, v in zip(base, verdicts):
        refused = v == "refuse" and r["verdict"] != "refuse"
        rec = {**r, "output": "I don't know" if refused else r["output"], "verdict": v,
               "confidence": float(scores[r["id"]]), "m0_output": r["output"]}
        if refused and isinstance(r.get("verdicts"), dict):  # every scoring view (papers', echo-safe) refuses too
            rec["verdicts"] = {k: "refuse" for k in r["verdicts"]}
        recs.append(rec)
    cfg = replace(ctx.eval if ctx.eval is not None else EvalConfig(), prompt="basic", reference=str(ctx.reference))
    metrics = compute_metrics(recs, cfg, load_reference(ctx.reference))
    metrics.update({"model": ctx.model, "data": str(ctx.data), "method": ctx.method, "abstain": {
        "tau": fit["tau"], "pool_ths": fit["ths"], "pool_refused": fit["refused"], "pool_n": fit["n"], **extra}})
    out = Path(ctx.out)
    write_jsonl(out / "items.jsonl", recs)
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2, sort_keys=True, default=float) + "\n")
    write_manifest(out, "eval", {"method": ctx.method, **extra},
                   {k: str(v) for k, v in ctx.artifacts.items()} | {"reference": str(ctx.reference)},
                   outputs={"tau": fit["tau"], "n": len(recs)})
