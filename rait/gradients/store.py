"""The gradient store: sharded, resumable feature computation over a knowledge table, merge and similarities.

Layout of ``OUT`` (docs/artifacts.md, docs/grait.md)::

    config.json                 settings every shard must share (table hash, model, projection, ...)
    shards/00003.van.npy        raw features of chunk 3 (float32, rows = table rows 3*S .. 4*S-1)
    shards/00003.idk.npy
    shards/00003.json           written last: marks chunk 3 done
    van.npy, idk.npy            merged N x dim features (L2-normalised unless normalize=False), table order
    index.json                  ids in row order, dim, projection, label sets, ...
    idk_idk.npy, idk_van.npy    N x N float32 cosine blocks (van_van.npy on request)

The table is cut into fixed chunks of ``shard_size`` items; process ``i`` of ``n`` does chunks ``k % n == i``.
Every file is written atomically (tmp + rename) and a rerun skips finished chunks, so a killed run resumes
where it stopped. Chunks do not depend on ``n``, so a sharded run is bitwise identical to a single one.

Example:
    >>> from rait.gradients.store import label_conversations
    >>> row = {"id": "q", "question": "2+2?", "answers": ["4"], "correctness": 0.2}
    >>> van, idk = label_conversations([row])
    >>> van[0][-1]["content"], idk[0][-1]["content"]
    ("I don't know", "I don't know")
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from rait.core.artifacts import atomic_path, atomic_write_bytes
from rait.core.prompts import build_messages, refusal_for
from rait.data.schema import QAItem
from rait.errors import DataError, RaitError
from rait.gradients.similarity import gram_to_file, l2_normalize

LABELSETS = ("van", "idk")


def read_table(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a knowledge table (:func:`rait.core.artifacts.read_table`; needs id, question, correctness)."""
    from rait.core.artifacts import read_table as read

    return read(path, required=("question", "correctness")).rows


def label_conversations(table: Sequence[dict[str, Any]], threshold: float = 0.5, system_prompt: str = ""
                        ) -> tuple[list[list[dict]], list[list[dict]]]:
    """The two label sets of method-spec §D3 as chat conversations (REFUSE prompt, empty system turn).

    ``van``: Cor-RAIT labels (gold target when correctness >= threshold, else the refusal); ``idk``: every row
    relabelled with the refusal.
    """
    van, idk = [], []
    for row in table:
        item = QAItem.from_dict(row)
        target = item.target if float(row["correctness"]) >= threshold else refusal_for(item)
        van.append(build_messages(item, "refuse", system_prompt=system_prompt, answer=target))
        idk.append(build_messages(item, "refuse", system_prompt=system_prompt, answer=refusal_for(item)))
    return van, idk


def _atomic_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=1) + "\n").encode())


def _atomic_npy(path: Path, arr: np.ndarray) -> None:
    with atomic_path(path, ".npy") as tmp:
        np.save(tmp, np.ascontiguousarray(arr, dtype=np.float32))


def table_hash(table: Sequence[dict[str, Any]], threshold: float, system_prompt: str) -> str:
    """SHA-256 of what the features depend on: ids, label texts."""
    van, idk = label_conversations(table, threshold, system_prompt)
    h = hashlib.sha256()
    for row, v, i in zip(table, van, idk):
        h.update(json.dumps([row["id"], v, i], sort_keys=True).encode())
    return h.hexdigest()


def n_chunks(n_items: int, shard_size: int) -> int:
    return max(1, math.ceil(n_items / shard_size))


def _check_config(out: Path, config: dict[str, Any]) -> None:
    path = out / "config.json"
    if path.exists():
        old = json.loads(path.read_text())
        diff = sorted(k for k in set(old) | set(config) if old.get(k) != config.get(k))
        if diff:
            raise RaitError(f"{path}: this directory holds features computed with other settings ({', '.join(diff)}); "
                            "use a new --out directory")
    else:
        _atomic_json(path, config)


def compute(table: Sequence[dict[str, Any]], out: str | Path, make_featurizer: Callable[[], Any],
            config: dict[str, Any], shard: tuple[int, int] = (0, 1), shard_size: int = 256,
            threshold: float = 0.5, system_prompt: str = "", log: Callable[[str], None] = print) -> list[int]:
    """Compute the pending chunks of shard ``i/n``; returns the chunk numbers done in this call.

    Args:
        table: knowledge-table rows.
        out: store directory.
        make_featurizer: called once, only if a chunk is pending (loads the model lazily); returns an object
            with ``features(conversations) -> np.ndarray``.
        config: JSON-able settings that define the features (checked against ``out/config.json``).
        shard: ``(i, n)``: this process does chunks ``k`` with ``k % n == i``.
        shard_size: items per chunk (the unit of resume).
    """
    out = Path(out)
    (out / "shards").mkdir(parents=True, exist_ok=True)
    from rait.core.safety import clean_stale_temps

    clean_stale_temps(out)  # temporary files of a killed run (those of live shards stay)
    i, n = shard
    config = dict(config, n_items=len(table), shard_size=shard_size, threshold=threshold,
                  system_prompt=system_prompt, table_sha256=table_hash(table, threshold, system_prompt))
    _check_config(out, config)
    van, idk = label_conversations(table, threshold, system_prompt)
    todo = [k for k in range(n_chunks(len(table), shard_size))
            if k % n == i and not (out / "shards" / f"{k:05d}.json").exists()]
    fz = make_featurizer() if todo else None
    plans = {k: _distinct(van[k * shard_size:(k + 1) * shard_size] + idk[k * shard_size:(k + 1) * shard_size])
             for k in todo}
    from rait.core.progress import bar, track_batches

    with bar(sum(len(p[0]) for p in plans.values()), "grads", unit="row", disable=not todo) as b:
        for k in todo:
            t0 = time.time()
            s, e = k * shard_size, min(len(table), (k + 1) * shard_size)
            # identical conversations (idk-labelled rows appear in both sets) are computed once
            convs, keys = plans[k]
            with track_batches(getattr(fz, "model", None), b, len(convs)):
                feats = fz.features(convs)[keys]
            _atomic_npy(out / "shards" / f"{k:05d}.van.npy", feats[: e - s])
            _atomic_npy(out / "shards" / f"{k:05d}.idk.npy", feats[e - s:])
            _atomic_json(out / "shards" / f"{k:05d}.json",
                         {"chunk": k, "ids": [r["id"] for r in table[s:e]], "rows": len(convs),
                          "seconds": round(time.time() - t0, 3)})
            b.clear()
            log(f"chunk {k}: items {s}-{e - 1}, {len(convs)} distinct rows, {time.time() - t0:.1f}s")
            b.refresh()
    return todo


def _distinct(convs: Sequence[Any]) -> tuple[list[Any], list[int]]:
    """``(distinct conversations, index of each input among them)``."""
    out, where, keys = [], {}, []
    for c in convs:
        key = json.dumps(c)
        if key not in where:
            where[key] = len(out)
            out.append(c)
        keys.append(where[key])
    return out, keys


def pending(out: str | Path) -> list[int]:
    """Chunk numbers not yet finished (by any shard)."""
    out = Path(out)
    cfg = json.loads((out / "config.json").read_text())
    return [k for k in range(n_chunks(cfg["n_items"], cfg["shard_size"]))
            if not (out / "shards" / f"{k:05d}.json").exists()]


def merge(out: str | Path, normalize: bool = True, van_van: bool = False, chunk: int = 1024) -> dict[str, Any]:
    """Join finished chunks into ``van.npy``/``idk.npy`` + ``index.json`` and write the similarity blocks.

    Raises:
        RaitError: chunks are missing (names them) or the directory has no ``config.json``.
    """
    out = Path(out)
    if not (out / "config.json").exists():
        raise RaitError(f"{out}: not a gradient store (no config.json)")
    cfg = json.loads((out / "config.json").read_text())
    missing = pending(out)
    if missing:
        raise RaitError(f"{out}: {len(missing)} chunk(s) not computed yet (e.g. {missing[:5]}); run the "
                        "remaining shards first")
    ids: list[str] = []
    feats: dict[str, list[np.ndarray]] = {ls: [] for ls in LABELSETS}
    for k in range(n_chunks(cfg["n_items"], cfg["shard_size"])):
        ids += json.loads((out / "shards" / f"{k:05d}.json").read_text())["ids"]
        for ls in LABELSETS:
            feats[ls].append(np.load(out / "shards" / f"{k:05d}.{ls}.npy"))
    merged = {ls: np.concatenate(feats[ls]) for ls in LABELSETS}
    unit = {ls: l2_normalize(merged[ls]) for ls in LABELSETS}
    for ls in LABELSETS:
        _atomic_npy(out / f"{ls}.npy", unit[ls] if normalize else merged[ls])
    gram_to_file(unit["idk"], unit["idk"], out / "idk_idk.npy", chunk)
    gram_to_file(unit["idk"], unit["van"], out / "idk_van.npy", chunk)
    if van_van:
        gram_to_file(unit["van"], unit["van"], out / "van_van.npy", chunk)
    index = {"ids": ids, "n": len(ids), "dim": int(merged["van"].shape[1]), "labelsets": list(LABELSETS),
             "normalized": normalize, "similarity": "cosine (L2-normalised features)",
             "blocks": ["idk_idk", "idk_van"] + (["van_van"] if van_van else []),
             **{k: v for k, v in cfg.items() if k not in ("n_items",)}}
    _atomic_json(out / "index.json", index)
    return index


def read_index(grads_dir: str | Path) -> dict[str, Any]:
    """``index.json`` of a merged store (DataError if absent)."""
    path = Path(grads_dir) / "index.json"
    if not path.exists():
        raise DataError(path, None, "gradient index not found (run `rait grads` to completion, or `rait grads merge`)")
    return json.loads(path.read_text())
