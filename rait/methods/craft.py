"""CRaFT: certainty-represented knowledge flow for refusal-aware tuning (Zhu et al., 2024; method-spec §C).

Stage 2 of CRaFT (stage 1 = probe M0, rehearse, probe M_r is done by ``rait probe`` / ``rait rehearse``).
Needs the rehearsed table merged in (``rait build --rehearsed-table``), which adds ``correctness_rehearsed``.
Knowledge flow Δcor = correctness_rehearsed − correctness (how M's knowledge of the item moves when it is
fine-tuned on things it already masters).

  1. Pools by M0's correctness (as Cor-RAIT): van >= 0.51, idk <= 0.49 (OEQA; exactly 5/10 dropped);
     van >= 0.5, idk < 0.5 (MCQA).
  2. Flow filter on the **idk pool only**: drop rows whose Δcor > 0 (``flow_positive``): rehearsal alone made
     the model better at them, so a refusal label would go stale during SFT (dynamic conflict). Default keeps
     Δcor <= 0, the defensible reading of the paper (spec §C ⚠).
  3. Optional Δcertainty filter (off by default; the released code computes Δcer for plots only): with
     ``max_certainty_flow`` set, also drop idk rows whose certainty_rehearsed − certainty exceeds it.
  4. Rank as CorCer-RAIT (static conflict): van = the ``n_van`` most certain; idk = the ``n_idk`` least certain.
     Ties by table order.
  5. Shuffle with the seed.

Size: the paper's 8,000 + 2,000 (OEQA) / 4,000 + 1,000 (MCQA) scaled to the table (see
:mod:`rait.methods._common`); a pool smaller than its quota is taken whole and the shortfall recorded.

``as_released: true`` reproduces the released code (``triviaqa_RAI.py::CRaFT``, ``mmlu_RAI.py::CRaFT``):
  * OEQA keeps idk rows with Δcor **< 0** strictly (so every 0/10 question is dropped: ``flow_not_negative``);
    MCQA keeps Δcor <= 0. (``idk_keep_flow`` chooses either rule explicitly.)
  * OEQA ``_load_kf`` bug: the rehearsal correctness comes from a left merge that repeats each qid 10 times and
    is assigned back by position, so table row i receives the rehearsal correctness of the question at table
    position ⌊i/10⌋. Mirrored only under ``as_released`` for OEQA (``misaligned_flow`` sets it explicitly);
    the decision record names the id whose value was used.
  * MCQA ties: ``nsmallest/nlargest(keep='all')`` keeps every row tied with the boundary (may exceed quota).
  * MCQA short pools: resampled with replacement up to the quota (``random_state=42`` there; Python ``random``
    here, so other duplicates).

Departures from the released code that remain under ``as_released``:
  * Seeded final shuffle (MCQA's ``sample(frac=1)`` is unseeded; OEQA is not shuffled).
  * OEQA ties are broken by table order (the released quicksort is arbitrary); OEQA's pool-size ``assert``
    becomes take-all + shortfall (``on_shortfall: error`` restores it).
  * Certainty is ranked as stored (the released OEQA pipeline rounds it to 2 decimals first).

Every deviation from the papers and the released code, with its flag: docs/deviations.md.

Example:
    >>> from rait.methods.craft import CraftConfig, build
    >>> rows_in = [(1.0, 0.9, 1.0), (0.8, 0.8, 0.9), (0.2, 0.1, 0.0), (0.3, 0.4, 0.6), (0.0, 0.3, 0.0)]
    >>> table = [{"id": f"q{i}", "question": f"Q{i}?", "answers": [f"A{i}"], "kind": "oeqa", "correctness": c,
    ...           "certainty": s, "correctness_rehearsed": r} for i, (c, s, r) in enumerate(rows_in)]
    >>> rows, summary = build(table, CraftConfig(n_van=2, n_idk=2))
    >>> sorted((r["id"], r["label"]) for r in rows), summary["dropped"]
    ([('q0', 'van'), ('q1', 'van'), ('q2', 'idk'), ('q4', 'idk')], {'flow_positive': 1})
    >>> rows, summary = build(table, CraftConfig(n_van=2, n_idk=2, as_released=True))
    >>> summary["dropped"]  # Δ<0 only, and rows 0-9 all read q0's rehearsal correctness (1.0)
    {'flow_not_negative': 3}
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
    finish,
    plan_sizes,
    require,
    resolve_seed,
    task_kind,
)
from rait.methods.corcer import _summary, select_by_certainty

#: Rows per question in the released rehearsal results (N = 10 samples): the ``_load_kf`` repeat factor.
RELEASED_SAMPLES = 10


@dataclass
class CraftConfig(CommonConfig):
    """CRaFT: correctness pools, knowledge-flow filter on the idk pool, certainty ranking."""

    van_min: float | None = option(None, "van pool: correctness >= van_min (default 0.51 OEQA, 0.5 MCQA)")
    idk_max: float | None = option(None, "idk pool: correctness <= idk_max (default 0.49 OEQA; MCQA: < van_min)")
    idk_keep_flow: str | None = option(
        None, "idk rows kept by Δcor: '<=0' (default) or '<0' (released OEQA); None = per as_released",
        choices=(None, "<=0", "<0"))
    max_certainty_flow: float | None = option(
        None, "optional: also drop idk rows with certainty_rehearsed - certainty > this (off by default)")
    misaligned_flow: bool | None = option(
        None, "mirror the released _load_kf bug (row i uses question i//10's rehearsal correctness); "
        "None = as_released and OEQA")
    keep_all_ties: bool | None = option(
        None, "keep every row tied with the quota boundary (pandas keep='all'); None = as_released and MCQA")

    def __post_init__(self) -> None:
        self._check_common()
        check_thresholds(self)


@register("craft", "CRaFT: correctness pools, drop idk rows whose knowledge flow is positive, rank by certainty",
          CraftConfig, needs=("table", "rehearsed_table"),
          columns=("correctness", "certainty", "correctness_rehearsed"),
          display="CRaFT", paper="Zhu et al., 2024 (arXiv 2410.06913)")
def build(table: list[dict[str, Any]], cfg: CraftConfig) -> tuple[list[dict[str, Any]], Summary]:
    require(table, ("correctness", "certainty", "correctness_rehearsed"), "craft")
    if cfg.max_certainty_flow is not None:
        require(table, ("certainty_rehearsed",), "craft")
    kind = task_kind(table)
    seed = resolve_seed(cfg, kind)
    plan = plan_sizes(cfg, kind, len(table))
    dec = Decisions(table, ("correctness", "certainty", "correctness_rehearsed", "certainty_rehearsed"))
    van, idk, desc = correctness_pools(table, kind, cfg, dec)

    keep_rule = cfg.idk_keep_flow or ("<0" if cfg.as_released and kind == "oeqa" else "<=0")
    misaligned = cfg.misaligned_flow if cfg.misaligned_flow is not None else (cfg.as_released and kind == "oeqa")
    kept = []
    for i in idk:
        src = min(i // RELEASED_SAMPLES, len(table) - 1) if misaligned else i
        flow = float(table[src]["correctness_rehearsed"]) - float(table[i]["correctness"])
        dec.set(i, flow=flow, **({"flow_rehearsed_from": table[src]["id"]} if misaligned else {}))
        if keep_rule == "<0" and flow >= 0:
            dec.drop(i, "flow_not_negative", f"Δcor {flow:+.4g} >= 0; rule keeps Δcor < 0")
        elif keep_rule == "<=0" and flow > 0:
            dec.drop(i, "flow_positive", f"Δcor {flow:+.4g} > 0")
        elif cfg.max_certainty_flow is not None and (
            dcer := float(table[i]["certainty_rehearsed"]) - float(table[i]["certainty"])
        ) > cfg.max_certainty_flow:
            dec.set(i, certainty_flow=dcer)
            dec.drop(i, "certainty_flow", f"Δcertainty {dcer:+.4g} > {cfg.max_certainty_flow}")
        else:
            kept.append(i)
    for i in van:  # informative only: the flow filter does not touch the van pool
        dec.set(i, flow=float(table[i]["correctness_rehearsed"]) - float(table[i]["correctness"]))

    pools = {"van": van, "idk": kept}
    rows, info = select_by_certainty(table, cfg, kind, seed, dec, pools, plan)
    summary = _summary("craft", cfg, kind, plan, desc, pools, info)
    summary["thresholds"]["flow"] = f"idk keeps Δcor {keep_rule}" + (
        f" and Δcertainty <= {cfg.max_certainty_flow}" if cfg.max_certainty_flow is not None else "")
    summary["pools"]["idk_before_flow"] = len(idk)
    summary["misaligned_flow"] = misaligned
    return finish(table, rows, summary, dec, seed)
