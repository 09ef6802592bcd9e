"""CorCer-RAIT: correctness pools + certainty ranking (CRaFT without knowledge flow, the "w/o flow" ablation).

Method-spec §E (CorCer-RAIT) and §C stage 2 minus the Δcor filter. Pools as in Cor-RAIT (OEQA: van
correctness >= 0.51, idk <= 0.49, exactly 5/10 dropped; MCQA: >= 0.5 vs < 0.5). Then, instead of drawing at
random, rank by M0's ``certainty`` (higher = more certain; OEQA: mean pairwise cosine of the sampled answers,
MCQA: −H of the option distribution, so "smallest H" = highest certainty):
  * van = the ``n_van`` **most** certain rows of the van pool (gold target): confidently known;
  * idk = the ``n_idk`` **least** certain rows of the idk pool (refusal target): confidently unknown.
Certainty enters only as a ranking, never as a threshold [C]. Ties are broken by table order (earlier first).

Size: the paper's 8,000 + 2,000 (OEQA) / 4,000 + 1,000 (MCQA) scaled to the table (see
:mod:`rait.methods._common`); a pool smaller than its quota is taken whole, the shortfall recorded.

Departures from the released code (``triviaqa_RAI.py::Corcer_RAIT``, ``mmlu_RAI.py::CorCer_RAIT``):
  * Ties: TriviaQA sorts with pandas' default (unstable) quicksort, so tied rows at the quota boundary are
    picked arbitrarily; we break ties by table order. MMLU uses ``nsmallest/nlargest(keep='all')``, which keeps
    *every* row tied with the last one and may exceed the quota; ``as_released: true`` mirrors this for MCQA.
  * Short pools: MMLU resamples the selection with replacement up to the quota (``random_state=42``);
    ``as_released: true`` mirrors this for MCQA (Python ``random``, so other duplicates). TriviaQA asserts;
    default is take-all + recorded shortfall (``on_shortfall: error`` restores the assertion).
  * The released OEQA set is not shuffled and the MCQA shuffle is unseeded; we always shuffle with the seed.
  * The OEQA certainty in the released pipeline is rounded to 2 decimals before ranking; we rank whatever the
    table holds (round it in the probe if you want that).

Every deviation from the papers and the released code, with its flag: docs/deviations.md.

Example:
    >>> from rait.methods.corcer import CorCerConfig, build
    >>> table = [{"id": f"q{i}", "question": f"Q{i}?", "answers": [f"A{i}"], "kind": "oeqa",
    ...           "correctness": c, "certainty": s}
    ...          for i, (c, s) in enumerate([(1.0, 0.9), (0.8, 0.7), (0.7, 0.95), (0.1, 0.2), (0.0, 0.6)])]
    >>> rows, summary = build(table, CorCerConfig(n_van=2, n_idk=1))
    >>> sorted((r["id"], r["label"]) for r in rows)
    [('q0', 'van'), ('q2', 'van'), ('q3', 'idk')]
    >>> summary["dropped"]
    {'over_quota': 2}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

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
    rank,
    require,
    resolve_seed,
    rng_for,
    shortfall_mode,
    take_ranked,
    task_kind,
)


@dataclass
class CorCerConfig(CommonConfig):
    """CorCer-RAIT: correctness pools, certainty ranking."""

    van_min: float | None = option(None, "van pool: correctness >= van_min (default 0.51 OEQA, 0.5 MCQA)")
    idk_max: float | None = option(None, "idk pool: correctness <= idk_max (default 0.49 OEQA; MCQA: < van_min)")
    keep_all_ties: bool | None = option(
        None, "keep every row tied with the quota boundary (pandas keep='all'); None = as_released and MCQA")

    def __post_init__(self) -> None:
        self._check_common()
        check_thresholds(self)


def select_by_certainty(
    table: Sequence[dict[str, Any]], cfg: Any, kind: str, seed: int, dec: Decisions,
    pools: dict[str, list[int]], plan: dict[str, Any],
) -> tuple[list[dict[str, Any]], Summary]:
    """Rank each pool by certainty (van: highest first, idk: lowest first), take the quota, make rows.

    Returns (rows, info per label: pool, quota, shortfall, with_replacement, ties_kept).
    """
    keep_ties = cfg.keep_all_ties if cfg.keep_all_ties is not None else (cfg.as_released and kind == "mcqa")
    mode = shortfall_mode(cfg, "resample" if kind == "mcqa" else "take_all")
    rows: list[dict[str, Any]] = []
    info: dict[str, Any] = {}
    for label, highest in (("van", True), ("idk", False)):
        pool, k = pools[label], plan[f"n_{label}"]
        ordered = rank(table, pool, "certainty", highest)
        head = take_ranked(table, ordered, k, "certainty", keep_ties)
        for r, i in enumerate(ordered, 1):
            dec.set(i, rank=r, quota=k)
        if len(head) < k:
            picks, inf = draw(rng_for(seed, f"resample/{label}"), head, k, mode, label)
        else:
            picks, inf = head, {"pool": len(pool), "quota": k, "shortfall": 0, "with_replacement": False}
        inf["ties_kept"] = max(0, len(head) - k)
        info[label] = inf
        order = "highest" if highest else "lowest"
        chosen = set(head)
        rows += emit(table, cfg, dec, picks, label,
                     lambda i, k=k, o=order: f"rank {dec.records[i]['rank']} by {o} certainty"
                     + (f" <= quota {k}" if dec.records[i]["rank"] <= k else f", tied at quota {k} (keep='all')")
                     + (" (resampled with replacement)" if inf["with_replacement"] else ""))
        for i in ordered:
            if i not in chosen:
                dec.drop(i, "over_quota", f"rank {dec.records[i]['rank']} > quota {k} by {order} certainty")
    return rows, info


def _summary(name: str, cfg: Any, kind: str, plan: dict, desc: dict, pools: dict, info: dict) -> dict[str, Any]:
    return {"method": name, "kind": kind, "as_released": cfg.as_released, "sizing": plan, "thresholds": desc,
            "ranking": {"van": "highest certainty first", "idk": "lowest certainty first", "ties": "table order"},
            "pools": {k: len(v) for k, v in pools.items()},
            "quotas": {"van": plan["n_van"], "idk": plan["n_idk"]},
            "shortfall": {k: v["shortfall"] for k, v in info.items()},
            "with_replacement": {k: v["with_replacement"] for k, v in info.items()},
            "ties_kept": {k: v["ties_kept"] for k, v in info.items()}}


@register("corcer", "CorCer-RAIT (CRaFT w/o flow): correctness pools, top/bottom by certainty",
          CorCerConfig, columns=("correctness", "certainty"), display="CorCer-RAIT",
          paper="CRaFT w/o flow ablation (arXiv 2410.06913)")
def build(table: list[dict[str, Any]], cfg: CorCerConfig) -> tuple[list[dict[str, Any]], Summary]:
    require(table, ("correctness", "certainty"), "corcer")
    kind = task_kind(table)
    seed = resolve_seed(cfg, kind)
    plan = plan_sizes(cfg, kind, len(table))
    dec = Decisions(table, ("correctness", "certainty"))
    van, idk, desc = correctness_pools(table, kind, cfg, dec)
    pools = {"van": van, "idk": idk}
    rows, info = select_by_certainty(table, cfg, kind, seed, dec, pools, plan)
    return finish(table, rows, _summary("corcer", cfg, kind, plan, desc, pools, info), dec, seed)
