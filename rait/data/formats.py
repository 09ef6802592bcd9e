"""Per-format record readers used by :mod:`rait.data.loaders`.

Each reader is a generator ``read_<format>(path, opts)`` that yields ``(file, line, item_or_error)`` triples: a
:class:`~rait.data.schema.QAItem` (not yet validated) or a :class:`~rait.errors.DataError` for a record that could
not be read. File-level problems (missing file, bad CSV header) are raised, not yielded. The loader validates,
de-duplicates, counts skips and applies ``limit``; readers only parse.

Example:
    >>> import json, tempfile, pathlib
    >>> from rait.data.formats import read_oeqa
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "nq.jsonl"
    >>> _ = p.write_text(json.dumps({"id": "q1", "question": "q?", "answers": ["54\\u00a0Mbit/s"]}) + "\\n")
    >>> [(line, item.answers) for _, line, item in read_oeqa(p, {"source": "nq"})]
    [(1, ['54 Mbit/s'])]
"""

from __future__ import annotations

import csv
import importlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Union

from rait.core.registry import Registry
from rait.data.mapped import as_text, build_mapped, relabel
from rait.data.schema import LETTERS, QAItem, text_value
from rait.errors import DataError

Record = tuple[str, int, Union[QAItem, DataError]]

@dataclass(frozen=True)
class Format:
    """A dataset format of ``rait.data.load``: ``read(spec, location, options)`` yields records; ``options`` are
    the ``?key=value`` options it accepts."""

    name: str
    read: Callable[[str, str, dict], Iterator[Record]]
    options: tuple[str, ...] = ()


#: format name -> :class:`Format` (the readers register in :mod:`rait.data.loaders`; docs/extending.md adds one)
FORMATS: Registry[Format] = Registry("dataset format", lambda: importlib.import_module("rait.data.loaders"))


def register_format(name: str, options: tuple[str, ...] = ()) -> Callable[[Callable], Callable]:
    """Decorator registering ``read(spec, location, options) -> records`` as the format ``name``."""

    def deco(fn: Callable) -> Callable:
        FORMATS.add(name, Format(name, fn, tuple(options)))
        return fn

    return deco


MMLU_HEADER = ["id", "lang", "question", "A", "B", "C", "D", "target"]
MMLU_SPLITS = ("dev", "val", "test")


# ----------------------------------------------------------------------------------------------------------- helpers
def iter_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    """Yield ``(line_number, object_or_DataError)`` for each non-blank line of a JSONL file (1-based lines)."""
    with open(path, "rb") as fh:
        for no, raw in enumerate(fh, 1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                yield no, DataError(path, no, f"not UTF-8 text ({e.reason} at byte {e.start})")
                continue
            if no == 1:
                text = text.lstrip("\ufeff")
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as e:
                yield no, DataError(path, no, f"malformed JSON ({e.msg} at column {e.colno}); "
                                              "expected one JSON object per line")
                continue
            if not isinstance(obj, dict):
                yield no, DataError(path, no, f"expected a JSON object, got {type(obj).__name__}")
                continue
            yield no, obj


def unquote_csv_artifact(s: str) -> str:
    """Undo TriviaQA's CSV quoting: ``'"a ""b"" c"'`` -> ``'a "b" c'`` (other strings unchanged)."""
    if len(s) >= 2 and s[0] == s[-1] == '"' and '""' in s:
        inner = s[1:-1]
        # Only a well-formed quoted field: every inner quote is doubled.
        if '"' not in inner.replace('""', ""):
            return inner.replace('""', '"')
    return s


# ----------------------------------------------------------------------------------------------------------- readers
def read_oeqa(path: Path, opts: dict) -> Iterator[Record]:
    """TriviaQA / NQ JSONL ``{"id","question","answers"}``.

    Normalises the published quirks: NBSP -> space in aliases, TriviaQA's CSV-quoted strings
    (``"a ""b"" c"`` -> ``a "b" c``) in questions and aliases; duplicate aliases after that are dropped.
    """
    src = opts["source"]
    for no, obj in iter_jsonl(path):
        if isinstance(obj, DataError):
            yield str(path), no, obj
            continue
        try:
            missing = [k for k in ("id", "question", "answers") if k not in obj]
            if missing:
                raise ValueError(f"missing field {missing[0]!r}; "
                                 'expected {"id", "question", "answers": [aliases]}')
            answers = obj["answers"]
            if isinstance(answers, str):
                answers = [answers]
            if not isinstance(answers, list):
                raise ValueError("field 'answers': expected a list of alias strings")
            seen: dict[str, None] = {}
            for i, a in enumerate(answers):
                a = text_value(a, f"answer alias at position {i}")
                seen.setdefault(unquote_csv_artifact(a.replace("\u00a0", " ")), None)
            q = obj["question"]
            if not isinstance(q, str):
                raise ValueError(f"field 'question': expected a string, got {type(q).__name__}")
            item = QAItem(id=text_value(obj["id"], "field 'id'"), question=unquote_csv_artifact(q), answers=list(seen),
                          source=src)
        except ValueError as e:
            yield str(path), no, DataError(path, no, str(e))
            continue
        yield str(path), no, item


def read_arc(path: Path, opts: dict) -> Iterator[Record]:
    """AI2 ARC JSONL; option labels (``A B C D`` or ``1 2 3 4``) are mapped by position to A, B, C, ..."""
    for no, obj in iter_jsonl(path):
        if isinstance(obj, DataError):
            yield str(path), no, obj
            continue
        try:
            q = obj.get("question")
            if "id" not in obj or "answerKey" not in obj or not isinstance(q, dict):
                raise ValueError('missing field; expected {"id", "question": {"stem", "choices": '
                                 '[{"text", "label"}]}, "answerKey"}')
            if "stem" not in q or not isinstance(q.get("choices"), list):
                raise ValueError("missing field 'question.stem' or 'question.choices'")
            chs = q["choices"]
            if any(not isinstance(c, dict) or "text" not in c or "label" not in c for c in chs):
                raise ValueError("each choice must be an object {\"text\", \"label\"}")
            labels = [as_text(c["label"]).strip() for c in chs]
            if len(set(labels)) != len(labels):
                raise ValueError(f"duplicate choice labels {labels}")
            if len(labels) > len(LETTERS):
                raise ValueError(f"{len(labels)} choices; at most {len(LETTERS)} are supported")
            gold = relabel(labels, obj["answerKey"])
            item = QAItem(id=as_text(obj["id"]), question=as_text(q["stem"]), choices=[as_text(c["text"]) for c in chs],
                          gold=gold, topic="STEM", source="arc")
        except ValueError as e:
            yield str(path), no, DataError(path, no, str(e))
            continue
        yield str(path), no, item


def read_mapped_jsonl(path: Path, opts: dict) -> Iterator[Record]:
    """Generic JSONL through the field mapping ``opts['fields']``; ``opts['topics']`` (a set) filters by topic."""
    fields, topics = opts["fields"], opts.get("topics")
    index = 0
    for no, obj in iter_jsonl(path):
        if isinstance(obj, DataError):
            yield str(path), no, obj
            continue
        try:
            item = build_mapped(obj, fields, index=index, default_source=opts["source"])
        except ValueError as e:
            yield str(path), no, DataError(path, no, str(e))
            continue
        finally:
            index += 1
        if topics is not None and item.topic not in topics:
            continue
        yield str(path), no, item


def mmlu_files(path: Path, split: str | None) -> list[tuple[str, Path]]:
    """``(subject, csv_path)`` pairs, sorted by subject, for an MMLU root, split directory or single CSV.

    Args:
        path: the MMLU root (holding ``dev/ val/ test/``), one split directory, or one ``{subject}_{split}.csv``.
        split: split to read under a root (default ``test``); must match the directory name when given with one.
    """
    if path.is_file():
        return [(_subject(path, None), path)]
    if not path.is_dir():
        raise DataError(path, None, "MMLU path not found; expected the MMLU root, a split directory or a CSV file")
    if any((path / s).is_dir() for s in MMLU_SPLITS) and not list(path.glob("*.csv")):
        split = split or "test"
        if not (path / split).is_dir():
            have = [s for s in MMLU_SPLITS if (path / s).is_dir()]
            raise DataError(path, None, f"no MMLU split {split!r}; found {have}")
        path = path / split
    elif split and split != path.name:
        raise DataError(path, None, f"split {split!r} given, but {path.name!r} is already a split directory")
    split = path.name
    files = sorted(path.glob(f"*_{split}.csv")) or sorted(path.glob("*.csv"))
    if not files:
        raise DataError(path, None, f"no MMLU CSV files; expected {{subject}}_{split}.csv")
    return sorted(((_subject(f, split), f) for f in files), key=lambda t: t[0])


def _subject(f: Path, split: str | None) -> str:
    stem = f.stem
    if split and stem.endswith(f"_{split}"):
        return stem[: -len(split) - 1]
    return re.sub(r"_(dev|val|test|train|validation)$", "", stem)


def read_mmlu(path: Path, opts: dict) -> Iterator[Record]:
    """MMLU CSVs ``id,lang,question,A,B,C,D,target`` (or Hendrycks' header-less ``question,A,B,C,D,answer``).

    The line of each record is the CSV line where the record starts (quoted fields may span lines).
    """
    for subject, f in mmlu_files(path, opts.get("split")):
        yield from _read_mmlu_csv(f, subject)


def _read_mmlu_csv(f: Path, subject: str) -> Iterator[Record]:
    end = 0
    try:
        with open(f, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = None
            for row in reader:
                start, end = end + 1, reader.line_num
                if not row or not any(c.strip() for c in row):
                    continue
                if header is None:
                    if row == MMLU_HEADER:
                        header = MMLU_HEADER
                        continue
                    if len(row) == 6:
                        header = ["question", "A", "B", "C", "D", "target"]  # Hendrycks: no header, no id
                    else:
                        raise DataError(f, start, f"unexpected CSV header {row}; expected {','.join(MMLU_HEADER)}")
                if len(row) != len(header):
                    yield str(f), start, DataError(f, start, f"expected {len(header)} columns "
                                                             f"({','.join(header)}), got {len(row)}")
                    continue
                r = dict(zip(header, row))
                iid = r.get("id") or f"{subject}/{f.parent.name}/{start}"
                item = QAItem(id=iid, question=r["question"], choices=[r[k] for k in "ABCD"],
                              gold=r["target"].strip(), topic=subject, source="mmlu")
                yield str(f), start, item
    except UnicodeDecodeError:
        data = f.read_bytes()
        try:
            data.decode("utf-8")
            line, where = end + 1, ""
        except UnicodeDecodeError as e:  # the first bad byte, for the line number
            line, where = data[: e.start].count(b"\n") + 1, f" (byte 0x{data[e.start]:02x})"
        raise DataError(f, line, f"not UTF-8 text{where}; re-save the file as UTF-8, e.g. "
                        f"`iconv -f latin1 -t utf-8 {f.name} > fixed.csv`") from None
    except csv.Error as e:
        raise DataError(f, end + 1, f"unreadable CSV ({e}); expected {','.join(MMLU_HEADER)} rows") from None


def read_hf(name: str, opts: dict) -> Iterator[Record]:
    """Hugging Face ``datasets``: a local ``save_to_disk`` directory or a (cached) hub name; rows through the mapping.

    ``HF_DATASETS_OFFLINE=1`` is honoured by ``datasets`` itself. The "line" of a row is its 1-based index.
    """
    import datasets  # heavy; only when used

    split = opts.get("split")
    try:
        if Path(name).exists() and not opts.get("data_files"):
            ds = datasets.load_from_disk(name)
        else:
            files = opts.get("data_files")
            extra = {"data_files": [f for f in files.split(",") if f] if files else None,
                     "revision": opts.get("revision") or None}
            ds = datasets.load_dataset(name, opts.get("config"), split=split,
                                       **{k: v for k, v in extra.items() if v is not None})
    except Exception as e:  # datasets raises many types; all mean "cannot load"
        raise DataError(name, None, f"cannot load Hugging Face dataset ({type(e).__name__}: {e})") from None
    if isinstance(ds, (datasets.DatasetDict, dict)):
        splits = list(ds)
        if split is None and len(splits) == 1:
            split = splits[0]
        if split not in splits:
            what = f"no split {split!r}" if split is not None else "no split given"
            raise DataError(name, None, f"{what}; choose one of {splits} with ?split=NAME")
        ds = ds[split]
    src = opts.get("source") or Path(name).name
    for i, row in enumerate(ds):
        try:
            item = build_mapped(row, opts["fields"], index=i, default_source=src)
        except ValueError as e:
            yield name, i + 1, DataError(name, i + 1, str(e))
            continue
        yield name, i + 1, item
