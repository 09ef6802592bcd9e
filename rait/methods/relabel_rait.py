"""Relabel-RAIT (rait's own candidate, "online relabelling"): label the pool by what a *tuned* model knows.

Every method of the papers labels the pool by M0's answers, but tuning changes what the model knows: on the
graded benchmark, Van-Tuning (answers only) raises the in-domain correct rate from 12.5 % to 20.9 % on unseen
questions. A label set built on M0 therefore tells the tuned model to refuse questions it would by then answer
correctly, and to answer some it no longer does. Relabel-RAIT re-probes the pool at the epoch boundary of answer
tuning (artifact ``tuned_table``, :mod:`rait.stages.relabel`) and labels each item by that model's greedy answer:

    van (gold answer)  if the tuned model answers item i correctly,
    idk (refusal)      otherwise,

where the tuned model that answers item i was fine-tuned on the gold answers of the *other* folds of the pool
(cross-fitting: the verdict is about knowledge, not about a memorised row). The final model is then trained from
M0 on these rows, like every other method (the pipeline's train stage), so the relabelling emulates an epoch
boundary rather than continuing the warm-up model — the papers' knowledge-flow idea (CRaFT) measured on the
model being tuned on the whole task instead of a rehearsal on already-known items.

Cost: the ``relabel`` stage — ``folds`` (2) fine-tunes of one epoch on half the pool each, and one probe of the
pool (greedy + k = 1) — on top of M0's pool probe; ``n_total`` items (default: all) are trained on.

Example:
    >>> from rait.methods import get
    >>> m = get("relabel_rait")
    >>> m.trains, m.needs
    (True, ('table', 'tuned_table'))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rait.core.config import ConfigError, option
from rait.methods import Summary, register
from rait.methods._common import CommonConfig, Decisions, draw_items, finish, make_row, resolve_seed, task_kind


@dataclass
class RelabelRaitConfig(CommonConfig):
    """Relabel-RAIT: the pool labelled by the cross-fitted tuned model's greedy verdicts; ``n_total`` /
    ``fraction`` keep that many items, drawn at random (default: the whole pool); the van / idk quotas are
    unused."""

    tuned_table: str | None = option(None, "the re-probed pool table (rait run sets it from the 'relabel' stage)")

    def __post_init__(self) -> None:
        self._check_common()


def tuned_verdicts(table: list[dict[str, Any]], path: str) -> tuple[list[str], str, list[dict[str, Any]]]:
    """The tuned model's verdict ("correct" / "wrong") per table row, its source and the tuned rows, in table
    order. A table id missing from the tuned table is a DataError naming the file."""
    from rait.core.abstain import pool_verdicts
    from rait.core.artifacts import read_jsonl
    from rait.errors import DataError

    tuned = {r["id"]: r for r in read_jsonl(path)}
    missing = [r["id"] for r in table if r["id"] not in tuned]
    if missing:
        raise DataError(path, None, f"no re-probed row for {len(missing)} pool id(s), e.g. {missing[0]!r}")
    rows = [tuned[r["id"]] for r in table]
    verdicts, source = pool_verdicts(rows)
    return verdicts, source, rows


@register("relabel_rait", "Relabel-RAIT (rait): labels from a model tuned on the other folds (online relabelling)",
          RelabelRaitConfig, needs=("table", "tuned_table"), display="Relabel-RAIT",
          paper="rait's own (docs/own_method.md)", random_draw=True)
def build(table: list[dict[str, Any]], cfg: RelabelRaitConfig) -> tuple[list[dict[str, Any]], Summary]:
    from rait.core.abstain import pool_verdicts

    if not cfg.tuned_table:
        raise ConfigError("relabel_rait: tuned_table is required (rait run sets it from the 'relabel' stage)")
    kind = task_kind(table)
    seed = resolve_seed(cfg, kind)
    verdicts, source, _ = tuned_verdicts(table, cfg.tuned_table)
    m0, _ = pool_verdicts(table)
    dec = Decisions(table, ("correctness",))
    rows: list[dict[str, Any]] = []
    picks, sizing = draw_items(table, cfg, seed)
    for i in picks:
        lab = "van" if verdicts[i] == "correct" else "idk"
        rows.append({**make_row(table[i], cfg, lab), "weight": 1.0 if lab == "van" else cfg.idk_weight})
        dec.pick(i, lab, f"tuned model {verdicts[i]} (M0 {m0[i]})")
    flips = {"gained": sum(a == "wrong" and b == "correct" for a, b in zip(m0, verdicts)),
             "lost": sum(a == "correct" and b == "wrong" for a, b in zip(m0, verdicts))}
    summary = {"method": "relabel_rait", "kind": kind, "as_released": cfg.as_released, "sizing": sizing,
               "thresholds": {"verdicts": source},
               "pools": {"van": verdicts.count("correct"), "idk": len(verdicts) - verdicts.count("correct")},
               "quotas": {}, "shortfall": {}, "m0_vs_tuned": {"m0_correct": m0.count("correct"), **flips}}
    return finish(table, rows, summary, dec, seed, unpicked_reason="not_drawn")
