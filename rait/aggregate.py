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

import math
from typing import Any, Mapping, Sequence

import numpy as np

from rait.metrics import RATE_KEYS, VERDICTS, ths

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
