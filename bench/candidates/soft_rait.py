"""Soft-RAIT (a candidate for rait's own method that lost; kept here as a plugin so its measurement in
docs/own_method.md can be rerun): soft labels instead of a hard known / unknown split.

Use it as a plugin: ``plugins: [bench/candidates/soft_rait.py]`` and ``soft_rait`` in ``methods:`` of a run
config (``python bench/quality.py --config configs/graded_bench.yaml --set plugins=[bench/candidates/soft_rait.py]
...``); it is not part of rait's method registry.

Every pool item i gets two training rows with the same prompt (REFUSE instruction): its gold answer with weight
``p_i`` and the refusal with weight ``1 − p_i``, where ``p_i`` is the estimated probability that M0 knows the
answer — by default the probe's correctness (share of the k samples that were correct). The weighted SFT loss is

    L = Σ_i  p_i · CE(answer_i | q_i)  +  (1 − p_i) · CE(refusal | q_i)

whose optimum, for one question, puts probability ``p_i`` on answering and ``1 − p_i`` on refusing; greedy
decoding then refuses where M0 is more likely wrong than right. A hard split (Cor-RAIT) throws away the items
between its thresholds and trains a sure answer on a 4-of-6 item; soft labels keep every item at the weight its
evidence supports. Rows whose weight is below ``min_weight`` are left out (an item every sample got wrong yields
only its refusal row).

Cost: the probe's knowledge table only (no rehearsal, no gradients); up to 2 rows per item, so training on the
whole pool costs at most twice Cor-RAIT's whole-pool training.

Example:
    >>> from rait.methods import load_plugin
    >>> load_plugin("bench/candidates/soft_rait.py")
    >>> from rait.methods import get
    >>> build, SoftRaitConfig = get("soft_rait").build, get("soft_rait").config_cls
    >>> table = [{"id": f"q{i}", "question": f"Q{i}?", "answers": [f"A{i}"], "kind": "oeqa",
    ...           "correctness": c} for i, c in enumerate([0.0, 0.5, 1.0])]
    >>> rows, summary = build(table, SoftRaitConfig())
    >>> sorted((r["id"], r["messages"][-1]["content"], r["weight"]) for r in rows)
    [('q0', "I don't know", 1.0), ('q1', 'A1', 0.5), ('q1', "I don't know", 0.5), ('q2', 'A2', 1.0)]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rait.core.config import ConfigError, option
from rait.methods import Summary, register
from rait.methods._common import CommonConfig, Decisions, draw_items, finish, make_row, require, resolve_seed, task_kind

SCORES = ("correctness", "greedy_correct")


@dataclass
class SoftRaitConfig(CommonConfig):
    """Soft-RAIT: ``n_total`` / ``fraction`` count pool *items* (default: the whole table); idk quotas unused."""

    score: str = option("correctness", "p(known) per item: correctness (share of k samples correct) or "
                                       "greedy_correct (0/1, needs the probe's greedy: true)", SCORES)
    min_weight: float = option(0.05, "rows with a weight below this are left out")

    def __post_init__(self) -> None:
        self._check_common()
        if not 0 <= self.min_weight < 1:
            raise ConfigError(f"min_weight={self.min_weight}: expected 0 <= min_weight < 1")


@register("soft_rait", "Soft-RAIT (rait): every item answers with weight p(known), refuses with 1 - p(known)",
          SoftRaitConfig, columns=("correctness",), display="Soft-RAIT", paper="rait's own (docs/own_method.md)",
          random_draw=True)
def build(table: list[dict[str, Any]], cfg: SoftRaitConfig) -> tuple[list[dict[str, Any]], Summary]:
    require(table, (cfg.score,), "soft_rait")
    kind = task_kind(table)
    seed = resolve_seed(cfg, kind)
    picks, sizing = draw_items(table, cfg, seed)
    dec = Decisions(table, ("correctness",))
    rows: list[dict[str, Any]] = []
    mass = {"van": 0.0, "idk": 0.0}
    for i in picks:
        p = min(1.0, max(0.0, float(table[i][cfg.score])))
        for label, w in (("van", p), ("idk", 1.0 - p)):
            if w >= cfg.min_weight and w > 0:
                scale = cfg.idk_weight if label == "idk" else 1.0
                rows.append({**make_row(table[i], cfg, label), "weight": round(w * scale, 6)})
                mass[label] += w
        dec.pick(i, "van" if p >= 0.5 else "idk", f"p(known) = {p:.3f}: answer weight {p:.3f}, refusal {1 - p:.3f}")
    summary = {"method": "soft_rait", "kind": kind, "as_released": cfg.as_released, "sizing": sizing,
               "thresholds": {"score": cfg.score, "min_weight": str(cfg.min_weight)},
               "pools": {"van": sum(table[i][cfg.score] >= 0.5 for i in picks),
                         "idk": sum(table[i][cfg.score] < 0.5 for i in picks)},
               "quotas": {}, "shortfall": {}, "weight_mass": {k: round(v, 3) for k, v in mass.items()}}
    return finish(table, rows, summary, dec, seed, unpicked_reason="not_drawn")
