"""Van-Tuning: SFT on N randomly drawn training questions, every one with its gold answer (no refusals).

The "vanilla" baseline of CRaFT and GRAIT (method-spec §E). Inputs use the REFUSE instruction (MMLU [C],
TriviaQA presumably [I]); the target is the gold letter (MCQA) or the first gold alias (OEQA).

Size: ``n_total`` rows; by default the paper's N (10,000 TriviaQA / 5,000 MMLU) scaled to the table size
(see :mod:`rait.methods._common`). Seeds: 0 (OEQA) and 42 (MCQA) unless ``seed`` is set. Rows are shuffled
with the seed.

Departures from the released code (``triviaqa_RAI.py::Van_Tuning``, ``mmlu_RAI.py::Van_Tuning``):
  * The draw uses Python's ``random`` with the same seed, not pandas ``random_state``: same rule, other ids.
  * MMLU draws **with replacement** in the released code (duplicates); by default we draw without replacement
    and take the whole table when it is smaller than N (shortfall recorded). ``as_released: true`` restores
    the with-replacement draw for MCQA (OEQA was already without replacement).
  * The released OEQA output is not shuffled and MCQA's ``mmlu_RAI.py`` does not shuffle Van-Tuning either;
    we always apply a seeded shuffle (training shuffles anyway).

Every deviation from the papers and the released code, with its flag: docs/deviations.md.

Example:
    >>> from rait.methods.van import VanConfig, build
    >>> table = [{"id": f"q{i}", "question": f"Q{i}?", "answers": [f"A{i}"], "kind": "oeqa",
    ...           "correctness": i / 4} for i in range(5)]
    >>> rows, summary = build(table, VanConfig(n_total=3))
    >>> summary["counts"], sorted(r["messages"][-1]["content"] for r in rows)
    ({'van': 3, 'idk': 0}, ['A0', 'A1', 'A2'])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rait.methods import Summary, register
from rait.methods._common import (
    CommonConfig,
    Decisions,
    draw,
    emit,
    finish,
    plan_sizes,
    resolve_seed,
    rng_for,
    shortfall_mode,
    task_kind,
)


@dataclass
class VanConfig(CommonConfig):
    """Van-Tuning: ``n_total`` random items with gold answers (``idk_share`` / ``n_idk`` are ignored)."""


@register("van", "Van-Tuning baseline: N random training questions, all with gold answers", VanConfig,
          display="Van-Tuning", paper="baseline of CRaFT (arXiv 2410.06913) and GRAIT (arXiv 2502.05911)",
          random_draw=True)
def build(table: list[dict[str, Any]], cfg: VanConfig) -> tuple[list[dict[str, Any]], Summary]:
    kind = task_kind(table)
    seed = resolve_seed(cfg, kind)
    plan = plan_sizes(cfg, kind, len(table), split=False)
    dec = Decisions(table, ("correctness",))
    mode = shortfall_mode(cfg, "always_replace" if kind == "mcqa" else "take_all")
    picks, info = draw(rng_for(seed, "van"), range(len(table)), plan["n_van"], mode, "van")
    rows = emit(table, cfg, dec, picks, "van", lambda i: f"drawn at random ({plan['n_van']} of {len(table)})")
    for r in dec.records:
        r["pool"] = "van"
    summary = {"method": "van", "kind": kind, "as_released": cfg.as_released, "sizing": plan,
               "thresholds": {}, "pools": {"van": len(table)}, "quotas": {"van": plan["n_van"], "idk": 0},
               "shortfall": {"van": info["shortfall"]}, "with_replacement": {"van": info["with_replacement"]}}
    return finish(table, rows, summary, dec, seed)
