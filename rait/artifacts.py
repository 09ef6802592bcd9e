"""Artifact helpers shared by the stages: atomic writes, JSONL, hashes, manifests.

Example:
    >>> import tempfile, pathlib
    >>> from rait.artifacts import write_jsonl, read_jsonl
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.jsonl"
    >>> write_jsonl(p, [{"a": 1}, {"a": 2}])
    >>> [r["a"] for r in read_jsonl(p)]
    [1, 2]
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

from rait.errors import DataError

VERSIONED = ("rait", "torch", "transformers", "peft", "trl", "accelerate", "sentence-transformers", "numpy")


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and rename (readers never see a partial file)."""
    from rait.safety import atomic_write  # fsync, and no temp file left behind on a full disk

    atomic_write(path, text)


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


def write_manifest(out_dir: str | Path, stage: str, config: dict[str, Any], inputs: dict[str, Any],
                   timings: dict[str, float] | None = None, **extra: Any) -> dict[str, Any]:
    """Write ``out_dir/manifest.json`` (stage, config, input hashes, versions, git SHA, timings)."""
    manifest = {
        "stage": stage,
        "config": config,
        "inputs": inputs,
        "versions": versions(),
        "git_sha": git_sha(),
        "timings": timings or {},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        **extra,
    }
    atomic_write_text(Path(out_dir) / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest
