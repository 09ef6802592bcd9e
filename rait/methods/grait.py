"""GRAIT (method-spec §D): gradient-driven IdK selection and adaptive per-sample loss weights.

Inputs: the knowledge table and a gradient store from ``rait grads`` (``cfg.grads_dir``: ``index.json``,
``idk_idk.npy``, ``idk_van.npy``; N x N cosines of refusal-labelled (row) vs refusal / Cor-RAIT-labelled
(column) gradient features, rows in table order).

1. IK = {cor > ik_threshold}, IDK = {cor < idk_threshold} (both 0.5; cor == 0.5 is in neither).
2. V = the top ``n_van`` of IK by correctness, descending, ties in table order (released sort key).
3. Greedy: ``S(j) = Σ_{k∈V} idk_van[j, k]`` for j ∈ IDK; ``n_idk`` times: ``s* = argmax_{j∈IDK∖G} S(j)`` (first
   in table order on ties), append to G, ``S(j) += idk_idk[j, s*]``.
4. IdK set: G (default) or, ``as_released: true``, the ``n_idk`` members of IDK∖G with the smallest S.
5. Weights of the IdK rows: ``a_i = mean_{k∈IK} idk_idk[i, k] − mean_{k∈IDK} idk_idk[i, k]`` (all of IK, all of
   IDK, i itself included), ``w_i = scale · softmax(s · a / τ)_i`` with τ = 0.05 and ``scale = mean_weight ·
   n_idk`` (released: 500 over 1,000, mean 0.5); van rows weigh 1.0.
6. Rows: V with the gold target, the IdK set with the refusal, REFUSE prompt; shuffled with ``seed`` (the
   released SFT keeps the file order of a seed-42 shuffle).

Departures from the released code (``construct_grait_data.py``) and why:

- Final IdK set: the released last line keeps the ``n_idk`` *lowest*-S members of IDK∖G and discards G
  (⚠ spec D5). Default here: G, the set the greedy pass builds; the released rule is ``as_released: true``.
- Weights: the released file overwrites every IdK weight with 1.0 (⚠ D6), so it trains unweighted. Default
  here: the adaptive softmax weights it computes first; ``as_released: true`` (or ``weighting: uniform``)
  gives 1.0.
- Sign: the weight grows with a_i, i.e. with how much refusing i resembles refusing *known* questions (⚠ D6);
  ``weight_sign: -1`` flips it. Default +1 = released formula.
- Sizes: the paper's 4,000 van + 1,000 idk (MCQA; 8,000 + 2,000 of 87,622 for OEQA, where no GRAIT code is
  released) are scaled by ``len(table) / paper pool`` (capped at 1) and split 4:1, the rule of the other
  methods (``rait.methods._common``); ``n_van`` / ``n_idk`` override. A pool smaller than its quota is taken
  whole and the shortfall recorded. The released code has no such scaling (fixed 4,000 / 1,000).
- Similarities: the script computing the released matrices is not published; the store holds cosines of
  L2-normalised LESS features (spec D4's reading).

Every deviation from the papers and the released code, with its flag: docs/deviations.md.

Example:
    >>> import numpy as np
    >>> from rait.methods.grait import greedy_select, adaptive_weights
    >>> idk_van = np.array([[.9, .1, .0], [.2, .2, .0], [.5, .0, .0]], np.float32)
    >>> idk_idk = np.eye(3, dtype=np.float32)
    >>> g, s = greedy_select(idk_van, idk_idk, idk=[0, 1, 2], van=[0, 1], n=2)
    >>> g
    [0, 2]
    >>> w = adaptive_weights(idk_idk, sel=[0, 2], ik=[1], idk=[0, 2], mean_weight=0.5)
    >>> [round(float(x), 3) for x in w]
    [0.5, 0.5]
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from rait.core.config import ConfigError, option
from rait.errors import DataError
from rait.methods import Summary, register
from rait.methods._common import CommonConfig, Decisions, emit, finish, plan_sizes, task_kind


@dataclass
class GraitConfig(CommonConfig):
    """GRAIT settings (method-spec §D5-D6); sizing fields as every method (``rait.methods._common``)."""

    seed: int | None = option(42, "seed of the final row shuffle (released: random.seed(42))")
    grads_dir: str = option("", "gradient store written by `rait grads` (index.json, idk_idk.npy, idk_van.npy)")
    ik_threshold: float = option(0.5, "IK pool: correctness > this")
    idk_threshold: float = option(0.5, "IDK pool: correctness < this")
    weighting: str = option("adaptive", "IdK weights: adaptive softmax or uniform 1.0", choices=("adaptive", "uniform"))
    weight_sign: int = option(1, "s in exp(s*a/tau): +1 released formula, -1 flipped", choices=(1, -1))
    temperature: float = option(0.05, "softmax temperature tau of the adaptive weights")
    mean_weight: float = option(0.5, "mean IdK weight (released: 500 over 1,000)")

    def __post_init__(self) -> None:
        self._check_common()
        if self.temperature <= 0:
            raise ConfigError(f"GraitConfig.temperature must be > 0, got {self.temperature}")
        if self.idk_threshold > self.ik_threshold:
            raise ConfigError("GraitConfig: idk_threshold must be <= ik_threshold (pools would overlap)")
        if self.on_shortfall == "resample":
            raise ConfigError("GraitConfig.on_shortfall: take_all or error (the greedy pass does not resample)")


def load_similarities(grads_dir: str | Path, ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray, dict]:
    """Memory-mapped ``idk_idk``, ``idk_van`` of a store, checked against the table ids and order.

    Raises:
        DataError: missing files, or ids/order/shape different from the table (names the first mismatch).
    """
    import json

    d = Path(grads_dir)
    if not str(grads_dir):
        raise DataError("grait.grads_dir", None, "not set: run `rait grads` and point grads_dir at its --out")
    ipath = d / "index.json"
    if not ipath.exists():
        raise DataError(ipath, None, "gradient index not found (run `rait grads` to completion)")
    index = json.loads(ipath.read_text())
    gids = list(index.get("ids", []))
    if gids != list(ids):
        if len(gids) != len(ids):
            msg = f"{len(gids)} ids, but the knowledge table has {len(ids)} rows"
        else:
            r = next(i for i, (a, b) in enumerate(zip(gids, ids)) if a != b)
            msg = f"row {r}: id {gids[r]!r}, but the knowledge table has {ids[r]!r} there"
        raise DataError(ipath, None, f"gradient store does not match the table ({msg}); recompute the "
                        "features for this table")
    mats = []
    for name in ("idk_idk", "idk_van"):
        p = d / f"{name}.npy"
        if not p.exists():
            raise DataError(p, None, "similarity block not found (run `rait grads merge`)")
        m = np.load(p, mmap_mode="r")
        if m.shape != (len(ids), len(ids)):
            raise DataError(p, None, f"shape {m.shape}, expected {(len(ids), len(ids))}")
        mats.append(m)
    return mats[0], mats[1], index


def greedy_select(idk_van: np.ndarray, idk_idk: np.ndarray, idk: Sequence[int], van: Sequence[int], n: int
                  ) -> tuple[list[int], np.ndarray]:
    """The released greedy pass; returns (G in selection order, final S over ``idk``, aligned with ``idk``).

    Args:
        idk_van, idk_idk: N x N similarity blocks (table-row indices).
        idk: table rows of the IDK pool; van: table rows of V; n: selections.
    """
    idk = np.asarray(idk, dtype=np.int64)
    van = np.asarray(van, dtype=np.int64)
    s = np.zeros(len(idk), dtype=np.float64)
    for c in range(0, len(idk), 1024):  # row chunks: never the whole N x N in memory
        rows = np.asarray(idk_van[idk[c: c + 1024]], dtype=np.float64)
        s[c: c + 1024] = rows[:, van].sum(axis=1) if len(van) else 0.0
    taken = np.zeros(len(idk), dtype=bool)
    g: list[int] = []
    for _ in range(min(n, len(idk))):
        cand = np.where(taken, -np.inf, s)
        j = int(np.argmax(cand))  # first maximum = first in table order
        taken[j] = True
        g.append(int(idk[j]))
        s += np.asarray(idk_idk[idk, idk[j]], dtype=np.float64)  # column s* of IDK_idk
    return g, s


def adaptive_weights(idk_idk: np.ndarray, sel: Sequence[int], ik: Sequence[int], idk: Sequence[int],
                     mean_weight: float = 0.5, temperature: float = 0.05, sign: int = 1) -> np.ndarray:
    """``mean_weight · n · softmax(sign · a / temperature)`` with ``a_i = mean_IK idk_idk[i] − mean_IDK idk_idk[i]``."""
    if not len(sel):
        return np.zeros(0)
    rows = np.asarray(idk_idk[np.asarray(sel)], dtype=np.float64)
    a_ik = rows[:, np.asarray(ik)].mean(axis=1) if len(ik) else np.zeros(len(sel))
    a_idk = rows[:, np.asarray(idk)].mean(axis=1) if len(idk) else np.zeros(len(sel))
    z = sign * (a_ik - a_idk) / temperature
    e = np.exp(z - z.max())
    return mean_weight * len(sel) * e / e.sum()


@register("grait", "GRAIT: gradient-similarity IdK selection + adaptive loss weights (needs `rait grads`)",
          GraitConfig, needs=("table", "grads"), columns=("correctness",), display="GRAIT",
          paper="GRAIT (arXiv 2502.05911)")
def build(table: list[dict[str, Any]], cfg: GraitConfig) -> tuple[list[dict[str, Any]], Summary]:
    """Training rows and summary (module docstring). Pure apart from reading ``cfg.grads_dir``."""
    kind = task_kind(table)
    ids = [r["id"] for r in table]
    idk_idk, idk_van, index = load_similarities(cfg.grads_dir, ids)
    cor = np.array([float(r["correctness"]) for r in table])
    ik = [i for i in range(len(table)) if cor[i] > cfg.ik_threshold]
    idk = [i for i in range(len(table)) if cor[i] < cfg.idk_threshold]
    plan = plan_sizes(cfg, kind, len(table))
    v = sorted(ik, key=lambda i: -cor[i])[:plan["n_van"]]  # top n_van of IK; stable sort keeps table order on ties
    g, s = greedy_select(idk_van, idk_idk, idk, v, plan["n_idk"])
    if cfg.as_released:
        in_g = set(g)
        rest = sorted((k for k in range(len(idk)) if idk[k] not in in_g), key=lambda k: s[k])[:plan["n_idk"]]
        sel = [idk[k] for k in rest]  # smallest S first (stable)
    else:
        sel = g
    shortfall = {"van": plan["n_van"] - len(v), "idk": plan["n_idk"] - len(sel)}
    if cfg.on_shortfall == "error" and any(shortfall.values()):
        raise DataError("table", None, f"GRAIT pools are smaller than their quotas (shortfall {shortfall}; "
                                       "on_shortfall=error)")
    uniform = cfg.as_released or cfg.weighting == "uniform"
    w = np.ones(len(sel)) if uniform else adaptive_weights(
        idk_idk, sel, ik, idk, cfg.mean_weight, cfg.temperature, cfg.weight_sign)
    dec = _decisions(table, cor, ik, idk, v, g, sel, s, w)
    rows = emit(table, cfg, dec, v, "van", lambda i: f"rank {v.index(i)} of IK by correctness")
    rows += emit(table, cfg, dec, sel, "idk", lambda i: f"greedy pick {g.index(i)}" if i in g
                 else "among the lowest-S non-greedy IDK rows (as released)")
    weight = {i: float(wi) for i, wi in zip(sel, w)}
    for r, i in zip(rows[len(v):], sel):
        r["weight"] = weight[i] * cfg.idk_weight
    summary = {
        "method": "grait", "kind": kind, "as_released": cfg.as_released, "sizing": plan,
        "thresholds": {"van": f"correctness > {cfg.ik_threshold}", "idk": f"correctness < {cfg.idk_threshold}"},
        "pools": {"van": len(ik), "idk": len(idk)}, "quotas": {"van": plan["n_van"], "idk": plan["n_idk"]},
        "shortfall": shortfall, "mode": "as_released" if cfg.as_released else "greedy",
        "weighting": "uniform" if uniform else "adaptive", "weight_sign": cfg.weight_sign,
        "temperature": cfg.temperature, "greedy_order": [ids[i] for i in g],
        "idk_weights": ({"min": float(w.min()), "median": float(np.median(w)), "max": float(w.max()),
                         "sum": float(w.sum())} if len(w) else None),
        "grads": {"dir": str(cfg.grads_dir), "dim": index.get("dim"), "projection": index.get("projection")},
    }
    return finish(table, rows, summary, dec, cfg.seed, shuffle=random.Random(cfg.seed))


def _decisions(table, cor, ik, idk, v, g, sel, s, w) -> Decisions:
    """Per-row records for ``rait build --explain``: pool, final greedy score S, greedy rank, weight, drop reason."""
    dec = Decisions(table, ("correctness",))
    chosen = set(v) | set(sel)
    g_rank = {i: r for r, i in enumerate(g)}
    weight = {i: float(wi) for i, wi in zip(sel, w)}
    for k, i in enumerate(idk):
        dec.set(i, pool="idk", S=float(s[k]), greedy_rank=g_rank.get(i), weight=weight.get(i))
        if i not in chosen:
            dec.drop(i, "not_selected", "not selected by the greedy pass")
    for i in ik:
        dec.set(i, pool="ik", S=None, greedy_rank=None, weight=1.0 if i in chosen else None)
        if i not in chosen:
            dec.drop(i, "over_quota", "rank beyond the van quota by correctness")
    for i in range(len(table)):
        if dec.records[i].get("pool") is None:
            dec.set(i, pool="neither", S=None, greedy_rank=None, weight=None)
            dec.drop(i, "middle_band", "neither IK nor IDK")
    return dec
