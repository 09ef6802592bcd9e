"""Build cases whose ``train.jsonl`` must stay identical across refactors (loss weights to 12 significant digits;
tests/methods/test_golden.py)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from tests.methods import rehearsed_table, table, write_jsonl

CASES = [(m, kind, cfg) for m in ("van", "cor_rait", "r_tuning", "corcer", "craft", "grait")
         for kind in ("oeqa", "mcqa")
         for cfg in ({}, {"n_total": 10}, {"n_total": 12, "as_released": True}, {"fraction": 0.5, "seed": 3})]


def grads_store(rows: list[dict], d: Path) -> str:
    """A seeded random similarity store for the table's ids (GRAIT's input)."""
    n = len(rows)
    rng = np.random.default_rng(7)
    d.mkdir(parents=True, exist_ok=True)
    for name in ("idk_idk", "idk_van"):
        m = rng.uniform(-1, 1, size=(n, n)).astype(np.float32)
        np.save(d / f"{name}.npy", m)
    (d / "index.json").write_text(json.dumps({"ids": [r["id"] for r in rows], "dim": 8}))
    return str(d)


def run_case(method: str, kind: str, cfg: dict, tmp: Path) -> str:
    """sha256 of the ``train.jsonl`` that ``rait build`` writes for one case."""
    from rait.stages.build import run_build

    base = tmp / f"{method}-{kind}-{hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:8]}"
    base.mkdir(parents=True, exist_ok=True)
    rows = table(kind)
    write_jsonl(base / "table.jsonl", rows)
    reh = None
    if method == "craft":
        reh = base / "rehearsed.jsonl"
        write_jsonl(reh, rehearsed_table(kind))
    cfg = dict(cfg)
    if method == "grait":
        cfg["grads_dir"] = grads_store(rows, base / "grads")
        cfg.pop("fraction", None)  # GRAIT sizes by n_total / n_van / n_idk only
    run_build(method, base / "table.jsonl", base / "out", cfg, rehearsed_path=reh)
    return hashlib.sha256(canonical(base / "out" / "train.jsonl").encode()).hexdigest()


def canonical(path: Path) -> str:
    """``train.jsonl`` with every loss weight rounded to 12 significant digits: numpy's exp / sum differ in the last
    bits between CPUs (AVX-512 vs AVX2 kernels), which moved GRAIT's adaptive weights by 1 ulp on one machine.

    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "t.jsonl"
    >>> _ = p.write_text('{"id": "a", "weight": 0.30000000000000004}\\n')
    >>> canonical(p)
    '{"id": "a", "weight": 0.3}\\n'
    """
    out = []
    for line in path.read_text().splitlines():
        row = json.loads(line)
        if isinstance(row.get("weight"), float):
            row["weight"] = float(f"{row['weight']:.12g}")
        out.append(json.dumps(row) + "\n")
    return "".join(out)
