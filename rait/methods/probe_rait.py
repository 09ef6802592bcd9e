"""Probe-RAIT (rait's own candidate): label the pool with what M0's hidden states say it knows.

Cor-RAIT labels an item "known" from k sampled answers — a noisy estimate (with k = 6, an item M0 knows half
the time lands on either side by chance), and a label the tuned model can only learn if it can tell such items
apart from the question. Probe-RAIT instead fits a logistic-regression probe on M0's hidden state of each pool
question (artifact ``hidden_states``; layer chosen by stratified cross-validation, as ``abstain_probe`` does)
predicting M0's greedy correctness, and labels every pool item by its **cross-fitted** p(correct) (each item
scored by a probe that did not see it):

    hard (default): p_i >= tau -> gold answer, else refusal; tau maximises THS on the pool
                    (:func:`rait.core.abstain.fit_threshold`, reference = answer everything);
    soft:           gold answer with weight p_i and refusal with weight 1 - p_i.

The labels are, by construction, a linear function of M0's own representation of the question — the boundary a
fine-tune of M0 can represent — and tau puts the refusal rate where THS is best on the pool instead of at the
papers' fixed 20 % idk share.

Cost: one forward pass per pool question (the ``hidden`` stage, shared with ``abstain_probe``) and a few
seconds of scikit-learn. The probe is fit on the whole pool; ``n_total`` items (default: all) are trained on.

Example:
    >>> from rait.methods import get
    >>> m = get("probe_rait")
    >>> m.trains, m.needs
    (True, ('table', 'hidden_states'))
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rait.core.config import ConfigError, option
from rait.methods import Summary, register
from rait.methods._common import CommonConfig, Decisions, draw_items, finish, make_row, resolve_seed, task_kind


@dataclass
class ProbeRaitConfig(CommonConfig):
    """Probe-RAIT: the pool labelled by the cross-fitted probe; ``n_total`` / ``fraction`` keep that many labelled
    items, drawn at random (default: the whole pool); the van / idk quotas are unused."""

    hidden_dir: str | None = option(None, "hidden-states directory (rait run sets it)")
    labels: str = option("hard", "hard: p >= tau answers, else refuses (tau fit on pool THS); soft: weights p, 1-p",
                         ("hard", "soft"))
    folds: int = option(5, "stratified folds for the layer choice and the cross-fitted scores")
    min_weight: float = option(0.05, "soft labels: rows with a weight below this are left out")

    def __post_init__(self) -> None:
        self._check_common()
        if self.folds < 2:
            raise ConfigError(f"folds={self.folds}: expected >= 2")


def pool_scores(table: list[dict[str, Any]], hidden_dir: str | Path, folds: int, seed: int) -> dict[str, Any]:
    """Cross-fitted p(correct) of every table row from the hidden-state probe, with the probe's layer and AUROC."""
    from rait.run.providers_eval import pool_probe

    fitted = pool_probe(table, hidden_dir, folds, seed)
    probe = fitted["probe"]
    return {"scores": np.asarray(probe["pool_scores"], dtype=float), "verdicts": fitted["verdicts"],
            "source": fitted["source"], "layer": probe["layer"],
            "cv_auroc": round(float(probe["cv_auroc"][probe["layer"]]), 4)}


@register("probe_rait", "Probe-RAIT (rait): labels from a cross-fitted hidden-state probe of M0, tau fit on pool THS",
          ProbeRaitConfig, needs=("table", "hidden_states"), display="Probe-RAIT",
          paper="rait's own (docs/own_method.md)", random_draw=True)
def build(table: list[dict[str, Any]], cfg: ProbeRaitConfig) -> tuple[list[dict[str, Any]], Summary]:
    from rait.core.abstain import fit_threshold

    if not cfg.hidden_dir:
        raise ConfigError("probe_rait: hidden_dir is required (rait run sets it from the 'hidden' stage)")
    kind = task_kind(table)
    seed = resolve_seed(cfg, kind)
    pr = pool_scores(table, cfg.hidden_dir, cfg.folds, seed)
    fit = fit_threshold(pr["scores"], pr["verdicts"])
    tau = fit["tau"]
    dec = Decisions(table, ("correctness",))
    rows: list[dict[str, Any]] = []
    picks, sizing = draw_items(table, cfg, seed)
    for i in picks:
        p = float(pr["scores"][i])
        if cfg.labels == "soft":
            pairs = [(lab, w) for lab, w in (("van", p), ("idk", 1 - p)) if w >= cfg.min_weight and w > 0]
        else:
            pairs = [("idk" if tau is not None and p < tau else "van", 1.0)]
        scale = {"van": 1.0, "idk": cfg.idk_weight}
        rows += [{**make_row(table[i], cfg, lab), "weight": round(float(w) * scale[lab], 6)} for lab, w in pairs]
        dec.pick(i, "idk" if tau is not None and p < tau else "van", f"probe p(correct) = {p:.3f}, tau = {tau}")
    summary = {"method": "probe_rait", "kind": kind, "as_released": cfg.as_released,
               "sizing": sizing,
               "thresholds": {"tau": tau, "labels": cfg.labels, "verdicts": pr["source"]},
               "pools": {"van": int(sum(tau is None or p >= tau for p in pr["scores"])),
                         "idk": int(sum(tau is not None and p < tau for p in pr["scores"]))},
               "quotas": {}, "shortfall": {}, "probe": {"layer": pr["layer"], "cv_auroc": pr["cv_auroc"],
                                                       "pool_ths_at_tau": fit["ths"]}}
    return finish(table, rows, summary, dec, seed, unpicked_reason="not_drawn")
