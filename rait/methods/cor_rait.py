"""Cor-RAIT: correctness-only refusal-aware tuning (R-Tuning's refusal idea as used by CRaFT/GRAIT).

Method-spec §E (Cor-RAIT) and §C step 1. Split the knowledge table by M0's correctness:
  * van pool: correctness >= ``van_min`` (OEQA 0.51 = at least 6/10 samples correct; MCQA 0.5);
  * idk pool: correctness <= ``idk_max`` (OEQA 0.49 = at most 4/10); MCQA: correctness < 0.5;
  * OEQA questions in between (exactly 5/10) are dropped (``middle_band``).
Then draw ``n_van`` from the van pool (gold target) and ``n_idk`` from the idk pool (target replaced by the
refusal, "I don't know" / "I don't know.") at random, and shuffle with the seed.

Size: the paper's 8,000 + 2,000 (OEQA) / 4,000 + 1,000 (MCQA), scaled to the table (see
:mod:`rait.methods._common`); a pool smaller than its quota is taken whole with the shortfall recorded.

Departures from the released code (``triviaqa_RAI.py::Cor_RAIT``, ``mmlu_RAI.py::Cor_RAIT``):
  * Python ``random`` with the same seeds (0 / 42) instead of pandas ``random_state``: same rule, other ids.
  * MMLU draws both pools **with replacement** (duplicates even when the pool is large enough); default: without
    replacement. ``as_released: true`` restores it for MCQA.
  * TriviaQA ``assert``s the pools are large enough; default: take the whole pool and record the shortfall
    (``on_shortfall: error`` restores the assertion).
  * The released OEQA set is not shuffled and the MCQA shuffle is unseeded; we always shuffle with the seed.

Every deviation from the papers and the released code, with its flag: docs/deviations.md.

Example:
    >>> from rait.methods.cor_rait import CorRaitConfig, build
    >>> table = [{"id": f"q{i}", "question": f"Q{i}?", "answers": [f"A{i}"], "kind": "oeqa",
    ...           "correctness": c} for i, c in enumerate([0.0, 0.2, 0.5, 0.6, 0.9, 1.0])]
    >>> rows, summary = build(table, CorRaitConfig(n_van=2, n_idk=2))
    >>> sorted((r["id"], r["messages"][-1]["content"]) for r in rows)[:2]
    [('q0', "I don't know"), ('q1', "I don't know")]
    >>> summary["dropped"]
    {'middle_band': 1, 'not_sampled': 1}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rait.core.config import option
from rait.methods import Summary, register
from rait.methods._common import (
    CommonConfig,
    Decisions,
    check_thresholds,
    correctness_pools,
    draw,
    emit,
    finish,
    plan_sizes,
    require,
    resolve_seed,
    rng_for,
    shortfall_mode,
    task_kind,
)


@dataclass
class CorRaitConfig(CommonConfig):
    """Cor-RAIT: correctness thresholds, random draws from each pool."""

    van_min: float | None = option(None, "van pool: correctness >= van_min (default 0.51 OEQA, 0.5 MCQA)")
    idk_max: float | None = option(None, "idk pool: correctness <= idk_max (default 0.49 OEQA; MCQA: < van_min)")

    def __post_init__(self) -> None:
        self._check_common()
        check_thresholds(self)


@register("cor_rait", "Cor-RAIT: correctness split (ik -> gold, idk -> refusal), random draw per pool",
          CorRaitConfig, columns=("correctness",), display="Cor-RAIT", paper="CRaFT paper baseline (arXiv 2410.06913)",
          random_draw=True)
def build(table: list[dict[str, Any]], cfg: CorRaitConfig) -> tuple[list[dict[str, Any]], Summary]:
    require(table, ("correctness",), "cor_rait")
    kind = task_kind(table)
    seed = resolve_seed(cfg, kind)
    plan = plan_sizes(cfg, kind, len(table))
    dec = Decisions(table, ("correctness",))
    van, idk, desc = correctness_pools(table, kind, cfg, dec)
    mode = shortfall_mode(cfg, "always_replace" if kind == "mcqa" else "take_all")
    rows, info = [], {}
    for label, pool, k in (("van", van, plan["n_van"]), ("idk", idk, plan["n_idk"])):
        picks, info[label] = draw(rng_for(seed, label), pool, k, mode, label)
        rows += emit(table, cfg, dec, picks, label, lambda i, p=pool, k=k: f"drawn at random ({k} of {len(p)})")
        for i in pool:
            dec.set(i, quota=k)
    summary = {"method": "cor_rait", "kind": kind, "as_released": cfg.as_released, "sizing": plan,
               "thresholds": desc, "pools": {"van": len(van), "idk": len(idk)},
               "quotas": {"van": plan["n_van"], "idk": plan["n_idk"]},
               "shortfall": {k: v["shortfall"] for k, v in info.items()},
               "with_replacement": {k: v["with_replacement"] for k, v in info.items()}}
    return finish(table, rows, summary, dec, seed)
