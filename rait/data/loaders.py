"""Dataset loaders: one spec string -> a validated list of :class:`~rait.data.schema.QAItem`.

Spec grammar: ``FORMAT:LOCATION[?key=value&key=value...]`` (options may also be passed as keyword arguments
to :func:`load`; keyword arguments win).

=================  ==========================================================================================
``triviaqa:PATH``  JSONL ``{"id","question","answers":[aliases]}``; source ``triviaqa``. NBSP -> space in aliases,
                   TriviaQA's CSV-quoted strings ``"a ""b"" c"`` -> ``a "b" c`` in questions and aliases.
``nq:PATH``        same format and normalisation; source ``nq``.
``mmlu:PATH``      PATH = the MMLU root (holding ``dev/ val/ test/``; split from ``?split=``, default ``test``),
                   one split directory (``mmlu:data/mmlu/val``), or one ``{subject}_{split}.csv``. One CSV per
                   subject, header ``id,lang,question,A,B,C,D,target``; topic = subject, gold = target.
``arc:PATH``       AI2 ARC JSONL. Labels ``1 2 3 4`` (or any labels) map by position to ``A B C D ...``; all
                   choices are kept unless ``max_choices=N`` (the papers cut ARC to A-D: ``?max_choices=4``;
                   an item whose answer is cut off is then a data error). Topic ``STEM``, source ``arc``.
``jsonl:PATH``     generic JSONL, default fields ``id, question, answers`` (list or string), optional ``choices``
                   (list, or dict label -> text), ``gold`` (letter, label or 0-based int), ``topic``, ``source``
                   (default: file stem). Override with ``?question=q&answers=answer.aliases`` (dotted = nested);
                   ``id=@index`` numbers the records ``<source>-<i>``.
``hf:NAME``        Hugging Face ``datasets``: a ``save_to_disk`` directory or a hub name (``HF_DATASETS_OFFLINE``
                   honoured); ``?split=``, ``?config=``, ``?revision=`` (branch, tag or commit), ``?data_files=``
                   (comma-separated; e.g. ``hf:json?data_files=a.jsonl&split=train``) and the same field mapping
                   as ``jsonl``.
``builtin:NAME``   package data ``rait/data/builtin/NAME.jsonl`` (QAItem dicts); ``builtin:NAME/SPLIT`` keeps the
                   topics listed under SPLIT in ``NAME_splits.json``.
=================  ==========================================================================================

Bad records raise one :class:`~rait.errors.DataError` ``file:line: what was expected`` (malformed JSON, missing
field, empty question, empty alias list, answer key not among the choices, duplicate id naming both lines).
With ``on_error="skip"`` they are skipped, counted in a :class:`LoadReport` and logged as a warning (for
duplicate ids the first occurrence is kept). ``limit=N`` keeps the first N valid items (file order).

Example:
    >>> import json, tempfile, pathlib
    >>> from rait.data import load, load_with_report
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "tqa.jsonl"
    >>> rows = [{"id": "a", "question": '"Who wrote ""Emma""?"', "answers": ["Jane Austen", "Austen"]},
    ...         {"id": "b", "question": "", "answers": ["x"]}]
    >>> _ = p.write_text("".join(json.dumps(r) + "\\n" for r in rows))
    >>> items, report = load_with_report(f"triviaqa:{p}", on_error="skip")
    >>> items[0].question, report.n_loaded, report.n_skipped
    ('Who wrote "Emma"?', 1, 1)
    >>> load(f"triviaqa:{p}", limit=1)[0].answers
    ['Jane Austen', 'Austen']
"""

from __future__ import annotations

import importlib.resources
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import parse_qsl

from rait.data.formats import (
    FORMATS,
    Record,
    read_arc,
    read_hf,
    read_mapped_jsonl,
    read_mmlu,
    read_oeqa,
    register_format,
)
from rait.data.mapped import DEFAULT_FIELDS
from rait.data.schema import LETTERS, QAItem
from rait.errors import DataError

log = logging.getLogger(__name__)

ON_ERROR = ("raise", "skip")


@dataclass
class LoadReport:
    """What a load read, kept and skipped (and why).

    Args:
        spec: the spec string that was loaded.
        n_read: records seen (before validation and ``limit``).
        n_loaded: items returned.
        skipped: one DataError per skipped record, in file order.
    """

    spec: str
    n_read: int = 0
    n_loaded: int = 0
    skipped: list[DataError] = field(default_factory=list)

    @property
    def n_skipped(self) -> int:
        """Number of skipped records."""
        return len(self.skipped)

    def reasons(self, k: int = 5) -> list[str]:
        """The first ``k`` skip messages (``file:line: reason``)."""
        return [str(e) for e in self.skipped[:k]]

    def summary(self, k: int = 5) -> str:
        """One human-readable paragraph: counts and the first ``k`` reasons."""
        s = f"{self.spec}: loaded {self.n_loaded} item(s), skipped {self.n_skipped} of {self.n_read} read"
        if self.skipped:
            more = f" (+{self.n_skipped - k} more)" if self.n_skipped > k else ""
            s += ":\n  " + "\n  ".join(self.reasons(k)) + more
        return s


def builtin_dir() -> Path:
    """Directory of the built-in data sets (``rait/data/builtin``); tests monkeypatch this function."""
    return Path(str(importlib.resources.files("rait.data").joinpath("builtin")))


def parse_spec(spec: str) -> tuple[str, str, dict[str, str]]:
    """Split ``FORMAT:LOCATION?k=v&...`` into ``(format, location, options)``.

    Args:
        spec: the dataset spec, e.g. ``"jsonl:data/x.jsonl?question=q"``.

    Raises:
        DataError: no ``FORMAT:`` prefix, an unknown format, or an option the format does not take.
    """
    known = ", ".join(f"{f}:" for f in FORMATS)
    if ":" not in spec:
        raise DataError(spec, None, f"expected FORMAT:LOCATION with FORMAT one of {known} (e.g. 'jsonl:data.jsonl')")
    fmt, rest = spec.split(":", 1)
    if fmt not in FORMATS:
        from rait.core.registry import did_you_mean

        raise DataError(spec, None, f"unknown dataset format {fmt!r}{did_you_mean(fmt, FORMATS)}; "
                                    f"expected one of {known}")
    loc, _, query = rest.partition("?")
    opts = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=False)) if query else {}
    if query and not opts:
        raise DataError(spec, None, f"cannot read options {query!r}; expected ?key=value&key=value")
    _check_options(spec, fmt, opts)
    if not loc:
        raise DataError(spec, None, f"empty location after '{fmt}:'")
    return fmt, loc, opts


def _check_options(spec: str, fmt: str, opts: dict[str, Any]) -> None:
    bad = sorted(set(opts) - set(FORMATS.get(fmt).options))
    if bad:
        allowed = list(FORMATS.get(fmt).options) or "none"
        raise DataError(spec, None, f"option(s) {bad} not accepted by format {fmt!r}; accepted: {allowed}")


def load(spec: str, *, limit: int | None = None, on_error: str = "raise", **options: Any) -> list[QAItem]:
    """Load a dataset spec into a list of validated QAItems (file order).

    Args:
        spec: ``FORMAT:LOCATION[?options]``, see the module docstring.
        limit: keep only the first ``limit`` valid items (None = all).
        on_error: ``"raise"`` (first bad record raises DataError) or ``"skip"`` (skip, count and log a warning).
        **options: format options (``split``, ``max_choices``, field mapping ...), overriding the spec's.

    Returns:
        The items.

    Raises:
        DataError: bad spec, missing file, or (``on_error="raise"``) a bad record.
    """
    return load_with_report(spec, limit=limit, on_error=on_error, **options)[0]


def load_with_report(spec: str, *, limit: int | None = None, on_error: str = "raise",
                     **options: Any) -> tuple[list[QAItem], LoadReport]:
    """Like :func:`load`, and also return the :class:`LoadReport` (counts and skip reasons).

    Args:
        spec: ``FORMAT:LOCATION[?options]``, see the module docstring.
        limit: keep only the first ``limit`` valid items (None = all).
        on_error: ``"raise"`` or ``"skip"``.
        **options: format options, overriding the spec's.
    """
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error={on_error!r}: expected one of {list(ON_ERROR)}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise DataError(spec, None, f"limit {limit!r}: expected a non-negative number of items "
                        "(e.g. --limit 200), or none for all")
    fmt, loc, opts = parse_spec(spec)
    options = {k: v for k, v in options.items() if v is not None}
    _check_options(spec, fmt, options)
    opts.update(options)
    max_choices = _int_opt(spec, opts.pop("max_choices", None), "max_choices", lo=2, hi=len(LETTERS))
    records = FORMATS.get(fmt).read(spec, loc, opts)
    report = LoadReport(spec=spec)
    items = _collect(records, report, limit=limit, skip=on_error == "skip", max_choices=max_choices)
    if report.n_read == 0 and limit != 0:
        raise DataError(spec, None, "no records: the file is empty (or a CSV holds only its header, or the split "
                        "selects nothing); check the path and the format prefix")
    if report.skipped:
        log.warning("%s", report.summary())
    return items, report


def _int_opt(spec: str, v: Any, name: str, lo: int, hi: int) -> int | None:
    if v is None or v == "":
        return None
    try:
        n = int(v)
    except (TypeError, ValueError):
        raise DataError(spec, None, f"option {name}={v!r}: expected an integer") from None
    if not lo <= n <= hi:
        raise DataError(spec, None, f"option {name}={n}: expected {lo}..{hi}")
    return n


def check_item(item: QAItem, max_choices: int | None = None) -> str | None:
    """Validate one item in place (and cut its choices to ``max_choices``); return the problem or None.

    Args:
        item: the parsed item.
        max_choices: keep only the first N choices (an answer beyond them is a problem).
    """
    if not str(item.id).strip():
        return "empty id"
    if not isinstance(item.question, str) or not item.question.strip():
        return "empty question"
    if item.choices:
        if len(item.choices) > len(LETTERS):
            return f"{len(item.choices)} choices; at most {len(LETTERS)} are supported"
        if len(item.choices) < 2:
            return f"{len(item.choices)} choice(s); expected at least 2"
        letters = LETTERS[: len(item.choices)]
        if item.gold not in letters:
            return f"answer key {item.gold!r} is not among the choices {'/'.join(letters)}"
        empty = [LETTERS[i] for i, c in enumerate(item.choices) if not c.strip()]
        if empty:
            return f"empty choice {empty[0]}"
        if max_choices is not None and len(item.choices) > max_choices:
            if letters.index(item.gold) >= max_choices:
                return f"answer key {item.gold!r} is cut off by max_choices={max_choices}"
            item.choices = item.choices[:max_choices]
        return None
    if not item.answers:
        return "empty alias list; expected at least one answer"
    blank = [i for i, a in enumerate(item.answers) if not a.strip()]
    if blank:
        return f"blank answer alias at position {blank[0]} (it would match every output)"
    return None


def _collect(records: Iterator[Record], report: LoadReport, *, limit: int | None, skip: bool,
             max_choices: int | None) -> list[QAItem]:
    items: list[QAItem] = []
    first_seen: dict[str, tuple[str, int]] = {}
    if limit == 0:
        return items
    for path, line, item in records:
        report.n_read += 1
        if not isinstance(item, DataError):
            problem = check_item(item, max_choices)
            if problem is None and item.id in first_seen:
                fpath, fline = first_seen[item.id]
                where = f"line {fline}" if fpath == path else f"{fpath}:{fline}"
                problem = f"duplicate id {item.id!r} (first seen at {where})"
            if problem is not None:
                item = DataError(path, line, problem)
        if isinstance(item, DataError):
            if not skip:
                raise item
            report.skipped.append(item)
            continue
        first_seen[item.id] = (path, line)
        items.append(item)
        if limit is not None and len(items) >= limit:
            break
    report.n_loaded = len(items)
    return items


# ----------------------------------------------------------------------------------------------------- format glue
def _existing(spec: str, loc: str, dir_ok: bool = False) -> Path:
    p = Path(loc).expanduser()
    if not p.exists():
        raise DataError(p, None, f"file not found (from spec {spec!r})")
    if p.is_dir() and not dir_ok:
        raise DataError(p, None, f"is a directory; expected a file (from spec {spec!r})")
    if not os.access(p, os.R_OK):
        raise DataError(p, None, "permission denied; make the file readable (chmod +r) or copy it elsewhere")
    return p


def _fields(spec: str, opts: dict) -> dict[str, str]:
    fields = dict(DEFAULT_FIELDS)
    for k in DEFAULT_FIELDS:
        if k in opts:
            v = str(opts.pop(k))
            if not v:
                raise DataError(spec, None, f"field mapping {k}= is empty; expected a field name")
            fields[k] = v
    return fields


def _read_oeqa(src: str) -> Callable[[str, str, dict], Iterator[Record]]:
    def read(spec: str, loc: str, opts: dict) -> Iterator[Record]:
        return read_oeqa(_existing(spec, loc), {"source": src})

    return read


def _read_arc(spec: str, loc: str, opts: dict) -> Iterator[Record]:
    return read_arc(_existing(spec, loc), opts)


def _read_mmlu(spec: str, loc: str, opts: dict) -> Iterator[Record]:
    return read_mmlu(_existing(spec, loc, dir_ok=True), opts)


def _read_jsonl(spec: str, loc: str, opts: dict) -> Iterator[Record]:
    fields = _fields(spec, opts)
    p = _existing(spec, loc)
    return read_mapped_jsonl(p, {"fields": fields, "source": p.stem})


def _read_hf(spec: str, loc: str, opts: dict) -> Iterator[Record]:
    fields = _fields(spec, opts)
    keys = ("split", "config", "data_files", "revision")
    return read_hf(loc, {"fields": fields, **{k: opts.get(k) for k in keys}})


def _read_builtin(spec: str, loc: str, opts: dict) -> Iterator[Record]:
    name, _, split = loc.partition("/")
    root = builtin_dir()
    path = root / f"{name}.jsonl"
    if not path.is_file():
        have = sorted(p.stem for p in root.glob("*.jsonl")) if root.is_dir() else []
        raise DataError(spec, None, f"no built-in data set {name!r}; available: {have}")
    topics = None
    if split:
        sfile = root / f"{name}_splits.json"
        if not sfile.is_file():
            raise DataError(sfile, None, f"split {split!r} requested but {sfile.name} does not exist")
        try:
            splits = json.loads(sfile.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise DataError(sfile, e.lineno, f"malformed JSON ({e.msg}); expected {{\"SPLIT\": [topics]}}") from None
        if not isinstance(splits, dict) or split not in splits:
            have = sorted(splits) if isinstance(splits, dict) else []
            raise DataError(sfile, None, f"no split {split!r}; available: {have}")
        topics = set(splits[split])
    return read_mapped_jsonl(path, {"fields": dict(DEFAULT_FIELDS), "source": name, "topics": topics})


for _name, _read, _options in (
    ("triviaqa", _read_oeqa("triviaqa"), ()), ("nq", _read_oeqa("nq"), ()), ("mmlu", _read_mmlu, ("split",)),
    ("arc", _read_arc, ("max_choices",)), ("jsonl", _read_jsonl, ("max_choices", *DEFAULT_FIELDS)),
    ("hf", _read_hf, ("split", "config", "data_files", "revision", "max_choices", *DEFAULT_FIELDS)),
    ("builtin", _read_builtin, ()),
):
    register_format(_name, _options)(_read)
