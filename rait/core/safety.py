"""Never lose data: rait deletes or overwrites only files it wrote.

* :func:`list_files` records what a finished stage wrote (``rait run`` keeps the list in the stage marker).
* :func:`clear_stage_dir` replaces ``shutil.rmtree`` when a stage's settings change: it removes only the files
  the stage wrote, and stops with a :class:`~rait.errors.RaitError` naming every other ("foreign") file, unless
  ``--force`` (or ``RAIT_FORCE=1``) is given.
* :func:`check_overwrite` guards a standalone stage's output files (``rait build`` into another method's
  directory is refused instead of silently replacing its ``train.jsonl``).
* :func:`atomic_write` (tmp + fsync + rename; the tmp file is removed when the write fails, e.g. on a full
  disk), :func:`clean_stale_temps`, :func:`output_lock` (one process per output directory, ``fcntl``),
  :func:`confined` (run names stay inside ``out_root``) and :func:`check_writable` (checked before a model loads).

Example:
    >>> import tempfile, pathlib
    >>> from rait.core.safety import atomic_write, list_files, foreign_files
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> atomic_write(d / "table.jsonl", "{}\\n")
    >>> record = list_files(d)
    >>> _ = (d / "notes.txt").write_text("mine")
    >>> foreign_files(d, record)
    ['notes.txt']
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import os
import re
import shutil
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from rait.errors import RaitError

#: Files of rait's own bookkeeping inside a stage directory (never foreign).
MARKERS = (".stage.json", ".stage-started.json", ".rait.lock")
#: Temporary files rait writes before a rename: ``.NAME.tmpPID``, ``NAME.tmpPID[.npy]``, ``NAME.tmp``.
_TEMP = re.compile(r"(^\..+\.tmp\d+$)|(\.tmp\d+(\.npy)?$)|(^(train|decisions)\.jsonl\.tmp$)"
                   r"|(^(summary|manifest)\.json\.tmp$)")
FORCE_HINT = "pass --force (or set RAIT_FORCE=1) to delete them anyway"

_force = False


def set_force(on: bool) -> None:
    """Turn ``--force`` on for this process (the CLI calls this for ``rait --force ...``)."""
    global _force
    _force = bool(on)


def forced() -> bool:
    """Whether ``--force`` was given or ``RAIT_FORCE`` is set to a true value."""
    return _force or os.environ.get("RAIT_FORCE", "").lower() in ("1", "true", "yes")


def _is_lock(name: str) -> bool:
    return name.startswith(".rait") and name.endswith(".lock")


def is_temp(name: str) -> bool:
    """True for the names of rait's temporary files (see module docstring).

    >>> is_temp(".table.jsonl.tmp123"), is_temp("van.npy.tmp7.npy"), is_temp("notes.tmp")
    (True, True, False)
    """
    return bool(_TEMP.search(name))


def list_files(out: str | Path) -> dict[str, list[int]]:
    """``{relative path: [size, mtime_ns]}`` of every file under ``out`` (markers and temp files excluded)."""
    out = Path(out)
    files: dict[str, list[int]] = {}
    if not out.is_dir():
        return files
    for p in sorted(out.rglob("*")):
        if p.is_file() and p.name not in MARKERS and not is_temp(p.name) and not _is_lock(p.name):
            st = p.stat()
            files[p.relative_to(out).as_posix()] = [st.st_size, st.st_mtime_ns]
    return files


def stage_record(out: str | Path) -> tuple[dict[str, Any] | None, int | None]:
    """``(files record, start time in ns)`` of a ``rait run`` stage directory, from its markers."""
    import json

    out = Path(out)
    record, since = None, None
    done, started = out / ".stage.json", out / ".stage-started.json"
    if done.is_file():
        with contextlib.suppress(ValueError, OSError):
            record = json.loads(done.read_text(encoding="utf-8")).get("files")
    if started.is_file():
        since = started.stat().st_mtime_ns
    return record, since


def foreign_files(out: str | Path, record: dict[str, Any] | None, since_ns: int | None = None) -> list[str]:
    """Files under ``out`` that rait did not write: not in ``record`` (a :func:`list_files` result), or changed
    since it was taken; without a record, the files older than ``since_ns`` (the start of an unfinished stage)."""
    now = list_files(out)
    if record is not None:
        return [f for f, (size, mtime) in now.items() if f not in record or list(record[f]) != [size, mtime]]
    if since_ns is not None:
        return [f for f, (_, mtime) in now.items() if mtime < since_ns]
    return list(now)


def _describe(files: Sequence[str], k: int = 5) -> str:
    more = f" (+{len(files) - k} more)" if len(files) > k else ""
    return ", ".join(files[:k]) + more


def clear_stage_dir(out: str | Path, record: dict[str, Any] | None, since_ns: int | None, reason: str,
                    force: bool | None = None, log: Callable[[str], None] = print) -> None:
    """Empty a stage directory whose outputs are stale, deleting only what the stage wrote.

    Args:
        out: the stage directory.
        record: the files the finished stage wrote (:func:`list_files`), or None if it never finished.
        since_ns: when an unfinished stage started (files older than this are not its own).
        reason: why the outputs are discarded (said in the log line and the error).
        force: delete foreign files too (default: :func:`forced`).
        log: where the "discarding" line goes.

    Raises:
        RaitError: foreign files are present and ``force`` is off; the message names them.
    """
    out = Path(out)
    if not out.exists():
        return
    force = forced() if force is None else force
    foreign = foreign_files(out, record, since_ns)
    if foreign and not force:
        raise RaitError(f"{out}: {reason}, but it holds file(s) rait did not write: {_describe(foreign)}; "
                        f"move them elsewhere, or {FORCE_HINT}")
    n = len(list_files(out))
    log(f"[clean] {out}: {reason}; discarding {n} file(s) of the previous settings"
        + (f" including {len(foreign)} foreign (--force)" if foreign else ""))
    shutil.rmtree(out)


def check_overwrite(out: str | Path, names: Sequence[str], owner: Callable[[dict[str, Any]], bool],
                    what: str, force: bool | None = None) -> None:
    """Refuse to overwrite output files that another run (or the user) put in ``out``.

    Args:
        out: the output directory.
        names: the files about to be written.
        owner: given ``out/manifest.json`` (parsed), True when those files were written by the same kind of run.
        what: what is being written (for the message), e.g. ``"training set of method 'van'"``.
        force: overwrite anyway (default: :func:`forced`).
    """
    import json

    out = Path(out)
    present = [n for n in names if (out / n).exists()]
    _, since = stage_record(out)
    if since is not None:  # an unfinished `rait run` stage: what it wrote since it first started is its own
        foreign = set(foreign_files(out, None, since))
        present = [n for n in present if n in foreign]
    if not present or (forced() if force is None else force):
        return
    manifest: dict[str, Any] = {}
    mpath = out / "manifest.json"
    if mpath.is_file():
        try:
            manifest = json.loads(mpath.read_text(encoding="utf-8"))
        except (ValueError, OSError):
            manifest = {}
    if manifest and owner(manifest):
        return
    facts = {**(manifest.get("outputs") or {}), **manifest} if manifest else {}  # the method sits in outputs
    whose = (f"written by another run ({', '.join(f'{k}={facts[k]}' for k in ('stage', 'method') if k in facts)})"
             if manifest else "not written by rait (no manifest.json)")
    raise RaitError(f"{out}: {_describe(present)} {whose}; writing the {what} would overwrite it; "
                    f"choose another --out, or pass --force (or set RAIT_FORCE=1) to overwrite")


def atomic_write(path: str | Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file, fsync and rename; on failure the temporary file is removed.

    Raises:
        RaitError: the disk is full (ENOSPC) or the directory is not writable; names the path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise os_error_message(e, path) from None


def os_error_message(e: OSError, path: str | Path | None = None) -> RaitError:
    """A one-line :class:`RaitError` for an environment failure (full disk, permissions, a directory ...)."""
    where = path or e.filename
    if where is None:
        return RaitError(f"{e.strerror or e}")
    if e.errno == errno.ENOSPC:
        return RaitError(f"{where}: no space left on device; free some space or write to another --out")
    if e.errno == errno.EDQUOT:
        return RaitError(f"{where}: disk quota exceeded; free some space or write to another --out")
    if isinstance(e, PermissionError):
        return RaitError(f"{where}: permission denied; check its permissions or choose another path")
    if isinstance(e, IsADirectoryError):
        return RaitError(f"{where}: is a directory; expected a file path")
    if isinstance(e, NotADirectoryError):
        return RaitError(f"{where}: a part of this path is a file, not a directory; choose another path")
    if isinstance(e, FileNotFoundError):
        return RaitError(f"{where}: no such file or directory; check the path")
    if e.errno == errno.EROFS:
        return RaitError(f"{where}: read-only file system; write to another --out")
    return RaitError(f"{where}: {e.strerror or e}; check the path")


def clean_stale_temps(out: str | Path, log: Callable[[str], None] | None = None) -> list[str]:
    """Remove rait's temporary files under ``out`` left by killed processes (those of live processes stay)."""
    out = Path(out)
    removed = []
    if not out.is_dir():
        return removed
    for p in out.rglob("*"):
        if p.is_file() and is_temp(p.name):
            m = re.search(r"\.tmp(\d+)", p.name)
            if m and _alive(int(m.group(1))):
                continue  # a live writer (this process or a concurrent shard)
            p.unlink(missing_ok=True)
            removed.append(p.relative_to(out).as_posix())
    if removed and log:
        log(f"[clean] {out}: removed {len(removed)} stale temporary file(s) of a killed run")
    return removed


_held: dict[str, list[Any]] = {}  # lock path -> [open file, holders in this process]


def acquire(out: str | Path, name: str = ".rait.lock") -> None:
    """Take the exclusive lock on ``out/.rait.lock`` (re-entrant within a process; released by :func:`release`
    or when the process ends, however it ends).

    Raises:
        RaitError: another process holds the lock (names the directory and its pid).
    """
    import fcntl

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    lock = str((out / name).resolve())
    if lock in _held:
        _held[lock][1] += 1
        return
    fh = open(lock, "a+")
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        pid = fh.read().strip() or "?"
        fh.close()
        raise RaitError(f"{out}: another rait process (pid {pid}) is writing this directory; wait for it "
                        "to finish or use another --out") from None
    fh.seek(0)
    fh.truncate()
    fh.write(str(os.getpid()))
    fh.flush()
    if not _held:
        atexit.register(_release_all)
    _held[lock] = [fh, 1]


def _release_all() -> None:
    while _held:
        _held.popitem()[1][0].close()


def release(out: str | Path, name: str = ".rait.lock") -> None:
    """Give back one hold of :func:`acquire` (the lock is released with the last one)."""
    lock = str((Path(out) / name).resolve())
    if lock in _held:
        _held[lock][1] -= 1
        if _held[lock][1] <= 0:
            _held.pop(lock)[0].close()  # closing the file releases the flock


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


@contextlib.contextmanager
def output_lock(out: str | Path) -> Iterator[Path]:
    """Hold the lock of ``out`` (see :func:`acquire`) for the block; a second process is refused.

    >>> import tempfile
    >>> with output_lock(tempfile.mkdtemp()) as d:
    ...     (d / ".rait.lock").exists()
    True
    """
    acquire(out)
    try:
        yield Path(out)
    finally:
        release(out)


def confined(root: str | Path, name: str) -> Path:
    """``root/name``, refusing names that leave ``root`` (``../x``, absolute paths).

    >>> confined("runs", "demo").as_posix()
    'runs/demo'
    """
    root_p = Path(root)
    target = (root_p / name).resolve()
    if Path(name).is_absolute() or not name or target == root_p.resolve() or \
            root_p.resolve() not in target.parents:
        raise RaitError(f"run name {name!r} leaves out_root {str(root)!r}; use a plain name such as 'demo' "
                        "or 'exp/seed0'")
    return root_p / name


def check_writable(out: str | Path) -> None:
    """Fail early (before a model loads) when ``out`` cannot be created or written.

    Raises:
        RaitError: naming the directory and what is wrong.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RaitError(f"{out}: output path is a file, not a directory; choose another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise os_error_message(e, out) from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise RaitError(f"{out}: output directory is not writable; check its permissions or choose another --out")
