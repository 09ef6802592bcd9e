"""``abstain_consistency``: answer greedily unless the sampled answers disagree (training-free baseline).

M0 keeps its greedy answer (Init-Basic's) on a test question unless the probe's certainty of that question —
the agreement of k sampled answers, by the run's probe estimator (CRaFT's embedding consistency by default) —
is below a threshold ``tau``. ``tau`` is fit on the training pool's knowledge table only (the value that
maximises THS on the pool against answering everything; :func:`rait.core.abstain.fit_threshold`); the test questions
are probed at test time with the same settings as the pool (artifact ``test_tables``), so the method costs k
sampled answers + 1 greedy answer per question — the ``cost`` column of the results.

Example:
    >>> from rait.methods import get
    >>> m = get("abstain_consistency")
    >>> m.trains, m.needs, m.display
    (False, ('table', 'test_tables'), 'Abstain (consistency)')
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rait.core.abstain import fit_threshold, pool_verdicts, write_decisions
from rait.core.config import option
from rait.methods import EvalContext, register
from rait.run.providers_eval import test_table_path


@dataclass
class AbstainConsistencyConfig:
    """Which knowledge-table column is the certainty score."""

    score: str = option("certainty", "knowledge-table column used as the score (higher = answer)")


@register("abstain_consistency", "Abstain (consistency): refuse when k sampled answers disagree (certainty < tau fit "
          "on the pool)", AbstainConsistencyConfig, needs=("table", "test_tables"), columns=("certainty",),
          display="Abstain (consistency)", paper="training-free baseline (rait); certainty as in CRaFT "
          "(arXiv 2410.06913)", trains=False)
def evaluate(ctx: EvalContext) -> None:
    from rait.core.artifacts import read_table

    col = ctx.cfg.score
    pool = read_table(ctx.artifacts["table"], required=("id", col)).rows  # file:line error when a score is missing
    verdicts, source = pool_verdicts(pool)
    fit = fit_threshold([float(r[col]) for r in pool], verdicts)
    test = read_table(test_table_path(Path(ctx.artifacts["test_tables"]), ctx.test), required=("id", col)).rows
    scores = {r["id"]: float(r[col]) for r in test}
    k = max((len(r.get("samples") or []) for r in test), default=0)
    write_decisions(ctx, scores, fit, {"score": col, "labels": source, "cost_generations": k + 1,
                                       "cost_forward": 0})

