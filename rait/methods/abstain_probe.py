"""``abstain_probe``: refuse when a linear probe on M0's hidden state says the question is unknown.

A logistic-regression probe (scikit-learn) reads M0's hidden state of the question (last prompt token of the
0-shot BASIC prompt; artifact ``hidden_states``) and predicts whether M0 answers it correctly (the pool's greedy
verdict, or the sample majority when the probe ran without ``greedy``). The layer is chosen on the pool by
stratified cross-validation (AUROC); the refusal threshold ``tau`` is fit on the pool's cross-fitted
p(correct) by maximising THS (:func:`rait.core.abstain.fit_threshold`). Nothing of a test set is used to fit either.
Per test question: one forward pass (the hidden state) besides the greedy answer — the ``cost`` column.

Example:
    >>> from rait.methods import get
    >>> m = get("abstain_probe")
    >>> m.trains, m.needs
    (False, ('table', 'hidden_states'))
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rait.core.abstain import fit_threshold, write_decisions
from rait.core.config import option
from rait.methods import EvalContext, register
from rait.run.providers_eval import load_states, pool_probe


@dataclass
class AbstainProbeConfig:
    """Cross-validation of the probe."""

    folds: int = option(5, "stratified folds for the layer choice and the cross-fitted pool scores")
    seed: int = option(0, "fold shuffling and solver seed")


@register("abstain_probe", "Abstain (probe): refuse when a hidden-state probe's p(correct) < tau fit on the pool",
          AbstainProbeConfig, needs=("table", "hidden_states"), display="Abstain (probe)",
          paper="training-free baseline (rait); linear probes of knowledge as in Kadavath et al. 2022",
          trains=False)
def evaluate(ctx: EvalContext) -> None:
    from rait.core.artifacts import read_table
    from rait.core.hidden import probe_scores

    pool = read_table(ctx.artifacts["table"]).rows
    hdir = Path(ctx.artifacts["hidden_states"])
    fitted = pool_probe(pool, hdir, ctx.cfg.folds, ctx.cfg.seed)
    probe, verdicts, source = fitted["probe"], fitted["verdicts"], fitted["source"]
    fit = fit_threshold(probe["pool_scores"], verdicts)
    test_ids, test_states = load_states(hdir, ctx.test)
    scores = dict(zip(test_ids, probe_scores(probe, test_states).tolist()))
    write_decisions(ctx, scores, fit, {"labels": source, "layer": probe["layer"],
                                       "cv_auroc": round(probe["cv_auroc"][probe["layer"]], 4),
                                       "cost_generations": 1, "cost_forward": 1})
