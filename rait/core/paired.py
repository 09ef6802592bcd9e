"""Paired differences between methods on the same test items: ΔP_c, ΔP_w, ΔTHS with paired bootstrap intervals.

Two methods evaluated on the same items are compared item by item. For each method and item, the outcome is
first averaged over that method's seeds (``c_i`` = share of seeds in which item i is correct, ``w_i`` = wrong;
seeds stay together: an item is resampled with all its seeds). The per-item difference of method a against b is

    d_i(P_c) = 100·(c_a,i − c_b,i),   d_i(P_w) = 100·(w_a,i − w_b,i),   d_i(THS) = d_i(P_c) − d_i(P_w)·P_c0/P_w0

(THS is linear in (P_c, P_w) for a fixed reference (P_c0, P_w0) = Init-Basic, so the mean of d_i(THS) is
THS(a) − THS(b)). The interval is the percentile bootstrap of the mean of d_i: items are resampled with
replacement, the *same* resample for both methods (and for every pair, so the table is coherent). A cell is
significant when its 95 % interval excludes 0. ``n_for_1pt`` is the number of items a ±1-point 95 % interval
would need at the observed per-item spread: ``ceil((z·sd(d_i) / 1)^2)``, z = 1.96 (normal approximation).

Example:
    >>> from rait.core.paired import paired_deltas
    >>> per_method = {"init_basic": [["correct", "wrong", "wrong", "refuse"]],
    ...               "tuned": [["correct", "refuse", "wrong", "refuse"], ["correct", "refuse", "refuse", "wrong"]]}
    >>> out = paired_deltas(per_method, ref=(25.0, 50.0), n_boot=200, seed=0)
    >>> d = out["pairs"]["tuned"]["init_basic"]
    >>> d["P_c"]["value"], d["P_w"]["value"], d["THS"]["value"]
    (0.0, -25.0, 12.5)
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from rait.core.metrics import VERDICTS

DELTA_KEYS = ("P_c", "P_w", "THS")
#: Two-sided 95 % normal quantile (``scipy.stats.norm.ppf(0.975)``), for the ±1-point sample size.
Z_95 = 1.959963984540054


def per_item_rates(per_seed: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
    """Per-item correct and wrong rates in %, averaged over seeds: two arrays of shape ``(n_items,)``.

    >>> c, w = per_item_rates([["correct", "wrong"], ["correct", "refuse"]])
    >>> c.tolist(), w.tolist()
    ([100.0, 0.0], [0.0, 50.0])
    """
    lens = {len(v) for v in per_seed}
    if not per_seed or len(lens) != 1 or 0 in lens:
        raise ValueError(f"every seed needs verdicts for the same non-empty item list, got lengths {sorted(lens)}")
    try:
        codes = np.array([[VERDICTS.index(v) for v in vs] for vs in per_seed])  # (S, N)
    except ValueError as e:
        raise ValueError(f"unknown verdict: {e}; expected one of {VERDICTS}") from None
    return (codes == 0).mean(axis=0) * 100.0, (codes == 1).mean(axis=0) * 100.0


def _cell(point: float, boots: np.ndarray, diffs: np.ndarray, alpha: float) -> dict[str, Any]:
    lo, hi = (float(x) for x in np.percentile(boots, [100 * alpha / 2, 100 * (1 - alpha / 2)]))
    sd = float(diffs.std(ddof=1)) if diffs.size > 1 else math.nan
    return {"value": float(point), "lo": lo, "hi": hi, "significant": bool(lo > 0 or hi < 0), "sd_item": sd,
            "n_for_1pt": int(math.ceil((Z_95 * sd) ** 2)) if math.isfinite(sd) else None}


def paired_deltas(per_method: Mapping[str, Sequence[Sequence[str]]], ref: tuple[float, float] | None = None,
                  n_boot: int = 1000, seed: int = 0, alpha: float = 0.05) -> dict[str, Any]:
    """ΔP_c, ΔP_w (and ΔTHS with a reference) of every method against every other, with paired bootstrap CIs.

    Args:
        per_method: ``{method: verdicts per seed}``; every list covers the same items in the same order.
        ref: THS reference ``(P_c0, P_w0)`` in % (Init-Basic); None or P_w0 = 0: no ΔTHS.
        n_boot: bootstrap resamples of the items (0: the interval collapses to the point).
        seed: RNG seed of the resamples (one index matrix shared by every pair).
        alpha: 1 − confidence level.

    Returns:
        ``{"n", "n_boot", "seed", "alpha", "methods", "pairs": {a: {b: {key: {"value", "lo", "hi",
        "significant", "sd_item", "n_for_1pt"}}}}}`` for a ≠ b, key in P_c, P_w (THS): the value is a − b.
    """
    methods = list(per_method)
    rates = {m: per_item_rates(v) for m, v in per_method.items()}
    ns = {r[0].size for r in rates.values()}
    if len(ns) != 1:
        raise ValueError(f"methods cover different numbers of items: {sorted(ns)}")
    n = ns.pop()
    k = ref[0] / ref[1] if ref is not None and ref[1] > 0 else None
    keys = DELTA_KEYS if k is not None else DELTA_KEYS[:2]
    # per-item contribution of each method to each statistic: (M, K, N)
    contrib = np.stack([np.stack([c, w] + ([c - w * k] if k is not None else [])) for c, w in rates.values()])
    if n_boot > 0:
        idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
        boots = np.stack([contrib[:, :, idx[b]].mean(axis=2) for b in range(n_boot)], axis=2)  # (M, K, B)
    else:
        boots = contrib.mean(axis=2)[:, :, None]
    pairs: dict[str, Any] = {}
    for i, a in enumerate(methods):
        for j, b in enumerate(methods):
            if i != j:
                diffs = contrib[i] - contrib[j]  # (K, N)
                pairs.setdefault(a, {})[b] = {key: _cell(diffs[q].mean(), boots[i, q] - boots[j, q], diffs[q], alpha)
                                              for q, key in enumerate(keys)}
    return {"n": n, "n_boot": n_boot, "seed": seed, "alpha": alpha, "methods": methods, "pairs": pairs}
