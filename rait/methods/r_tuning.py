"""R-Tuning (Zhang et al., NAACL 2024, "R-Tuning: Instructing Large Language Models to Say 'I Don't Know'").

Method-spec §E. Both variants of the original ``training/MMLU/run_MMLU.py`` (shizhediao/R-Tuning @bf58465):
  * ``unknown``: questions M0 answered correctly keep the gold answer (label ``van``); wrong ones get one of the
    16 R-Tuning refusal phrases, drawn uniformly at random with the seed (label ``idk``).
  * ``unsure``: every question keeps its gold answer followed by
    `` Are you sure you accurately answered the question based on your internal knowledge?`` and `` I am sure.``
    (M0 correct, label ``van``) or `` I am unsure.`` (M0 wrong, label ``idk``: the row teaches the model to
    express not knowing, although the gold answer is kept).

"M0 correct" is the greedy answer's correctness (``greedy_correct``, as in the original, which compares M0's
argmax letter with the gold) when the table has it for that row; otherwise ``correctness >= threshold``
(0.5 by default). Each decision records which basis was used. In the CRaFT/GRAIT comparisons "R-Tuning" most
likely means Cor-RAIT (``cor_rait``); this module is the original for completeness.

The 16 phrases are ``FALSE_RESPONSES`` copied from ``run_MMLU.py`` (not reconstructed). ⚠ Only two of them
("I do not know the answer.", "I'm not sure.") contain a first-person "don't know"/"not sure", and none contains
"I don't know": the papers' evaluation (``refusal: strict``, substring "i don't know") counts none of them as
refusals. rait's default ``lenient`` detector counts all 16 and the variants a model trained on them produces
("There is no known answer.") as whole-answer refusals (:func:`rait.core.scoring.is_refusal`). Set
``refusal: "I don't know"`` (or ``phrases``) to train the papers' detector string instead.

Size: R-Tuning labels every training question, so by default every table row gives one row; ``n_total`` /
``fraction`` draw that many rows at random first (no van:idk quota; ``n_van`` / ``n_idk`` are rejected).

Departures from the original:
  * Input: the REFUSE instruction of the CRaFT/GRAIT papers by default (``prompt_style``), not R-Tuning's
    5-shot "The following are multiple choice questions ..." text prompt; chat rows, not LMFlow text rows.
  * The original writes ``{gold}.`` (letter plus period) before the question/"I am sure" suffix and for known
    ``unknown`` rows; we write the plain target (``B``, or the first alias) unless ``as_released: true``.
  * The original shuffles with the unseeded ``random.shuffle``; we shuffle with the seed (0 OEQA / 42 MCQA).
  * The OEQA tasks (ParaRel, HotpotQA) used their own scripts; we apply the same rule to any table.

Every deviation from the papers and the released code, with its flag: docs/deviations.md.

Example:
    >>> from rait.methods.r_tuning import RTuningConfig, build
    >>> table = [{"id": "q0", "question": "Q0?", "answers": ["A0"], "kind": "oeqa", "correctness": 0.8},
    ...          {"id": "q1", "question": "Q1?", "answers": ["A1"], "kind": "oeqa", "correctness": 0.1,
    ...           "greedy_correct": True}]
    >>> rows, _ = build(table, RTuningConfig(variant="unsure"))
    >>> [r["messages"][-1]["content"].split("? ")[-1] for r in sorted(rows, key=lambda r: r["id"])]
    ['I am sure.', 'I am sure.']
    >>> rows, summary = build(table + [dict(table[0], id="q2", correctness=0.2)], RTuningConfig())
    >>> summary["counts"]
    {'van': 2, 'idk': 1}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rait.core.config import ConfigError, option
from rait.data.schema import QAItem
from rait.methods import Summary, register
from rait.methods._common import (
    CommonConfig,
    Decisions,
    draw,
    finish,
    make_row,
    require,
    resolve_seed,
    rng_for,
    task_kind,
)

#: ``FALSE_RESPONSES`` of R-Tuning's ``training/MMLU/run_MMLU.py`` (16 phrases, verbatim).
FALSE_RESPONSES = (
    "The answer is unknown.",
    "The answer is uncertain.",
    "The answer is unclear.",
    "It is not known.",
    "I do not know the answer.",
    "I'm not sure.",
    "There is no definitive answer.",
    "There is much debate.",
    "There is no concrete answer to this question.",
    "It is impossible to answer.",
    "There is no known case.",
    "There is no public information available.",
    "There is no scientific evidence.",
    "There is no right answer.",
    "It is impossible to know.",
    "It is difficult to predict.",
)
UNSURE_QUESTION = " Are you sure you accurately answered the question based on your internal knowledge?"
SURE, UNSURE = " I am sure.", " I am unsure."


@dataclass
class RTuningConfig(CommonConfig):
    """R-Tuning: ``unknown`` (wrong -> refusal phrase) or ``unsure`` (gold + sure/unsure suffix)."""

    variant: str = option("unknown", "R-Tuning variant", choices=("unknown", "unsure"))
    threshold: float = option(0.5, "M0 counts as correct iff correctness >= threshold (when greedy_correct is absent)")
    use_greedy: bool = option(True, "use greedy_correct when the row has it (the original's criterion)")
    phrases: list[str] = option(list(FALSE_RESPONSES), "refusal phrases for the unknown variant (one drawn per row)")

    def __post_init__(self) -> None:
        self._check_common()
        if self.n_van is not None or self.n_idk is not None:
            raise ConfigError("r_tuning labels every drawn row: use n_total or fraction, not n_van / n_idk")
        if not self.phrases:
            raise ConfigError("phrases: expected at least one refusal phrase")


def _gold(item: QAItem, cfg: RTuningConfig) -> str:
    return item.target + ("." if cfg.as_released else "")


@register("r_tuning", "R-Tuning (original): unknown -> one of 16 refusal phrases, or unsure -> 'I am sure/unsure.'",
          RTuningConfig, columns=("correctness",), display="R-Tuning",
          paper="Zhang et al., NAACL 2024 (arXiv 2311.09677)", random_draw=True)
def build(table: list[dict[str, Any]], cfg: RTuningConfig) -> tuple[list[dict[str, Any]], Summary]:
    require(table, ("correctness",), "r_tuning")
    kind = task_kind(table)
    seed = resolve_seed(cfg, kind)
    n = len(table)
    if cfg.n_total is not None or cfg.fraction is not None:
        n = cfg.n_total if cfg.n_total is not None else round(cfg.fraction * len(table))
    dec = Decisions(table, ("correctness", "greedy_correct"))
    picks, info = draw(rng_for(seed, "subset"), range(len(table)), n, "take_all", "table")
    phrase_rng = rng_for(seed, "phrases")
    rows, basis_counts = [], {"greedy_correct": 0, "threshold": 0}
    for i in picks:
        row, item = table[i], QAItem.from_dict(table[i])
        if cfg.use_greedy and row.get("greedy_correct") is not None:
            correct, basis = bool(row["greedy_correct"]), f"greedy_correct={bool(row['greedy_correct'])}"
            basis_counts["greedy_correct"] += 1
        else:
            c = float(row["correctness"])
            correct = c >= cfg.threshold
            basis = f"correctness {c} {'>=' if correct else '<'} {cfg.threshold}"
            basis_counts["threshold"] += 1
        label = "van" if correct else "idk"
        if cfg.variant == "unsure":
            target = _gold(item, cfg) + UNSURE_QUESTION + (SURE if correct else UNSURE)
        elif correct:
            target = _gold(item, cfg)
        elif cfg.refusal is not None:
            target = cfg.refusal
        else:
            target = cfg.phrases[phrase_rng.randrange(len(cfg.phrases))]
        dec.set(i, correct=correct, basis=basis)
        dec.pick(i, label, f"{cfg.variant}: M0 {'correct' if correct else 'wrong'} ({basis})")
        rows.append(make_row(row, cfg, label, target))
    summary = {"method": "r_tuning", "kind": kind, "variant": cfg.variant, "as_released": cfg.as_released,
               "sizing": {"rule": "every row" if n == len(table) else "random subset", "n_table": len(table),
                          "n_total": n},
               "thresholds": {"correct": "greedy_correct when present" if cfg.use_greedy else "",
                              "fallback": f"correctness >= {cfg.threshold}"},
               "basis": basis_counts, "shortfall": {"table": info["shortfall"]},
               "phrases": list(cfg.phrases) if cfg.variant == "unknown" and cfg.refusal is None else
               ([cfg.refusal] if cfg.variant == "unknown" else [])}
    return finish(table, rows, summary, dec, seed)
