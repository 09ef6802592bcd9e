"""Artifact helpers shared by the stages: the one atomic writer, JSONL, the one file hash, ``versions()``, the one
manifest writer (every stage's ``manifest.json`` has the keys of :data:`MANIFEST_KEYS`) and the knowledge-table
reader.

Example:
    >>> import tempfile, pathlib
    >>> from rait.core.artifacts import write_jsonl, read_jsonl
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.jsonl"
    >>> write_jsonl(p, [{"a": 1}, {"a": 2}])
    >>> [r["a"] for r in read_jsonl(p)]
    [1, 2]
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from rait.errors import DataError

VERSIONED = ("rait", "torch", "transformers", "peft", "trl", "accelerate", "sentence-transformers", "numpy")


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """A temporary sibling of ``path`` to write; renamed onto ``path`` when the block succeeds, removed otherwise.

    Readers never see a partial file, and a failed write leaves no temporary file behind. ``suffix`` is appended
    to the temporary name (``.npy`` for ``numpy.save``, which would add it).

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.bin"
    >>> with atomic_path(p) as tmp:
    ...     _ = tmp.write_bytes(b"x")
    >>> p.read_bytes(), [q.name for q in p.parent.iterdir()]
    (b'x', ['a.bin'])
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}{suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as e:  # a full disk, an unwritable directory: one line naming the file
        from rait.core.safety import os_error_message

        raise os_error_message(e, path) from None
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: temporary sibling, fsync, rename (:func:`rait.core.safety.atomic_write`:
    a full disk or an unwritable directory is a one-line error naming the path, and no temporary file is left)."""
    from rait.core.safety import atomic_write

    atomic_write(path, data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (:func:`atomic_write_bytes`)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def dumps_row(row: dict[str, Any]) -> str:
    """One JSONL line (stable key order, unicode kept)."""
    return json.dumps(row, ensure_ascii=False, sort_keys=True)


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> None:
    """Atomically write rows as JSONL."""
    atomic_write_text(path, "".join(dumps_row(r) + "\n" for r in rows))


def iter_jsonl(path: str | Path, what: str = "file") -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line number, row)`` of the JSON objects of a JSONL file (blank lines skipped).

    Args:
        path: the file.
        what: what the file is, for the not-found message (e.g. ``knowledge table``).

    Raises:
        DataError: naming the file (and line) when it is missing, a line is malformed or not an object.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(path, None, f"{what} not found")
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(path, n, f"malformed JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(row, dict):
                raise DataError(path, n, f"expected a JSON object, got {type(row).__name__}")
            yield n, row


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """All rows of a JSONL file."""
    return [r for _, r in iter_jsonl(path)]


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_info(path: str | Path) -> dict[str, str]:
    """``{"path", "sha256"}`` of an input file (the form every manifest records its inputs in)."""
    return {"path": str(path), "sha256": sha256_file(path)}


def sha256_json(obj: Any) -> str:
    """Hex sha256 of an object's canonical JSON."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def versions() -> dict[str, str]:
    """Installed versions of the libraries that affect results."""
    out = {}
    for name in VERSIONED:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def git_sha() -> str | None:
    """The git commit of the rait source tree, if it is a checkout."""
    try:
        here = Path(__file__).resolve().parent
        r = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        return r.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


#: top-level keys of every stage's manifest.json
MANIFEST_KEYS = ("stage", "config", "inputs", "outputs", "versions", "git_sha", "timings", "created")


def write_manifest(out_dir: str | Path, stage: str, config: dict[str, Any], inputs: dict[str, Any],
                   timings: dict[str, float] | None = None, outputs: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write ``out_dir/manifest.json`` atomically: the one manifest layout of every stage (:data:`MANIFEST_KEYS`).

    Args:
        out_dir: the stage's output directory.
        stage: ``probe`` / ``rehearse`` / ``grads`` / ``build`` / ``train`` / ``eval``.
        config: the stage's resolved config (a dict).
        inputs: what it read, e.g. ``{"table": file_info(path)}``.
        timings: seconds per phase.
        outputs: what it produced (counts, final loss, model directory, ...).
    """
    manifest = {
        "stage": stage,
        "config": config,
        "inputs": inputs,
        "outputs": outputs or {},
        "versions": versions(),
        "git_sha": git_sha(),
        "timings": timings or {},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    atomic_write_text(Path(out_dir) / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


# ------------------------------------------------------------------------------------------- knowledge table
@dataclass
class KnowledgeTable:
    """A knowledge table (docs/artifacts.md): rows in file order, their 1-based line numbers, the file."""

    path: Path
    rows: list[dict[str, Any]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)

    def ids(self) -> list[Any]:
        return [r["id"] for r in self.rows]

    def __len__(self) -> int:
        return len(self.rows)


def read_table(path: str | Path, required: Sequence[str] = ("id",)) -> KnowledgeTable:
    """Read a knowledge table; a DataError naming file and line for a missing ``required`` field, a duplicate id,
    a malformed line or an empty table.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "table.jsonl"
    >>> _ = p.write_text('{"id": "q1", "correctness": 0.5}\\n{"id": "q1"}\\n')
    >>> read_table(p)
    Traceback (most recent call last):
    ...
    rait.errors.DataError: ...table.jsonl:2: duplicate id 'q1' (first on line 1)
    """
    from rait.data.schema import check_table_row

    path = Path(path)
    table = KnowledgeTable(path)
    seen: dict[Any, int] = {}
    for n, row in iter_jsonl(path, "knowledge table"):
        for key in ("id", *required):
            if row.get(key) is None:
                raise DataError(path, n, f"missing field {key!r}")
        if row["id"] in seen:
            raise DataError(path, n, f"duplicate id {row['id']!r} (first on line {seen[row['id']]})")
        problem = check_table_row(row)
        if problem:
            raise DataError(path, n, f"{problem}; is this a knowledge table written by rait probe?")
        seen[row["id"]] = n
        table.rows.append(row)
        table.lines.append(n)
    if not table.rows:
        raise DataError(path, None, "the knowledge table is empty")
    return table
