"""Field-mapped records -> :class:`~rait.data.schema.QAItem`: the field mapping of the generic ``jsonl:`` and
``hf:`` formats (and of MCQA answer keys), used by the readers of :mod:`rait.data.formats`.

Example:
    >>> from rait.data.mapped import DEFAULT_FIELDS, build_mapped
    >>> rec = {"q": "2+2?", "opts": {"x": "3", "y": "4"}, "key": "y"}
    >>> fields = {**DEFAULT_FIELDS, "id": "@index", "question": "q", "choices": "opts", "gold": "key"}
    >>> item = build_mapped(rec, fields, index=7, default_source="toy")
    >>> item.id, item.choices, item.gold
    ('toy-7', ['3', '4'], 'B')
"""

from __future__ import annotations

from typing import Any

from rait.data.schema import LETTERS, QAItem, text_value

#: Default field mapping of the generic ``jsonl:`` / ``hf:`` formats (QAItem field -> record field).
DEFAULT_FIELDS = {"id": "id", "question": "question", "answers": "answers", "choices": "choices",
                  "gold": "gold", "topic": "topic", "source": "source", "popularity": "popularity"}


def as_text(v: Any) -> str:
    """A field value as text (strings as they are, anything else through ``str``)."""
    return v if isinstance(v, str) else str(v)


def get_dotted(obj: dict, dotted: str) -> Any:
    """``obj['a']['b']`` for ``'a.b'``; raises KeyError(dotted) when any part is absent."""
    cur: Any = obj
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            raise KeyError(dotted)
        cur = cur[part]
    return cur


def relabel(labels: list[str], key: Any) -> str:
    """Gold letter for answer key ``key`` among option ``labels`` (by position: 1st option -> A, ...).

    Raises:
        ValueError: the key is not among the labels (message says which labels exist).
    """
    k = as_text(key).strip()
    if k not in labels:
        raise ValueError(f"answer key {k!r} is not among the choice labels {labels}")
    return LETTERS[labels.index(k)]


def build_mapped(obj: dict, fields: dict[str, str], *, index: int, default_source: str) -> QAItem:
    """Build a QAItem from a record through a field mapping (see :data:`DEFAULT_FIELDS`).

    ``answers`` may be a list or a string; ``choices`` a list or a dict label -> text (labels mapped by position
    to A, B, ...); ``gold`` a letter, an option label, or an int (0-based index). ``id=@index`` numbers the
    records ``<source>-<index>``.

    Raises:
        ValueError: a required field is missing or has the wrong type (message names the field).
    """

    def opt(name: str) -> Any:
        try:
            return get_dotted(obj, fields[name])
        except KeyError:
            return None

    def req(name: str) -> Any:
        try:
            return get_dotted(obj, fields[name])
        except KeyError:
            raise ValueError(f"missing field {fields[name]!r} (the {name})") from None

    source = opt("source") or default_source
    iid = f"{source}-{index}" if fields["id"] == "@index" else text_value(req("id"), f"field {fields['id']!r} (the id)")
    question = req("question")
    if not isinstance(question, str):
        raise ValueError(f"field {fields['question']!r} (the question): expected a string, "
                         f"got {type(question).__name__}")
    choices, labels = _mapped_choices(opt("choices"), fields)
    answers = _mapped_answers(opt("answers"), choices, fields)
    gold = _mapped_gold(req("gold"), choices, labels) if choices else None
    topic, popularity = opt("topic"), opt("popularity")
    if popularity is not None and (isinstance(popularity, bool) or not isinstance(popularity, (int, float))
                                   or popularity != popularity):
        raise ValueError(f"field {fields['popularity']!r} (the popularity): expected a number, got {popularity!r}")
    return QAItem(id=as_text(iid), question=question, answers=answers, choices=choices, gold=gold,
                  topic=None if topic is None else as_text(topic), source=as_text(source), popularity=popularity)


def _mapped_choices(raw_choices: Any, fields: dict[str, str]) -> tuple[list[str] | None, list[str] | None]:
    """``choices`` as a list of texts, and the original labels when they came as a mapping label -> text."""
    labels = None
    if isinstance(raw_choices, dict):
        labels = [as_text(k) for k in raw_choices]
        raw_choices = list(raw_choices.values())
    if raw_choices is not None and not isinstance(raw_choices, list):
        raise ValueError(f"field {fields['choices']!r}: expected a list or a mapping of choices")
    choices = [text_value(c, f"choice {i + 1}") for i, c in enumerate(raw_choices)] if raw_choices else None
    return choices, labels


def _mapped_answers(answers: Any, choices: list[str] | None, fields: dict[str, str]) -> list[str]:
    """The answer aliases: a list, one string (or number), or none for a multiple-choice record."""
    if answers is None:
        if not choices:
            raise ValueError(f"missing field {fields['answers']!r} (the answer aliases) and no {fields['choices']!r}")
        return []
    if isinstance(answers, (str, int, float)) and not isinstance(answers, bool):
        return [text_value(answers, f"field {fields['answers']!r}")]
    if isinstance(answers, list):
        return [text_value(a, f"answer alias at position {i}") for i, a in enumerate(answers)]
    raise ValueError(f"field {fields['answers']!r}: expected a list of strings or a string")


def _mapped_gold(g: Any, choices: list[str], labels: list[str] | None) -> str:
    """The gold letter from a 0-based index, an option label, or a letter."""
    if isinstance(g, int) and not isinstance(g, bool):
        if not 0 <= g < len(choices):
            raise ValueError(f"answer key {g} is not among the choices (0-based index < {len(choices)})")
        return LETTERS[g]
    if labels is not None:
        return relabel(labels, g)
    return as_text(g).strip()
