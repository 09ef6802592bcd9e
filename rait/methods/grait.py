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

from rait.config import ConfigError, check_choices, option
from rait.data.schema import QAItem
from rait.errors import DataError
from rait.methods import register
from rait.prompts import STYLES, build_messages, refusal_for

#: paper pool / total rows per task kind (same numbers as the other methods)
PAPER = {"oeqa": {"pool": 87622, "total": 10000}, "mcqa": {"pool": 14042, "total": 5000}}


@dataclass
class GraitConfig:
    """GRAIT settings (method-spec §D5-D6)."""

    grads_dir: str = option("", "gradient store written by `rait grads` (index.json, idk_idk.npy, idk_van.npy)")
    n_van: int | None = option(None, "van rows (default: paper 4,000 scaled to the table, 4:1 with n_idk)")
    n_idk: int | None = option(None, "IdK rows (default: paper 1,000 scaled to the table)")
    n_total: int | None = option(None, "total rows, split 4:1 (default: the paper's total scaled to the table)")
    ik_threshold: float = option(0.5, "IK pool: correctness > this")
    idk_threshold: float = option(0.5, "IDK pool: correctness < this")
    as_released: bool = option(False, "released rule: lowest-S non-greedy IdK rows, all weights 1.0")
    weighting: str = option("adaptive", "IdK weights: adaptive softmax or uniform 1.0", choices=("adaptive", "uniform"))
    weight_sign: int = option(1, "s in exp(s*a/tau): +1 released formula, -1 flipped", choices=(1, -1))
    temperature: float = option(0.05, "softmax temperature tau of the adaptive weights")
    mean_weight: float = option(0.5, "mean IdK weight (released: 500 over 1,000)")
    seed: int = option(42, "seed of the final row shuffle (released: random.seed(42))")
    prompt_style: str = option("refuse", "prompt style of the training inputs", choices=STYLES)
    system_prompt: str | None = option("", "system message ('' = empty turn; null = none)")

    def __post_init__(self) -> None:
        check_choices(self)
        if self.temperature <= 0:
            raise ConfigError(f"GraitConfig.temperature must be > 0, got {self.temperature}")
        if self.idk_threshold > self.ik_threshold:
            raise ConfigError("GraitConfig: idk_threshold must be <= ik_threshold (pools would overlap)")
        for k in ("n_van", "n_idk", "n_total"):
            if getattr(self, k) is not None and getattr(self, k) < 0:
                raise ConfigError(f"GraitConfig.{k} must be >= 0")


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


def plan(cfg: GraitConfig, kind: str, n_table: int) -> tuple[int, int, str]:
    """(n_van, n_idk, rule): the paper total scaled to the table, split 4:1; explicit values override."""
    paper = PAPER[kind]
    if cfg.n_total is not None:
        total, rule = cfg.n_total, "n_total"
    else:
        total = round(paper["total"] * min(1.0, n_table / paper["pool"]))
        rule = f"paper total {paper['total']} x min(1, {n_table}/{paper['pool']}), split 4:1"
    n_idk = round(total * 0.2) if cfg.n_idk is None else cfg.n_idk
    n_van = total - round(total * 0.2) if cfg.n_van is None else cfg.n_van
    return n_van, n_idk, rule


@register("grait", "GRAIT: gradient-similarity IdK selection + adaptive loss weights (needs `rait grads`)",
          GraitConfig)
def build(table: list[dict[str, Any]], cfg: GraitConfig) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Training rows and summary (module docstring). Pure apart from reading ``cfg.grads_dir``."""
    if not table:
        raise DataError("table", None, "empty knowledge table")
    ids = [r["id"] for r in table]
    idk_idk, idk_van, index = load_similarities(cfg.grads_dir, ids)
    cor = np.array([float(r["correctness"]) for r in table])
    items = [QAItem.from_dict(r) for r in table]
    kind = "mcqa" if sum(it.kind == "mcqa" for it in items) * 2 >= len(items) else "oeqa"
    ik = [i for i in range(len(table)) if cor[i] > cfg.ik_threshold]
    idk = [i for i in range(len(table)) if cor[i] < cfg.idk_threshold]
    n_van, n_idk, rule = plan(cfg, kind, len(table))
    shortfall = {}
    # V: top n_van of IK by correctness, descending; stable sort keeps table order on ties
    v = sorted(ik, key=lambda i: -cor[i])[:n_van]
    if len(v) < n_van:
        shortfall["van"] = n_van - len(v)
    g, s = greedy_select(idk_van, idk_idk, idk, v, n_idk)
    released = cfg.as_released
    if released:
        in_g = set(g)
        rest = [k for k in range(len(idk)) if idk[k] not in in_g]
        rest = sorted(rest, key=lambda k: s[k])[:n_idk]  # smallest S first (stable)
        sel = [idk[k] for k in rest]
    else:
        sel = g
    if len(sel) < n_idk:
        shortfall["idk"] = n_idk - len(sel)
    if released or cfg.weighting == "uniform":
        w = np.ones(len(sel))
    else:
        w = adaptive_weights(idk_idk, sel, ik, idk, cfg.mean_weight, cfg.temperature, cfg.weight_sign)

    def row(i: int, label: str, target: str, weight: float) -> dict[str, Any]:
        msgs = build_messages(items[i], cfg.prompt_style, system_prompt=cfg.system_prompt, answer=target)
        return {"messages": msgs, "id": ids[i], "label": label, "weight": float(weight)}

    rows = [row(i, "van", items[i].target, 1.0) for i in v]
    rows += [row(i, "idk", refusal_for(items[i]), wi) for i, wi in zip(sel, w)]
    random.Random(cfg.seed).shuffle(rows)
    summary = {
        "method": "grait", "mode": "as_released" if released else "greedy",
        "weighting": "uniform" if (released or cfg.weighting == "uniform") else "adaptive",
        "weight_sign": cfg.weight_sign, "temperature": cfg.temperature,
        "counts": {"van": len(v), "idk": len(sel), "total": len(rows)},
        "pools": {"ik": len(ik), "idk": len(idk), "neither": len(table) - len(ik) - len(idk)},
        "quota": {"n_van": n_van, "n_idk": n_idk, "rule": rule}, "shortfall": shortfall,
        "thresholds": {"ik": f"> {cfg.ik_threshold}", "idk": f"< {cfg.idk_threshold}"},
        "idk_weights": ({"min": float(w.min()), "median": float(np.median(w)), "max": float(w.max()),
                         "sum": float(w.sum())} if len(w) else None),
        "greedy_order": [ids[i] for i in g],
        "grads": {"dir": str(cfg.grads_dir), "dim": index.get("dim"), "projection": index.get("projection")},
        "seed": cfg.seed,
        "decisions": _decisions(ids, cor, ik, idk, v, g, sel, s, w),
    }
    return rows, summary


def _decisions(ids, cor, ik, idk, v, g, sel, s, w) -> dict[str, dict[str, Any]]:
    """Per-id record for ``rait build --explain``: pool, final greedy score S, greedy rank, label, weight, reason."""
    pool = {i: "ik" for i in ik} | {i: "idk" for i in idk}
    score = {i: float(s[k]) for k, i in enumerate(idk)}
    g_rank = {i: r for r, i in enumerate(g)}
    v_rank = {i: r for r, i in enumerate(v)}
    weight = {i: float(wi) for i, wi in zip(sel, w)}
    out = {}
    for i, item_id in enumerate(ids):
        rec: dict[str, Any] = {"id": item_id, "index": i, "correctness": float(cor[i]), "pool": pool.get(i, "neither"),
                               "S": score.get(i), "greedy_rank": g_rank.get(i), "label": None, "weight": None}
        if i in v_rank:
            rec.update(label="van", weight=1.0, reason=f"selected as van: rank {v_rank[i]} of IK by correctness")
        elif i in weight:
            rec.update(label="idk", weight=weight[i], reason="selected as idk" + (
                f": greedy pick {g_rank[i]}" if i in g_rank else ": among the lowest-S non-greedy IDK rows (as released)"))
        elif i in pool:
            rec["reason"] = "dropped: over quota" if pool[i] == "ik" else "dropped: not selected by the greedy pass"
        else:
            rec["reason"] = "dropped: middle band (neither IK nor IDK)"
        out[str(item_id)] = rec
    return out
