"""The one item schema shared by every loader and stage.

Example:
    >>> from rait.data.schema import QAItem
    >>> q = QAItem(id="x1", question="Capital of France?", answers=["Paris"])
    >>> q.kind
    'oeqa'
    >>> m = QAItem(id="m1", question="2+2?", choices=["3", "4", "5", "6"], gold="B")
    >>> m.kind, m.gold_text
    ('mcqa', '4')
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

LETTERS = "ABCDEFGHIJ"

#: Knowledge-table columns that must hold numbers (or null); ``correctness*`` also lie in [0, 1].
TABLE_NUMBERS = ("correctness", "correctness_raw", "certainty", "entropy", "correctness_rehearsed",
                 "certainty_rehearsed", "flow")


def text_value(v: Any, what: str) -> str:
    """A string field value: strings as they are, finite numbers as text (``1945`` -> ``"1945"``).

    Raises:
        ValueError: null, NaN/inf, booleans, lists and objects (``[null]`` must not become the alias "None").

    >>> text_value(1945, "answer alias")
    '1945'
    >>> text_value(None, "answer alias")
    Traceback (most recent call last):
    ...
    ValueError: answer alias is null; expected a string
    """
    if isinstance(v, str):
        return v
    if v is None:
        raise ValueError(f"{what} is null; expected a string")
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"{what} is {type(v).__name__} {v!r}; expected a string")
    if not math.isfinite(v):
        raise ValueError(f"{what} is {v!r}; expected a string")
    return str(v)


def check_table_row(row: dict[str, Any]) -> str | None:
    """The first bad numeric value of a knowledge-table row (see :data:`TABLE_NUMBERS`), or None.

    >>> check_table_row({"id": "a", "correctness": "high"})
    "field 'correctness' is 'high'; expected a number in [0, 1] (the share of correct samples)"
    """
    for k in TABLE_NUMBERS:
        v = row.get(k)
        if v is None:
            continue
        rng = k.startswith("correctness")
        expect = "a number in [0, 1] (the share of correct samples)" if rng else "a number"
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return f"field {k!r} is {v!r}; expected {expect}"
        if rng and not 0.0 <= v <= 1.0:
            return f"field {k!r} is {v!r}; expected {expect}"
    return None


@dataclass
class QAItem:
    """One question.

    Args:
        id: unique id within its dataset.
        question: the question text (MCQA: the stem only, without options).
        answers: gold aliases for open-ended QA (any alias counts as correct).
        choices: option texts for multiple-choice QA, labelled A, B, C, ... in order; None for open-ended.
        gold: the gold letter for multiple-choice QA.
        topic: MMLU subject, built-in topic, etc.
        source: dataset name the item came from.
        popularity: how well known the question's subject is (``builtin:graded``: its population); used to
            draw knowledge curves per popularity decile. None when unknown.
    """

    id: str
    question: str
    answers: list[str] = field(default_factory=list)
    choices: list[str] | None = None
    gold: str | None = None
    topic: str | None = None
    source: str | None = None
    popularity: float | None = None

    @property
    def kind(self) -> str:
        """'mcqa' if the item has choices, else 'oeqa'."""
        return "mcqa" if self.choices else "oeqa"

    @property
    def letters(self) -> str:
        """Option letters of an MCQA item ('ABCD' for 4 choices)."""
        return LETTERS[: len(self.choices or [])]

    @property
    def gold_text(self) -> str | None:
        """Text of the gold option (MCQA) or the first alias (OEQA)."""
        if self.kind == "mcqa":
            return self.choices[LETTERS.index(self.gold)] if self.gold else None
        return self.answers[0] if self.answers else None

    @property
    def target(self) -> str:
        """Training target: the gold letter (MCQA) or the first alias (OEQA)."""
        return self.gold if self.kind == "mcqa" else self.answers[0]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (drops None fields)."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "QAItem":
        """Inverse of :meth:`to_dict` (unknown keys are ignored)."""
        keys = {"id", "question", "answers", "choices", "gold", "topic", "source", "popularity"}
        return cls(**{k: v for k, v in d.items() if k in keys})
